#!/usr/bin/env bash
# Builds the browser package into web/dist/: the web crate (web/: the wgbert library, its
# kernels and plans, for wasm32-unknown-unknown on WebGPU) in release, wasm-bindgen's
# `--target web` glue (dist/pkg/), the JS package (wgbert.js, wgbert.d.ts, package.json),
# the harness page (harness.html) and the demo page (demo.html). Prints the .wasm's size.
#
# Debian 12's rustc has no wasm32 standard library (and rustup cannot add targets here), so
# the build runs in the shared Debian 13 root of scripts/mesa_root.sh (WGBERT_MESA_ROOT,
# default /var/tmp/wgbert-mesa26; made when absent), with trixie-backports' rustc, cargo,
# wasm32 standard library and lld, installed there once under the root's lock (mesa_root_apt);
# it runs there through mesa_root_run, which mounts the checkout in a mount namespace of its
# own; the build's cargo home and target directory live in the root itself, at fixed paths
# (/var/cache/wgbert-web), so
# that every checkout reuses the compiled dependencies (about 9 minutes on 2 cores, once per
# machine; a fresh clone then compiles wgbert and wgbert-web only). The crates are fetched
# into that cargo home from here, and the root's cargo works offline. The wasm-bindgen CLI
# must be the version of `wasm-bindgen` in Cargo.lock: it is built once with `cargo install`
# into WGBERT_TOOLS (default /var/tmp/wgbert-tools) and reused.
#
# Every step that may wait on a network or a long compile is bounded (timeout): the crates'
# download 10 minutes, the wasm-bindgen CLI's build 30, the wasm build 30; one that runs
# over fails the build, naming the step.
#
# Usage (as root): bash scripts/build_web.sh. Exit 0: built. Exit 3: the toolchain cannot be
# had on this machine (not root, no apt, no root directory), with the reason on stderr
# (scripts/test_web.sh counts it as a skip). Anything else: a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd -P)"
ROOT="${WGBERT_MESA_ROOT:-/var/tmp/wgbert-mesa26}"
TOOLS="${WGBERT_TOOLS:-/var/tmp/wgbert-tools}"
# The build's cargo home and target directory, as paths inside the root.
CACHE=/var/cache/wgbert-web
DIST="$REPO/web/dist"
WASM_TARGET=wasm32-unknown-unknown

die() {
  echo "build_web.sh: $*" >&2
  exit 1
}
# `bounded SECONDS WHAT CMD...`: CMD, killed (its process group) after SECONDS.
bounded() {
  local secs="$1" what="$2" rc=0
  shift 2
  timeout "$secs" "$@" || rc=$?
  [ "$rc" -ne 124 ] || die "$what took over $secs s: stopped"
  return "$rc"
}
unavailable() {
  echo "build_web.sh: cannot build for the browser here: $*" >&2
  exit 3
}

[ "$(id -u)" -eq 0 ] || unavailable "needs root (chroot, bind mounts, apt)"
command -v cargo >/dev/null || unavailable "cargo not found"
command -v apt-get >/dev/null || unavailable "no apt-get"

# The root and its Rust toolchain for wasm32 (rustc >= 1.87: trixie's own is 1.85).
toolchain_ready() {
  [ -x "$ROOT/usr/bin/cargo" ] && [ -d "$ROOT/usr/lib/rustlib/$WASM_TARGET/lib" ] &&
    [ -x "$ROOT/usr/lib/llvm-22/bin/wasm-ld" ]
}
export MESA_ROOT="$ROOT"
# shellcheck source=scripts/mesa_root.sh
. scripts/mesa_root.sh
mesa_root_ensure || unavailable "the root at $ROOT could not be made"
if ! toolchain_ready; then
  echo "== installing rustc, cargo and the wasm32 standard library (trixie-backports) in $ROOT"
  { mesa_root_apt update && mesa_root_apt install -y --no-install-recommends \
    -t trixie-backports rustc cargo libstd-rust-dev-wasm32 lld-22 >/dev/null; } ||
    unavailable "installing the Rust toolchain in $ROOT failed"
  toolchain_ready || unavailable "the root has no wasm32 toolchain after installing it"
fi

# The wasm-bindgen CLI of Cargo.lock's version, built once (about 5 to 12 minutes).
WB_VERSION="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)"
[ -n "$WB_VERSION" ] || die "no wasm-bindgen in Cargo.lock"
WB_ROOT="$TOOLS/wasm-bindgen-$WB_VERSION"
WB="$WB_ROOT/bin/wasm-bindgen"
if [ ! -x "$WB" ]; then
  echo "== building wasm-bindgen-cli $WB_VERSION into $WB_ROOT (once)"
  mkdir -p "$TOOLS"
  # Not --locked: the CLI's own lock file names a crate version the registry index lacks.
  bounded 1800 "building wasm-bindgen-cli" flock "$TOOLS.lock" bash -c '[ -x "$1" ] || cargo install -q wasm-bindgen-cli --version "$2" \
    --root "$3" --target-dir "$4"' _ "$WB" "$WB_VERSION" "$WB_ROOT" "$TOOLS/build-$WB_VERSION" ||
    die "cargo install wasm-bindgen-cli $WB_VERSION failed"
  rm -rf "$TOOLS/build-$WB_VERSION"
fi

echo "== fetching the crates for $WASM_TARGET"
mkdir -p "$ROOT$CACHE/cargo-home" "$ROOT$CACHE/target"
# Every platform's crates: cargo resolves the whole lock file, host tools included.
CARGO_HOME="$ROOT$CACHE/cargo-home" bounded 600 "cargo fetch" cargo fetch >/dev/null

# In the root, the checkout mounted at its own path (mesa_root_run; the mount goes with the
# command), built from there, bounded by the root's own `timeout`.
echo "== cargo build --release -p wgbert-web --target $WASM_TARGET (Debian 13 root)"
BUILD_S=1800
RC=0
mesa_root_run "$REPO" CARGO_HOME="$CACHE/cargo-home" CARGO_TARGET_DIR="$CACHE/target" \
  CARGO_INCREMENTAL=0 CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=/usr/lib/llvm-22/bin/wasm-ld \
  timeout "$BUILD_S" bash -c 'cd "$0" && exec "$@"' "$REPO" \
  cargo build --offline --release -p wgbert-web --lib --target "$WASM_TARGET" || RC=$?
[ "$RC" -ne 124 ] || die "the wasm build took over $BUILD_S s: stopped"
[ "$RC" -eq 0 ] || die "the wasm build failed"
WASM="$ROOT$CACHE/target/$WASM_TARGET/release/wgbert_web.wasm"
[ -f "$WASM" ] || die "no $WASM after the build"

echo "== wasm-bindgen --target web, the JS package and the pages into web/dist"
rm -rf "$DIST"
mkdir -p "$DIST/pkg"
"$WB" --target web --out-dir "$DIST/pkg" --out-name wgbert_web "$WASM"
cp web/js/wgbert.js web/js/wgbert.d.ts web/js/package.json "$DIST/"
cp web/pages/*.html web/pages/*.js "$DIST/"
BYTES="$(stat -c %s "$DIST/pkg/wgbert_web_bg.wasm")"
GZ="$(gzip -9c "$DIST/pkg/wgbert_web_bg.wasm" | wc -c)"
echo "== web/dist built: wgbert_web_bg.wasm $((BYTES / 1024)) KiB ($((GZ / 1024)) KiB gzipped)"
