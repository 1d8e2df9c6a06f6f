#!/usr/bin/env bash
# The npm packages of a package folder of web/ (web/test: puppeteer-core and typescript;
# web/figures: transformers.js too), installed once from its package-lock.json into
# WGBERT_TOOLS (default /var/tmp/wgbert-tools; one folder per lock file) and reused; prints
# that node_modules folder. --ignore-scripts: nothing but the packages is downloaded (no
# browser, no native runtime). Installs hold the folder's lock (two checkouts never write
# one folder at once) and are bounded to 10 minutes. Usage: bash scripts/web_node.sh web/test
set -euo pipefail
cd "$(dirname "$0")/.."
PKG="${1:?usage: web_node.sh PACKAGE_FOLDER}"
TOOLS="${WGBERT_TOOLS:-/var/tmp/wgbert-tools}"
[ -f "$PKG/package-lock.json" ] || { echo "web_node.sh: no $PKG/package-lock.json" >&2; exit 1; }
HASH="$(sha256sum "$PKG/package-lock.json" | cut -c1-16)"
DIR="$TOOLS/node-$(basename "$PKG")-$HASH"
if [ ! -f "$DIR/installed" ]; then
  echo "== installing the npm packages of $PKG into $DIR (once)" >&2
  mkdir -p "$DIR"
  cp "$PKG/package.json" "$PKG/package-lock.json" "$DIR/"
  # The marker is written last: an install cut short is redone (npm ci starts clean).
  timeout 600 flock "$DIR.lock" bash -c '[ -f "$0/installed" ] ||
    { cd "$0" && npm ci --no-audit --no-fund --ignore-scripts >/dev/null && touch installed; }' "$DIR"
fi
echo "$DIR/node_modules"
