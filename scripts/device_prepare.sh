#!/usr/bin/env bash
# Here (with the Rust toolchain), before a GPU session: build what scripts/device_all.sh runs
# on the GPU machine (which has no Rust toolchain) into carry/, stripped (the test binaries
# gzipped into carry/tests.tar.gz, which device_all.sh unpacks), and fetch the Vulkan loader
# packages into .gl/ (the GPU machine has the NVIDIA driver but may lack the loader).
# Both folders are ignored by git; name them in the device tool's `carry`: [".gl", "carry"].
# The device tool carries at most 64 MiB, so this fails when carry/ and .gl/ together exceed
# WGBERT_CARRY_LIMIT_MB (default 58, leaving room for the work tree's own files).
# Then one device call runs everything (see scripts/device_all.sh):
#   bash scripts/device_all.sh
# usage: bash scripts/device_prepare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
limit_mb="${WGBERT_CARRY_LIMIT_MB:-58}"

# The test suites device_all.sh runs on the GPU, in that order (only those that exist).
tests=(matmul_coop attention_coop matmul attention parity)

rm -rf carry
mkdir -p carry/tests
echo "== cargo build --release --bin wgbert"
cargo build --release --bin wgbert
strip -o carry/wgbert target/release/wgbert

args=()
for t in "${tests[@]}"; do
  [ -f "tests/$t.rs" ] && args+=(--test "$t")
done
echo "== cargo test --release --no-run ${args[*]}"
# cargo prints each test binary as "Executable tests/NAME.rs (target/release/deps/NAME-HASH)".
cargo test --release --no-run "${args[@]}" 2>&1 | tee target/device-test-build.log
grep -o 'target/release/deps/[a-z_0-9]*-[0-9a-f]*' target/device-test-build.log | sort -u |
  while read -r bin; do
    name=$(basename "$bin")
    strip -o "carry/tests/${name%-*}" "$bin"
  done
for t in "${tests[@]}"; do
  if [ -f "tests/$t.rs" ] && [ ! -x "carry/tests/$t" ]; then
    echo "error: no test binary for tests/$t.rs (see target/device-test-build.log)" >&2
    exit 1
  fi
done

# Test binaries are mostly the same libraries linked five times: gzip takes them to about a
# third.
tar -C carry -czf carry/tests.tar.gz tests
rm -rf carry/tests

# The reference benchmark travels with the binaries (../shared is not on the GPU machine).
if [ -f ../shared/bench/torch_baseline.py ]; then
  cp ../shared/bench/torch_baseline.py carry/
else
  echo "warning: ../shared/bench/torch_baseline.py not found: the run will have no reference" >&2
fi

# The Vulkan loader and the GL/EGL libraries the NVIDIA ICD links against (../shared/GPU.md).
packages=(libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
have_all=1
for p in "${packages[@]}"; do
  ls .gl/"${p}"_*.deb >/dev/null 2>&1 || have_all=0
done
if [ "$have_all" = 0 ]; then
  echo "== apt-get download ${packages[*]} (amd64) into .gl/"
  rm -rf .gl
  mkdir -p .gl
  lists=$(mktemp -d)
  mkdir -p "$lists/partial"
  o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 "-oDir::State::Lists=$lists")
  apt-get "${o[@]}" update -qq
  (cd .gl && apt-get "${o[@]}" download "${packages[@]}")
  rm -rf "$lists"
fi

ls -la carry .gl
bytes=$(du -scb carry .gl | tail -1 | cut -f1)
mb=$((bytes / 1000000))
echo "== carry/ + .gl/: ${mb} MB (limit ${limit_mb} MB)"
if [ "$mb" -gt "$limit_mb" ]; then
  echo "error: carry/ and .gl/ hold ${mb} MB, over the ${limit_mb} MB limit; drop a test suite" >&2
  exit 1
fi
