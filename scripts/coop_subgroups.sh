#!/usr/bin/env bash
# The reproducer of a lavapipe fault: Mesa 26's lavapipe offers 8x8x8 cooperative matrices
# at every subgroup size, but compiling even the smallest cooperative-matrix kernel
# (examples/coop_subgroups.rs: one subgroup, one product C = A B) crashes it at 16, 32 and 64
# lanes (a segmentation fault, or "stack smashing detected"), while 8 lanes work. The kernel's
# SPIR-V (naga's, as wgpu hands it to the driver) passes `spirv-val --target-env vulkan1.3`.
# So wgbert refuses cooperative matrices on lavapipe at subgroups other than 8
# (`Capabilities::coop_fault`).
#
# It runs the example in the Mesa 26 root of scripts/test_coop.sh (WGBERT_MESA_ROOT, default
# /var/tmp/wgbert-mesa26; made when missing) at LP_NATIVE_VECTOR_WIDTH 256, 512, 1024 and 2048
# (8, 16, 32 and 64 lanes), with its operands in storage buffers and staged in workgroup
# memory, prints what each run did, and validates the SPIR-V (installing spirv-tools in the
# root under its lock when missing). It exits 0 once every run has been reported.
# Usage (as root): bash scripts/coop_subgroups.sh
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd -P)"
export MESA_ROOT="${WGBERT_MESA_ROOT:-/var/tmp/wgbert-mesa26}"
# shellcheck source=scripts/mesa_root.sh
. scripts/mesa_root.sh
[ "$(id -u)" -eq 0 ] || { echo "coop_subgroups.sh: needs root (chroot)" >&2; exit 1; }
mesa_root_ensure
cargo build --example coop_subgroups
BIN="$(cd "${CARGO_TARGET_DIR:-$REPO/target}/debug/examples" && pwd -P)/coop_subgroups"
DIR="$(dirname "$BIN")"

printf '%-10s %-8s %-9s %s\n' variant lanes exit "last line"
for variant in global workgroup; do
  for width in 256 512 1024 2048; do
    rc=0
    out="$(mesa_root_run "$DIR" WGPU_BACKEND=vulkan LP_NATIVE_VECTOR_WIDTH="$width" \
      "$BIN" "$variant" 2>&1)" || rc=$?
    case "$rc" in 0) what=ok ;; 134) what="134 abort" ;; 139) what="139 segv" ;; *) what="$rc" ;; esac
    printf '%-10s %-8s %-9s %s\n' "$variant" "$((width / 32))" "$what" "$(echo "$out" | tail -1)"
  done
done

if ! mesa_root_run "$DIR" sh -c 'command -v spirv-val' >/dev/null; then
  mesa_root_apt install -y --no-install-recommends spirv-tools >/dev/null
fi
spv="$DIR/coop_subgroups.spv"
mesa_root_run "$DIR" WGPU_BACKEND=vulkan LP_NATIVE_VECTOR_WIDTH=1024 "$BIN" global 1 \
  --spirv "$spv" >/dev/null 2>&1 || true
if [ -s "$spv" ] && mesa_root_run "$DIR" spirv-val --target-env vulkan1.3 "$spv"; then
  echo "the 32-lane kernel's SPIR-V is valid (spirv-val --target-env vulkan1.3)"
else
  echo "no SPIR-V was written, or spirv-val rejected it"
fi
