#!/usr/bin/env bash
# The tensor-core kernels on a real cooperative-matrix implementation, without a GPU: Mesa 26's
# lavapipe (llvmpipe) implements VK_KHR_cooperative_matrix (8x8x8 f16 fragments, 8-lane
# subgroups). It needs glibc 2.39, so it runs in a Debian 13 (trixie) root beside the host:
# this script makes that root once (debootstrap + mesa-vulkan-drivers from trixie-backports),
# builds the tests on the host, bind-mounts the checkout at its own path inside the root (so
# compile-time fixture paths resolve) and runs there, with WGBERT_COOP=1:
#   - `wgbert info --json`, which must name coop kernels for matmul and attention;
#   - `wgbert --dtype f16 bench --kernels --sweep` on small shapes, which must time the
#     tensor-core matmul and attention tile configurations;
#   - tests/matmul_coop.rs and tests/attention_coop.rs (real kernels, self-checks, and the
#     assertion that the automatic choice records them; the EMULATE builds are skipped,
#     the main suite runs those), tests/coop_cli.rs;
#   - tests/tune.rs (every tensor-core tile configuration checked and timed, per-row-class
#     configurations recorded, `wgbert tune` in f16 tuning them);
#   - tests/parity.rs (f16 within cosine 0.999 of transformers with the tensor-core kernels);
#   - tests/attention_long.rs (one 2100-token sequence, global and windowed layers).
#   - the warm start (tests/coop_cli.rs): a second process with the same WGBERT_CACHE runs no
#     self-check (the first cached the verdicts) and loads the compiled pipelines.
# A check that needs what the root's adapter lacks is skipped and logged; the skips are
# counted at the end (scripts/skip_report.sh). WGBERT_REQUIRE (a comma list: f16, subgroups,
# timestamps, coop, tokenizer, pipeline-cache; none of these tests reads the tokenizer) is passed
# into the root and makes those skips failures.
# Usage (as root, on Debian/Ubuntu): bash scripts/test_coop.sh
# CARGO_TARGET_DIR is honoured (a target directory outside the checkout is bind-mounted too).
# `bash scripts/test_coop.sh --run CMD ARGS...` runs CMD in the root instead of the tests (from
# the checkout, with its mounts, WGBERT_COOP unset), e.g. scripts/start_figures.sh.
# WGBERT_MESA_ROOT: where the root lives (default /var/tmp/wgbert-mesa26); an existing root is
# reused. Every mount made here is undone on exit, also on failure. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd -P)"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
mkdir -p "$TARGET"
TARGET="$(cd "$TARGET" && pwd -P)"
ROOT="${WGBERT_MESA_ROOT:-/var/tmp/wgbert-mesa26}"
TESTS=(matmul_coop attention_coop coop_cli tune parity attention_long)
RUN=()
if [ "${1:-}" = --run ]; then
  shift
  RUN=("$@")
  [ ${#RUN[@]} -gt 0 ] || { echo "test_coop.sh: --run needs a command" >&2; exit 1; }
fi

die() {
  echo "test_coop.sh: $*" >&2
  exit 1
}

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot and bind mounts)"
command -v cargo >/dev/null || die "cargo not found"

# The root: Debian 13 with Mesa 26 lavapipe and the Vulkan loader, made once under the
# root's lock (scripts/mesa_root.sh; shared with scripts/gpu_compilers.sh).
export MESA_ROOT="$ROOT"
# shellcheck source=scripts/mesa_root.sh
. "$REPO/scripts/mesa_root.sh"
mesa_root_ensure || die "could not make the Mesa 26 root at $ROOT"

# The binaries, built on the host (the root has no toolchain); none for --run.
if [ ${#RUN[@]} -eq 0 ]; then
  echo "== building the test binaries"
  # `cargo test` also builds target/debug/wgbert (the CLI tests run it), with the same
  # dependency features as the tests; a plain `cargo build` would rebuild wgpu with others.
  ARGS=()
  for t in "${TESTS[@]}"; do ARGS+=(--test "$t"); done
  BINS="$(cargo test --no-run --message-format=json "${ARGS[@]}" \
    | grep -o '"executable":"[^"]*/deps/[^"]*"' | sed 's/"executable":"\(.*\)"/\1/' || true)"
  [ -n "$BINS" ] || die "no test binaries were built"
fi

# The skip log, written inside the root (SKIP_LOG there, "$ROOT$SKIP_LOG" here) and counted on
# exit, also on failure, once the tests have started.
mkdir -p "$ROOT/tmp"
SKIP_LOG="/tmp/$(basename "$(mktemp -p "$ROOT/tmp" wgbert-skips.XXXXXX)")"
REPORT_SKIPS=""

# Mounts, undone on exit in reverse order (only those made here).
MOUNTED=()
cleanup() {
  local i
  for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
    umount "${MOUNTED[$i]}" 2>/dev/null || umount -l "${MOUNTED[$i]}" || true
  done
  if [ -n "$REPORT_SKIPS" ]; then bash "$REPO/scripts/skip_report.sh" "$ROOT$SKIP_LOG" || true; fi
  rm -f "$ROOT$SKIP_LOG"
}
trap cleanup EXIT
bind() { # bind SOURCE TARGET [type]
  mkdir -p "$2"
  if ! mountpoint -q "$2"; then
    if [ "${3:-}" = proc ]; then mount -t proc proc "$2"; else mount --bind "$1" "$2"; fi
    MOUNTED+=("$2")
  fi
}
bind "$REPO" "$ROOT$REPO"
case "$TARGET/" in
  "$REPO"/*) ;;
  *) bind "$TARGET" "$ROOT$TARGET" ;;
esac
bind proc "$ROOT/proc" proc
bind /dev "$ROOT/dev"

if [ ${#RUN[@]} -gt 0 ]; then
  echo "== ${RUN[*]} (Mesa 26 lavapipe)"
  chroot "$ROOT" env -i PATH=/usr/bin:/bin HOME=/tmp XDG_RUNTIME_DIR=/tmp WGPU_BACKEND=vulkan \
    bash -c 'cd "$0" && exec "$@"' "$REPO" "${RUN[@]}"
  exit
fi

run() {
  chroot "$ROOT" env -i PATH=/usr/bin:/bin HOME=/tmp XDG_RUNTIME_DIR=/tmp \
    WGPU_BACKEND=vulkan WGBERT_COOP=1 RUST_BACKTRACE=1 \
    WGBERT_REQUIRE="${WGBERT_REQUIRE:-}" WGBERT_SKIP_LOG="$SKIP_LOG" "$@"
}

echo "== wgbert info --json (Mesa 26 lavapipe, WGBERT_COOP=1)"
INFO="$(run "$TARGET/debug/wgbert" info --json)"
echo "$INFO" | grep -E '"name"|"matmul"|"attention"|coop_reason'
echo "$INFO" | grep -q '"matmul": "matmul_coop' || die "info: no tensor-core matmul chosen"
echo "$INFO" | grep -q '"attention": "attention_coop' || die "info: no tensor-core attention chosen"

echo "== wgbert --dtype f16 bench --kernels --sweep (Mesa 26 lavapipe, small shapes)"
SWEEP="$(run env WGBERT_BENCH_SMALL=1 WGBERT_CACHE=/tmp/wgbert-sweep-cache \
  "$TARGET/debug/wgbert" --dtype f16 bench --kernels --sweep --json)"
for want in '[coop 2x2w32]' '[coop 2x4w32]' '[coop 32x64]' '[coop 32x32]'; do
  echo "$SWEEP" | grep -qF "$want" || die "the sweep has no $want case"
done
echo "$SWEEP" | grep -o '"[^"]*\[coop [^]]*\]"' | wc -l | sed 's/^/tensor-core cases swept: /'

# The EMULATE builds are tested by the main suite; here only the real kernels run.
echo "== WGBERT_REQUIRE=${WGBERT_REQUIRE:-}"
REPORT_SKIPS=1
for bin in $BINS; do
  echo "== $(basename "$bin") (Mesa 26 lavapipe, WGBERT_COOP=1)"
  run "$bin" --test-threads=2 --skip emulated
done
echo "== test_coop.sh: all passed"
