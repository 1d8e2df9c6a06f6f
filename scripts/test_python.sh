#!/usr/bin/env bash
# The Python package (python/): builds its wheel with maturin (from PyPI), installs it into a
# fresh venv with the test libraries of python/requirements-test.txt and runs pytest
# (python/tests: the fixtures' stored outputs, errors, threads, Ctrl-C, Ray Data on a local
# cluster); then installs the same wheel into a second fresh venv that holds only numpy and
# runs README's Python example there on a fixture model, and SparseEncoder's ImportError
# naming scipy, which that venv lacks. Prints the wheel's size.
#
# Usage: bash scripts/test_python.sh [pytest args]
#   WGBERT_PY_VENV     the test venv (default target/python-venv; the bare one gets -bare)
#   WGBERT_PY_PROFILE  cargo profile of the wheel (default dev: the dependencies the Rust
#                      tests compiled into target/ are reused; `release` for a user's wheel)
#   PYTHON             the interpreter the venvs are made from (default python3, >= 3.9)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
export CARGO_INCREMENTAL=0
# Tests run on lavapipe even on machines with a GPU, unless told otherwise.
export WGPU_BACKEND="${WGPU_BACKEND:-vulkan}"
export HF_HUB_OFFLINE=1
PY="${PYTHON:-python3}"
VENV="${WGBERT_PY_VENV:-target/python-venv}"
case "$VENV" in /*) ;; *) VENV="$ROOT/$VENV" ;; esac
BARE="$VENV-bare"
PROFILE="${WGBERT_PY_PROFILE:-dev}"

# Debian's python3 needs the venv module (python3-venv) to make venvs with pip.
if ! "$PY" -c 'import ensurepip' >/dev/null 2>&1; then
  echo "== installing python3-venv"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
fi

started=$(date +%s)
echo "== test venv $VENV"
rm -rf "$VENV"
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check -r python/requirements-test.txt

echo "== wheel (maturin, cargo profile $PROFILE)"
WHEELS="$ROOT/target/wheels"
rm -f "$WHEELS"/wgbert-*.whl
"$VENV/bin/maturin" build --manifest-path python/Cargo.toml --profile "$PROFILE" \
  --out "$WHEELS" --interpreter "$VENV/bin/python"
WHEEL="$(ls "$WHEELS"/wgbert-*.whl)"
bytes=$(stat -c %s "$WHEEL")
echo "wheel: $(basename "$WHEEL"): $bytes bytes ($((bytes / 1024 / 1024)) MiB)"
"$VENV/bin/pip" install -q --disable-pip-version-check --no-deps --force-reinstall "$WHEEL"

echo "== pytest"
# From the tests' own directory, so that `import wgbert` is the installed wheel and not the
# sources in python/wgbert.
(cd python/tests && "$VENV/bin/pytest" -q -p no:cacheprovider "$@")

echo "== README example in a venv with only the wheel and numpy"
rm -rf "$BARE"
"$PY" -m venv "$BARE"
"$BARE/bin/pip" install -q --disable-pip-version-check "$WHEEL"
extra=$("$BARE/bin/pip" list --format freeze --disable-pip-version-check \
  | grep -v -i -E '^(wgbert|numpy|pip|setuptools|wheel)==' || true)
if [ -n "$extra" ]; then
  echo "the wheel pulled in more than numpy: $extra" >&2
  exit 1
fi
example="$(mktemp -t wgbert-example.XXXXXX.py)"
# The first ```python block of README.md's Python section.
awk '/^## Python/{s=1} s&&/^```python/{p=1;next} p&&/^```/{exit} p{print}' README.md >"$example"
[ -s "$example" ] || { echo "no Python example found in README.md" >&2; exit 1; }
(cd /tmp && WGBERT_MODEL="$ROOT/tests/fixtures/st_mean_dense" "$BARE/bin/python" "$example")
rm -f "$example"
# Without scipy the package imports and SparseEncoder loads; its vectors say scipy is needed.
(cd /tmp && "$BARE/bin/python" - "$ROOT/tests/fixtures/splade_max" <<'PY'
import sys
import wgbert
enc = wgbert.SparseEncoder(sys.argv[1], dtype="f32")
try:
    enc.encode("fish")
except ImportError as e:
    assert "scipy" in str(e), e
    print("without scipy:", e)
else:
    raise SystemExit("SparseEncoder.encode worked without scipy")
PY
)
echo "== python: done in $(($(date +%s) - started)) s; wheel $bytes bytes"
