#!/usr/bin/env bash
# The desktop app (apps/desktop, `desktop-search`) as a person would use it, under a real X
# server: installs Xvfb when missing (Debian: xvfb, xauth), builds the `wgbert` command line
# and the app, then runs the app's tests (apps/desktop/tests/scripted.rs): a script opens the
# fixture folder (tests/fixtures/desktop_docs), waits for indexing, types a query, waits for
# the results, saves a screenshot and exits; the test checks the exit code, the PNG (the
# window's size, not blank), that the ranking is the cosine ranking of `wgbert embed` vectors
# of the same chunks (f32, within 1e-5), the Fill mask tab against `wgbert fill-mask`, and
# that a model without a tokenizer or a folder without text fails the script with the error
# shown. It prints the largest frame gap seen while indexing. Runs on lavapipe unless
# WGPU_BACKEND says otherwise.
# Usage: bash scripts/test_desktop.sh [SCREENSHOT.png]   (keeps a copy of the screenshot)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v xvfb-run >/dev/null || ! command -v xauth >/dev/null; then
  echo "== installing Xvfb (xvfb, xauth)"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq xvfb xauth >/dev/null
fi
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export WGPU_BACKEND="${WGPU_BACKEND:-vulkan}"
if [ -n "${1:-}" ]; then
  DESKTOP_SEARCH_SCREENSHOT="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
  export DESKTOP_SEARCH_SCREENSHOT
fi

start=$(date +%s)
echo "== building wgbert and desktop-search"
# target/debug/wgbert as `cargo test` builds it (the CLI tests run it): with the tests'
# dependency features, so that after scripts/test.sh nothing is rebuilt (a plain
# `cargo build --bin wgbert` would rebuild wgpu with other features).
cargo test --no-run --test cli >/dev/null
cargo test -p desktop-search --no-run
echo "== built in $(($(date +%s) - start)) s"
# One at a time: each scripted run opens its own X server and window.
cargo test -p desktop-search -- --test-threads=1 --nocapture
echo "== test_desktop.sh: passed in $(($(date +%s) - start)) s"
