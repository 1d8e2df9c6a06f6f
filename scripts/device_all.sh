#!/usr/bin/env bash
# One prepared device call: correctness on the GPU first (cooperative-matrix kernels against
# the CPU reference, parity with transformers), then speed against the reference in the same
# call. Results go to $OUT. Prepare with scripts/device_prepare.sh.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp/wgbert-device}"
mkdir -p "$out"
if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] && [ ! -f /usr/share/vulkan/icd.d/nvidia_icd.json ]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
carry/wgbert info | tee "$out/info.txt"
bash scripts/device_check.sh carry/tests "$out" 2>&1 | tail -40
BASELINE=carry/torch_baseline.py bash scripts/device_bench.sh carry/wgbert "$out"
