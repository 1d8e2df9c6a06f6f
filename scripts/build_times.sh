#!/usr/bin/env bash
# Clean build times of the library alone and of the whole default build (library + CLI),
# one after the other on this machine, each in a fresh target directory, and the number of
# crates each compiles. Then `cargo publish --dry-run` reuses the full build's directory.
# Usage: bash scripts/build_times.sh [WORK_DIR]   (default: a new temporary directory)
set -euo pipefail
cd "$(dirname "$0")/.."
WORK="${1:-$(mktemp -d)}"
mkdir -p "$WORK"
export CARGO_INCREMENTAL=0

# Runs a clean `cargo build ARGS...` in target directory $1; prints seconds and crate count.
timed_build() {
  local dir="$WORK/$1"
  shift
  rm -rf "$dir"
  local t0 t1
  t0=$(date +%s)
  CARGO_TARGET_DIR="$dir" cargo build "$@" 2>"$dir.log" || {
    tail -20 "$dir.log" >&2
    return 1
  }
  t1=$(date +%s)
  echo "$((t1 - t0)) $(grep -c '^ *Compiling ' "$dir.log")"
}

read -r lib_s lib_n < <(timed_build lib --lib --no-default-features) || exit 1
echo "cargo build --lib --no-default-features: ${lib_s} s, ${lib_n} crates"
read -r full_s full_n < <(timed_build full) || exit 1
echo "cargo build (default features: library + wgbert CLI): ${full_s} s, ${full_n} crates"
awk -v a="$lib_s" -v b="$full_s" 'BEGIN { printf "library alone / full build: %.2f\n", a / b }'

echo "== cargo publish --dry-run"
CARGO_TARGET_DIR="$WORK/full" cargo publish --dry-run --allow-dirty 2>&1 | tail -5
rm -rf "${WORK:?}/lib" "${WORK:?}/full"
