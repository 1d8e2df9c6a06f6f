#!/usr/bin/env bash
# One prepared call on the GPU machine (an NVIDIA H100/H200 with no Rust toolchain; see
# ../shared/GPU.md): the reference first (HF transformers with sdpa, then under torch.compile),
# then correctness on the GPU (the kernel and parity suites, cooperative-matrix kernels
# included), then wgbert's own benchmarks, then the ratios. Every step runs under `timeout`,
# capped by what is left of a whole-call budget (WGBERT_DEVICE_BUDGET_S, default 400 s, so the
# call fits 7 minutes with the loader set-up), and streams its output.
#
# Prepare here with `bash scripts/device_prepare.sh`, then call the device tool with
#   carry: [".gl", "carry"]      command: bash scripts/device_all.sh      timeout_s: 480
# Results: $OUT/run.log (everything, streamed), $OUT/summary.txt (the ratios) and
# $OUT/raw.tar.gz (every step's JSON and log), three files (the tool returns at most 8).
#
# Dry run here, on lavapipe: WGBERT_DEVICE_DRY_RUN=1 bash scripts/device_all.sh
# skips the loader and the NVIDIA check, runs the reference as a CPU smoke test when torch is
# installed (skipped otherwise) and benchmarks a tiny fixture model on a tiny workload; steps
# get five times longer (a CPU is slow) and only the kernel sweep is skipped.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
dry="${WGBERT_DEVICE_DRY_RUN:-0}"
budget="${WGBERT_DEVICE_BUDGET_S:-400}"
scale=1
out="${OUT:-/tmp/wgbert-device}"
bin=carry/wgbert
raw=$(mktemp -d)
mkdir -p "$out"
exec > >(tee "$out/run.log") 2>&1
start=$(date +%s)
status=0

bundle() { tar czf "$out/raw.tar.gz" -C "$raw" . || true; }
trap bundle EXIT

# step NAME SECONDS CMD...: CMD under `timeout`, stdout to raw/NAME.out, everything streamed
# and logged in raw/NAME.log. Returns CMD's exit status (124 on timeout).
step() {
  local name=$1 want=$2
  shift 2
  local left=$((budget - ($(date +%s) - start)))
  want=$((want * scale))
  local t=$((want < left ? want : left))
  if [ "$t" -lt 5 ]; then
    echo "== $name: skipped, the time budget is spent"
    return 124
  fi
  echo "== $name (at most ${t}s): $*"
  local t0 rc
  t0=$(date +%s)
  { timeout --kill-after=5 "$t" "$@" | tee "$raw/$name.out"; } 2> >(tee "$raw/$name.log" >&2)
  rc=${PIPESTATUS[0]}
  echo "== $name: exit $rc in $(($(date +%s) - t0))s"
  bundle
  return "$rc"
}

if [ ! -x "$bin" ]; then
  echo "error: no $bin: run scripts/device_prepare.sh here first and carry carry/ and .gl/"
  exit 1
fi

export WGPU_BACKEND=vulkan
if [ "$dry" = 1 ]; then
  echo "== dry run: no loader set-up, no NVIDIA check, tiny workloads, 5x longer steps"
  budget="${WGBERT_DEVICE_BUDGET_S:-2000}"
  scale=5
  printf '{"smoke": [64, 10]}\n' >"$raw/workloads.json"
  workloads="$raw/workloads.json"
  iters=1
  model=(--model tests/fixtures/mlm_v4)
  export WGBERT_BENCH_SMALL=1
