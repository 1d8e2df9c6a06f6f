#!/usr/bin/env bash
# wgbert-web beside transformers.js (ONNX Runtime Web on WebGPU) in the same headless
# browser, on the same model and texts: a random-weight ModernBERT with the real tokenizer
# (scripts/make_web_figures_model.py: saved by transformers, exported to ONNX by torch),
# 16 texts of 8 to 200 words (WGBERT_FIGURE_TEXTS), f32, mean pooling, normalized. Prints per browser each
# engine's median time (after a warm-up), their ratio, and the embeddings' agreement (the
# script fails where their cosine is under 0.999); the figures go to
# target/web-figures/figures.json. Here both adapters are CPUs (Chromium: SwiftShader;
# Firefox: lavapipe): the ratios compare the engines on a CPU adapter, not on a GPU.
#
# Needs: web/dist (scripts/build_web.sh runs first), the real tokenizer
# (WGBERT_TOKENIZER, default ../shared/tokenizer/modernbert/tokenizer.json), a Python with
# torch, transformers, onnx and onnxscript (WGBERT_FIGURES_PYTHON, default
# /var/tmp/wgbert-fixtures-venv/bin/python), node with npm (transformers.js and
# puppeteer-core are installed once into WGBERT_TOOLS: scripts/web_node.sh).
# Usage (as root): bash scripts/web_figures.sh [chromium] [firefox] (default both); RUNS=3.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd -P)"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
TOOLS="${WGBERT_TOOLS:-/var/tmp/wgbert-tools}"
PY="${WGBERT_FIGURES_PYTHON:-/var/tmp/wgbert-fixtures-venv/bin/python}"
TOK="${WGBERT_TOKENIZER:-$REPO/../shared/tokenizer/modernbert/tokenizer.json}"
WORK="$TARGET/web-figures"
BROWSERS=("$@")
[ ${#BROWSERS[@]} -gt 0 ] || BROWSERS=(chromium firefox)

die() {
  echo "web_figures.sh: $*" >&2
  exit 1
}
[ -f "$TOK" ] || die "no tokenizer at $TOK (set WGBERT_TOKENIZER)"
[ -x "$PY" ] || die "no Python at $PY (set WGBERT_FIGURES_PYTHON)"

bash scripts/build_web.sh

if [ ! -f "$WORK/model/onnx/model.onnx" ]; then
  echo "== the model: random ModernBERT weights, saved by transformers, exported to ONNX"
  "$PY" scripts/make_web_figures_model.py --tokenizer "$TOK" --out "$WORK/model"
fi

WGBERT_NODE_MODULES="$(bash scripts/web_node.sh web/figures)"
export WGBERT_NODE_MODULES
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
node web/figures/run.mjs "$REPO/web/dist" "$WORK/model" "$WORK" "${RUNS:-3}" "${BROWSERS[@]}"
