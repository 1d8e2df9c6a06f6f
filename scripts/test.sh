#!/usr/bin/env bash
# The test command of README.md: sets up what the tests need on a fresh Debian/Ubuntu machine
# (a Vulkan driver: lavapipe, Mesa's software Vulkan, when no driver is installed), then runs
# formatting, lint and the whole test suite. Usage: bash scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

# An ICD file and the loader (no pipes with early exits: this script runs with pipefail).
have_vulkan_driver() {
  local f
  for f in /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json; do
    if [ -e "$f" ]; then
      ldconfig -p 2>/dev/null | grep libvulkan.so.1 >/dev/null
      return
    fi
  done
  return 1
}

if ! have_vulkan_driver; then
  echo "== no Vulkan driver found: installing lavapipe (mesa-vulkan-drivers) and the loader"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
fi

# The real ModernBERT tokenizer, when it sits beside the project, enables the tokenizer test.
if [ -z "${WGBERT_TOKENIZER:-}" ] && [ -f ../shared/tokenizer/modernbert/tokenizer.json ]; then
  export WGBERT_TOKENIZER="$(cd ../shared/tokenizer/modernbert && pwd)/tokenizer.json"
fi
# Tests run on lavapipe even on machines with a GPU, unless told otherwise.
export WGPU_BACKEND="${WGPU_BACKEND:-vulkan}"

echo "== cargo fmt --check"
cargo fmt --all -- --check
# --all-targets also type-checks the benchmarks and examples (no release build needed here).
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
echo "== the library alone: cargo build --lib --no-default-features"
cargo build --lib --no-default-features
cargo clippy --lib --no-default-features -- -D warnings
echo "== cargo doc --no-deps (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps
echo "== cargo test"
cargo test "$@"
