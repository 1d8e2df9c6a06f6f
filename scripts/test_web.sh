#!/usr/bin/env bash
# The browser tests: lints the web crate and runs its unit tests on this machine's target,
# builds web/dist (scripts/build_web.sh: the library for wasm32 in release, once), installs
# what drives the browsers once (puppeteer-core and typescript from npm, into WGBERT_TOOLS,
# default /var/tmp/wgbert-tools, keyed by web/test/package-lock.json: scripts/web_node.sh;
# Debian's chromium and firefox-esr when absent), checks the package's TypeScript types
# (web/test/types.ts, tsc --strict), serves web/dist and the fixtures on 127.0.0.1 and runs
# the harness page in headless Chromium (SwiftShader: f32) and Firefox ESR (lavapipe: f16
# and f32) against transformers' outputs, and against the `wgbert` command line's
# (WGBERT_CLI, default target/debug/wgbert) with ModernBERT's tokenizer (WGBERT_TOKENIZER,
# default ../shared/tokenizer/modernbert/tokenizer.json); web/test/run.mjs lists the checks.
#
# A browser, node or the wasm32 toolchain that cannot be had is a skip, never silent: it is
# named on stderr, logged as capability `web` in WGBERT_SKIP_LOG (one is made when unset) and
# counted at the end (scripts/skip_report.sh); with `web` in WGBERT_REQUIRE it is a failure.
# Usage (as root): bash scripts/test_web.sh [chromium] [firefox] (default both). Prints the
# time of each step and in all. Each step is bounded: the build's (scripts/build_web.sh), the
# npm install 10 minutes, the browsers' apt install 15, each page WGBERT_WEB_TIMEOUT_S
# (default 300 s), all the pages in both browsers 15 minutes; one that runs over fails.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd -P)"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
TOOLS="${WGBERT_TOOLS:-/var/tmp/wgbert-tools}"
BROWSERS=("$@")
[ ${#BROWSERS[@]} -gt 0 ] || BROWSERS=(chromium firefox)
STARTED=$SECONDS

OWN_LOG=""
if [ -z "${WGBERT_SKIP_LOG:-}" ]; then
  WGBERT_SKIP_LOG="$(mktemp -t wgbert-skips.XXXXXX)"
  OWN_LOG=1
fi
finish() {
  local status=$?
  echo "== test_web.sh: $((SECONDS - STARTED)) s in all"
  if [ -n "$OWN_LOG" ]; then
    bash scripts/skip_report.sh "$WGBERT_SKIP_LOG" || true
    rm -f "$WGBERT_SKIP_LOG"
  fi
  return "$status"
}
trap finish EXIT

# A skip of `checks` because of `why`: logged and counted, or a failure where required.
skip() {
  local why="$1" checks="$2"
  case ",${WGBERT_REQUIRE:-}," in
    *,web,*)
      echo "test_web.sh: headless browsers and the wasm32 toolchain required by WGBERT_REQUIRE=$WGBERT_REQUIRE, but $why: $checks cannot run" >&2
      exit 1
      ;;
  esac
  echo "skipped (web): $checks: $why" >&2
  printf 'test_web.sh\tweb\t%s\t%s\n' "${why//$'\t'/ }" "$checks" >>"$WGBERT_SKIP_LOG"
}

step() {
  echo "== $1 ($((SECONDS - STARTED)) s)"
}

# The web crate on this machine's target: lint and its unit tests (options parsing).
step "cargo clippy -p wgbert-web --all-targets, cargo test -p wgbert-web"
cargo clippy -q -p wgbert-web --all-targets -- -D warnings
cargo test -q -p wgbert-web

step "building web/dist"
set +e
bash scripts/build_web.sh
BUILT=$?
set -e
if [ "$BUILT" -eq 3 ]; then
  skip "the wasm32 toolchain cannot be had here (see above)" "the browser tests"
  exit 0
fi
[ "$BUILT" -eq 0 ] || exit "$BUILT"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  skip "node and npm are not installed" "the browser tests"
  exit 0
fi
if ! NODE_MODULES="$(bash scripts/web_node.sh web/test)"; then
  skip "npm could not install web/test's packages" "the browser tests"
  exit 0
fi
export WGBERT_NODE_MODULES="$NODE_MODULES"

step "the package's TypeScript types (tsc --strict)"
node "$WGBERT_NODE_MODULES/typescript/bin/tsc" --noEmit --strict --target es2022 \
  --moduleResolution node --lib es2022,dom web/test/types.ts

# Debian's browsers, installed once when absent.
declare -A EXE=([chromium]="${WGBERT_CHROMIUM:-/usr/bin/chromium}" [firefox]="${WGBERT_FIREFOX:-/usr/bin/firefox-esr}")
declare -A PKG=([chromium]=chromium [firefox]=firefox-esr)
WANT=()
for b in "${BROWSERS[@]}"; do
  [ -n "${EXE[$b]:-}" ] || { echo "test_web.sh: unknown browser '$b' (chromium, firefox)" >&2; exit 2; }
  [ -x "${EXE[$b]}" ] || WANT+=("${PKG[$b]}")
done
if [ ${#WANT[@]} -gt 0 ] && command -v apt-get >/dev/null && [ "$(id -u)" -eq 0 ]; then
  step "installing ${WANT[*]} (Debian)"
  timeout 300 apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends "${WANT[@]}" >/dev/null || true
fi
RUN=()
for b in "${BROWSERS[@]}"; do
  if [ -x "${EXE[$b]}" ]; then
    RUN+=("$b")
  else
    skip "${EXE[$b]} is not installed (Debian package ${PKG[$b]})" "the harness in $b"
  fi
done
[ ${#RUN[@]} -gt 0 ] || exit 0

# The comparison with the command line: ModernBERT's tokenizer and the `wgbert` binary that
# `cargo test` (scripts/test.sh) built.
if [ -z "${WGBERT_TOKENIZER:-}" ] && [ -f ../shared/tokenizer/modernbert/tokenizer.json ]; then
  WGBERT_TOKENIZER="$(cd ../shared/tokenizer/modernbert && pwd)/tokenizer.json"
fi
export WGBERT_CLI="${WGBERT_CLI:-$TARGET/debug/wgbert}"
if [ -z "${WGBERT_TOKENIZER:-}" ]; then
  skip "WGBERT_TOKENIZER is not set" "the harness against the CLI with ModernBERT's tokenizer"
elif [ ! -x "$WGBERT_CLI" ]; then
  skip "no wgbert binary at $WGBERT_CLI (cargo build)" "the harness against the CLI with ModernBERT's tokenizer"
  unset WGBERT_CLI
else
  export WGBERT_TOKENIZER
fi

step "the harness page in ${RUN[*]}"
# Firefox's WebGPU runs on Vulkan: lavapipe needs a runtime directory.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
RC=0
timeout 900 node web/test/run.mjs "$REPO/web/dist" "$TARGET/web-test" "${RUN[@]}" || RC=$?
if [ "$RC" -eq 124 ]; then
  echo "test_web.sh: the browser checks took over 900 s: stopped" >&2
fi
[ "$RC" -eq 0 ] || exit "$RC"
step "test_web.sh: all passed"
