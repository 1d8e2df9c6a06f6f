#!/usr/bin/env bash
# On a GPU machine (no Rust toolchain there), in one call: the cooperative-matrix matmul's and
# attention's numerical tests and self-checks, then the matmul and parity suites, from prebuilt
# test binaries. The tests pick the high-performance adapter, so on NVIDIA the real Coop kernel
# runs (on lavapipe those cases print "skipped").
#
# Build here and put the binaries in the carried folder carry/ (ignored by .gitignore):
#   cargo test --release --no-run --test matmul_coop --test attention_coop --test matmul \
#     --test parity 2>&1 \
#     | grep -o 'target/release/deps/[a-z_]*-[0-9a-f]*' | sort -u
#   mkdir -p carry/tests && for t in matmul_coop attention_coop matmul parity; do
#     cp "$(ls -t target/release/deps/$t-* | grep -v '\.d$' | head -1)" carry/tests/$t; done
# (the parity test reads tests/fixtures/, which travels with the work tree). Then, on the
# device tool: carry [".gl", "carry"], command (see the device README for the .gl loader):
#   for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig; bash scripts/device_check.sh
# usage: bash scripts/device_check.sh [BINARY_DIR] [OUT_DIR]
set -uo pipefail
cd "$(dirname "$0")/.."
bins="${1:-carry/tests}"
out="${2:-${OUT:-/tmp}}"
mkdir -p "$out"
if [ ! -f /usr/share/vulkan/icd.d/nvidia_icd.json ] && [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
export WGPU_BACKEND="${WGPU_BACKEND:-vulkan}" RUST_LOG="${RUST_LOG:-wgbert=info}"
status=0
for t in matmul_coop attention_coop matmul parity; do
  bin="$bins/$t"
  if [ ! -x "$bin" ]; then
    echo "== $t: no binary at $bin (build and carry it first, see the top of this script)"
    status=1
    continue
  fi
  echo "== $t"
  # --nocapture shows the "skipped" lines, so a run on the wrong adapter is visible.
  if ! "$bin" --test-threads=1 --nocapture 2>&1 | tee "$out/$t.log"; then
    status=1
  fi
done
grep -h "test result\|skipped\|panicked" "$out"/*.log
exit $status
