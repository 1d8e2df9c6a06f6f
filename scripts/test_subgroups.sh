#!/usr/bin/env bash
# The kernels at the subgroup sizes of GPUs, on lavapipe: its subgroup size follows
# LP_NATIVE_VECTOR_WIDTH (128 bits: 4 lanes, 256: 8, the default, 1024: 32 as NVIDIA's, 2048:
# 64 as AMD's wave64). With WGBERT_CPU_AS_GPU=1 lavapipe also takes the kernels a GPU takes
# (the staged tiled matmul, not the DIRECT build of CPU adapters), so these runs test the GPU
# path. scripts/test.sh runs everything at 8 lanes; this runs, at 4, 32 and 64 lanes, the
# cases whose work depends on the subgroup size:
#   - matmul: every epilogue through the staged tiled and the subgroup kernel, the automatic
#     switch between them, random shapes; at 32 lanes every tiled tile configuration;
#   - attention: head sizes, windows and lengths, key limits, the local window, several tiles;
#     at 64 lanes every tile configuration;
#   - norms: every LayerNorm and embedding variant (the subgroup reductions), random rows;
#   - heads: pooling and top-k;
# and, at 32 and 64 lanes, the model parity suite (tests/parity.rs asserts that its plans
# run the staged tiled build, and its figures are not the DIRECT path's).
# Each width is checked first: `wgbert info --json` must report that subgroup size.
# The test binaries are the ones `cargo test` built (built here when missing). Skips are
# counted at the end; WGBERT_REQUIRE (f16,subgroups,timestamps in CI) makes them failures.
# Usage: bash scripts/test_subgroups.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export WGPU_BACKEND="${WGPU_BACKEND:-vulkan}" WGBERT_CPU_AS_GPU=1
export WGBERT_REQUIRE="${WGBERT_REQUIRE:-}"
WGBERT_SKIP_LOG="$(mktemp -t wgbert-skips.XXXXXX)"
export WGBERT_SKIP_LOG
trap 'bash scripts/skip_report.sh "$WGBERT_SKIP_LOG"; rm -f "$WGBERT_SKIP_LOG"' EXIT

SUITES=(matmul attention norms heads parity)
ARGS=()
for t in "${SUITES[@]}"; do ARGS+=(--test "$t"); done
declare -A BIN=()
while read -r path; do
  name="$(basename "$path")"
  BIN[${name%-*}]="$path"
done < <(cargo test --no-run --message-format=json "${ARGS[@]}" |
  grep -o '"executable":"[^"]*/deps/[^"]*"' | sed 's/"executable":"\(.*\)"/\1/')
for t in "${SUITES[@]}"; do
  [ -n "${BIN[$t]:-}" ] || { echo "test_subgroups.sh: no test binary for $t" >&2; exit 1; }
done
WGBERT="target/debug/wgbert"
[ -x "$WGBERT" ] || { echo "test_subgroups.sh: no $WGBERT (cargo test builds it)" >&2; exit 1; }

run() { # run WIDTH SUITE FILTER...
  local width="$1" suite="$2"
  shift 2
  echo "== $suite at $((width / 32)) lanes"
  LP_NATIVE_VECTOR_WIDTH="$width" "${BIN[$suite]}" --test-threads=2 "$@"
}

for width in 128 1024 2048; do
  lanes="$(LP_NATIVE_VECTOR_WIDTH=$width "$WGBERT" info --json |
    grep -o '"subgroup_max_size": [0-9]*' | head -1 | grep -o '[0-9]*$')"
  if [ "$lanes" != "$((width / 32))" ]; then
    echo "test_subgroups.sh: LP_NATIVE_VECTOR_WIDTH=$width gives subgroups of '$lanes'," \
      "not $((width / 32)) (is this lavapipe?)" >&2
    exit 1
  fi
  run "$width" matmul plain_product bias residual_add activation geglu other_activations \
    automatic_variant random_shapes
  run "$width" attention attention_matches_reference key_limited modernbert_local_window \
    a_global_sequence a_single_token attention_random_shapes
  run "$width" norms layernorm_every_variant layernorm_matches_reference layernorm_proptest \
    embedding_layernorm
  run "$width" heads pooling topk
  case "$width" in
    1024) run "$width" matmul every_tiled_configuration ;;
    2048) run "$width" attention every_tile_candidate ;;
  esac
  if [ "$width" -ge 1024 ]; then
    run "$width" parity
  fi
done
echo "== test_subgroups.sh: all passed"
