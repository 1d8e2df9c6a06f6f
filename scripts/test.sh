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
# A check that needs what this machine lacks (f16, subgroups, timestamps, cooperative
# matrices, the tokenizer) is skipped and logged (tests/common/require.rs); the log is counted
# at the end, also when a test fails. A caller's WGBERT_REQUIRE (a comma list, e.g.
# f16,subgroups,timestamps,tokenizer: what CI expects of its machine) makes those skips
# failures.
export WGBERT_REQUIRE="${WGBERT_REQUIRE:-}"
WGBERT_SKIP_LOG="$(mktemp -t wgbert-skips.XXXXXX)"
export WGBERT_SKIP_LOG
report() {
  local status=$?
  if [ -n "${REPORT_SKIPS:-}" ]; then bash scripts/skip_report.sh "$WGBERT_SKIP_LOG"; fi
  rm -f "$WGBERT_SKIP_LOG"
  return "$status"
}
trap report EXIT

echo "== cargo fmt --check"
cargo fmt --all -- --check
# --all-targets also type-checks the benchmarks and examples (no release build needed here).
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
echo "== the library alone: cargo build --lib --no-default-features"
cargo build --lib --no-default-features
cargo clippy --lib --no-default-features -- -D warnings
echo "== the command line without gRPC: cargo clippy --no-default-features --features cli,hub --bin wgbert"
cargo clippy --no-default-features --features cli,hub --bin wgbert -- -D warnings
echo "== cargo doc --no-deps (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps
echo "== cargo test (WGBERT_REQUIRE=${WGBERT_REQUIRE})"
REPORT_SKIPS=1
cargo test "$@"