else
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  if [ ! -f /usr/share/vulkan/icd.d/nvidia_icd.json ] &&
    [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  fi
  workloads=benches/workloads.json
  iters=5
  model=(--random base)
fi

step info 30 "$bin" info --json
if ! python3 - "$raw/info.out" "$dry" <<'PY'; then
import json, sys
adapters = json.load(open(sys.argv[1]))
for a in adapters:
    print(f"adapter: {a.get('name')} ({a.get('backend')}, {a.get('device_type')})")
nvidia = [a for a in adapters
          if "nvidia" in str(a.get("name", "")).lower() and "vulkan" in str(a.get("backend", "")).lower()]
if not nvidia and sys.argv[2] != "1":
    sys.exit("error: wgbert sees no NVIDIA Vulkan adapter; stopping before the benchmarks")
PY
  exit 1
fi

# The reference first: torch.compile is the figure to beat.
if [ ! -f carry/torch_baseline.py ]; then
  echo "== reference: carry/torch_baseline.py missing, skipped"
elif ! python3 -c 'import torch' 2>/dev/null; then
  echo "== reference: torch not installed, skipped"
elif [ "$dry" = 1 ]; then
  step torch_sdpa 120 python3 carry/torch_baseline.py --cpu-smoke
else
  step torch_sdpa 90 python3 carry/torch_baseline.py --workloads "$workloads"
  step torch_compile 150 python3 carry/torch_baseline.py --workloads "$workloads" --compile --skip-matmul
fi

# Correctness on this adapter before any speed figure (the test binaries travel gzipped).
tests_dir=$(mktemp -d)
if ! tar -xzf carry/tests.tar.gz -C "$tests_dir"; then
  echo "== carry/tests.tar.gz missing or unreadable: correctness suites skipped"
  status=1
fi
for t in matmul_coop attention_coop matmul attention parity; do
  [ -x "$tests_dir/tests/$t" ] || continue
  # --nocapture shows "skipped" lines and the chosen kernels, so a wrong adapter is visible.
  step "check_$t" 60 "$tests_dir/tests/$t" --test-threads=1 --nocapture || status=1
done

# wgbert's own figures: without and with wgpu's bounds clamping, then the kernel sweep.
WGBERT_SHADER_CHECKS=0 step wgbert 90 "$bin" --dtype f16 bench "${model[@]}" \
  --workloads "$workloads" --iters "$iters" --json
step wgbert_checked 60 "$bin" --dtype f16 bench "${model[@]}" \
  --workloads "$workloads" --iters "$iters" --json
if [ "$dry" = 1 ]; then
  echo "== tune, kernels: skipped in the dry run (they take minutes on a CPU)"
else
  # Every tile candidate timed on this GPU (f32 and f16, the tensor-core kernels' included),
  # then every kernel and candidate on the model's matmul and attention shapes.
  WGBERT_CACHE="$raw/cache" step tune 60 "$bin" --quiet tune --json
  WGBERT_CACHE="$raw/cache" step kernels 90 "$bin" --dtype f16 bench --kernels --sweep --json
fi

python3 - "$raw" <<'PY' | tee "$out/summary.txt"
import json, os, sys
raw = sys.argv[1]

def load(name):
    try:
        return json.load(open(os.path.join(raw, name + ".out")))
    except (OSError, ValueError):
        return None

w, sdpa, comp, k = load("wgbert"), load("torch_sdpa"), load("torch_compile"), load("kernels")
ref = sdpa or {}
if w is None:
    sys.exit("no wgbert benchmark result (see run.log)")
print(f"adapter: {w.get('adapter')} ({w.get('dtype')}); reference: torch {ref.get('torch')} on {ref.get('gpu')}")
for name, r in w.items():
    if not isinstance(r, dict) or "tok_per_s" not in r:
        continue
    line = f"{name:<22} wgbert {r['tok_per_s']:>10.0f} tok/s  peak {r.get('peak_mem_mib')} MiB"
    for label, t in (("sdpa", sdpa), ("compile", comp)):
        v = (t or {}).get(f"{name}_tok_per_s")
        if v:
            line += f" | {label} {v:>9.0f} tok/s, ratio {r['tok_per_s'] / v:.2f}x, peak {t.get(f'{name}_peak_mem_mib')} MiB"
    print(line)
if k:
    for case, tf in sorted(k.get("tflops", {}).items()):
        print(f"  {case:<60} {tf:8.2f} TFLOP/s")
    mm = k.get("tflops", {}).get("matmul 4096^3")
    cublas = ref.get("matmul_4096_tflops")
    if mm and cublas:
        print(f"f16 matmul 4096^3: {mm:.1f} TFLOP/s = {100 * mm / cublas:.1f}% of cuBLAS ({cublas} TFLOP/s)")
    elif mm:
        print(f"f16 matmul 4096^3: {mm:.1f} TFLOP/s (no cuBLAS reference)")
    # Every swept configuration on the square product, fastest first, against cuBLAS.
    square = [(c, tf) for c, tf in k.get("tflops", {}).items() if c.startswith("matmul 4096^3 [")]
    for case, tf in sorted(square, key=lambda x: -x[1]):
        share = f" = {100 * tf / cublas:.1f}% of cuBLAS" if cublas else ""
        print(f"  {case[len('matmul 4096^3 '):]:<20} {tf:8.2f} TFLOP/s{share}")
PY
echo "== done in $(($(date +%s) - start))s, correctness status $status"
exit "$status"
