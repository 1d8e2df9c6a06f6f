#!/usr/bin/env bash
# On a GPU machine, in one call: the engine's benchmark and the reference (HF transformers,
# ../shared/bench/torch_baseline.py) on the same workloads, then the ratios.
# Build first (cargo build --release) and carry target/release/wgbert in a folder, e.g. carry/.
# usage: bash scripts/device_bench.sh [WGBERT_BINARY] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-carry/wgbert}"
out="${2:-${OUT:-/tmp}}"
baseline="${BASELINE:-../shared/bench/torch_baseline.py}"
mkdir -p "$out"
"$bin" info --json > "$out/info.json" || true
"$bin" bench --kernels --json > "$out/kernels.json"
"$bin" bench --random base --workloads benches/workloads.json --json > "$out/wgbert_checked.json"
# The same without wgpu's per-access bounds clamping (the kernels bound their own indices).
WGBERT_SHADER_CHECKS=0 "$bin" bench --random base --workloads benches/workloads.json --json > "$out/wgbert.json"
python3 "$baseline" --workloads benches/workloads.json > "$out/torch.json"
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
w = json.load(open(f"{out}/wgbert.json")); t = json.load(open(f"{out}/torch.json"))
k = json.load(open(f"{out}/kernels.json"))
print(f"adapter: {w['adapter']} ({w['dtype']}); reference: torch {t['torch']} on {t['gpu']}")
for name, r in w.items():
    if not isinstance(r, dict) or "tok_per_s" not in r:
        continue
    ref = t.get(f"{name}_tok_per_s")
    ratio = f"{r['tok_per_s'] / ref:.2f}x" if ref else "n/a"
    print(f"{name:<22} wgbert {r['tok_per_s']:>10.0f} tok/s  torch {ref or 0:>10.0f}  ratio {ratio}"
          f"  peak {r['peak_mem_mib']} MiB vs {t.get(f'{name}_peak_mem_mib')} MiB")
mm = k["tflops"].get("matmul 4096^3")
if mm and t.get("matmul_4096_tflops"):
    print(f"f16 matmul 4096^3: {mm:.1f} TFLOP/s = {100 * mm / t['matmul_4096_tflops']:.1f}% of cuBLAS ({t['matmul_4096_tflops']})")
PY
