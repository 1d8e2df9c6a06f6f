#!/usr/bin/env bash
# Here (with the Rust toolchain), before a GPU session: build the release binary and the test
# binaries that scripts/device_check.sh and scripts/device_bench.sh run, into carry/, and fetch
# the Vulkan loader packages into .gl/ (the GPU machine has the NVIDIA driver but may lack the
# loader). Both folders are ignored by git; name them in the device tool's `carry`.
# Then one device call runs everything:
#   for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig; bash scripts/device_all.sh
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p carry/tests
cargo build --release --bin wgbert
cp target/release/wgbert carry/wgbert
tests=(matmul_coop attention_coop matmul attention parity)
args=()
for t in "${tests[@]}"; do
  [ -f "tests/$t.rs" ] && args+=(--test "$t")
done
cargo test --release --no-run "${args[@]}" 2>&1 | tee /tmp/wgbert-test-build.log |
  grep -o 'target/release/deps/[a-z_]*-[0-9a-f]*' | sort -u | while read -r bin; do
    name=$(basename "$bin"); name=${name%-*}
    cp "$bin" "carry/tests/$name"
  done
cp ../shared/bench/torch_baseline.py carry/ 2>/dev/null || true
if [ ! -d .gl ] || ! ls .gl/*.deb >/dev/null 2>&1; then
  mkdir -p .gl /tmp/amd64/partial
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  # shellcheck disable=SC2086
  apt-get $o update -qq
  # shellcheck disable=SC2086
  (cd .gl && apt-get $o download libvulkan1)
fi
ls -la carry carry/tests .gl
