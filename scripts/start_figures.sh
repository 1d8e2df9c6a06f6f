#!/usr/bin/env bash
# Start-up figures (issue: warm starts), as ratios measured in one run; a benchmark, not a test.
# One-text `wgbert embed` end to end (process start to exit), in three states:
#   cold   an empty WGBERT_CACHE and an empty driver shader cache (Mesa's, NVIDIA's): the
#          tensor-core self-check runs and every pipeline is compiled from nothing;
#   warm   the same caches again (the second and later runs);
#   off    WGBERT_COOP=0, warm caches (the portable kernels only; the reference).
# Each state runs ROUNDS times, interleaved; the medians and the ratios cold/off and warm/off
# are printed with the median of each part of `--timings` (load, self-check, compile, run) and
# the device's counters of the last run. The goal is warm/off <= 1.2.
#
# Usage: bash scripts/start_figures.sh [MODEL] [ROUNDS]
#   MODEL   a model directory with a tokenizer (default tests/fixtures/st_mean_dense)
#   ROUNDS  runs per state (default 7)
#   WGBERT_BIN  the binary (default target/release/wgbert), WGBERT_DTYPE (default f16).
# On Mesa 26's lavapipe (tensor cores, no GPU): bash scripts/test_coop.sh --run bash
# scripts/start_figures.sh (runs this inside the Debian 13 root that script makes).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="${1:-tests/fixtures/st_mean_dense}"
ROUNDS="${2:-7}"
BIN="${WGBERT_BIN:-target/release/wgbert}"
DTYPE="${WGBERT_DTYPE:-f16}"
[ -x "$BIN" ] || { echo "start_figures.sh: no binary at $BIN (cargo build --release)" >&2; exit 1; }
[ -d "$MODEL" ] || { echo "start_figures.sh: no model directory $MODEL" >&2; exit 1; }
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$WORK}"

# run STATE: one process; appends "wall_ns compile load self_check run" to $WORK/STATE and
# keeps its timings line in $WORK/STATE.last.
run() {
  local state="$1" caches="$WORK/caches-$1" coop=()
  if [ "$state" = cold ]; then rm -rf "$caches"; fi
  if [ "$state" = off ]; then coop=(WGBERT_COOP=0); fi
  mkdir -p "$caches"
  local t0 t1 err
  t0="$(date +%s%N)"
  err="$(env "${coop[@]}" WGBERT_CACHE="$caches/wgbert" MESA_SHADER_CACHE_DIR="$caches/mesa" \
    __GL_SHADER_DISK_CACHE_PATH="$caches/nv" \
    "$BIN" --model "$MODEL" --quiet --dtype "$DTYPE" --timings embed "a short text to embed" \
    2>&1 >/dev/null)" || { echo "$err" >&2; exit 1; }
  t1="$(date +%s%N)"
  local line
  line="$(echo "$err" | sed -n 's/^timings: //p')"
  echo "$line" >"$WORK/$state.last"
  field() { echo "$line" | grep -o "\"$1\":[0-9.e-]*" | cut -d: -f2; }
  echo "$((t1 - t0)) $(field compile_s) $(field load_s) $(field self_check_s) $(field run_s)" \
    >>"$WORK/$state"
}

# median COLUMN FILE
median() {
  sort -g -k"$1","$1" "$2" | awk -v c="$1" '{v[NR]=$c} END {print v[int((NR+1)/2)]}'
}

# Prime the warm states (untimed): the cache of `warm` is the one `cold` leaves behind.
run off >/dev/null && : >"$WORK/off"
for ((i = 1; i <= ROUNDS; i++)); do
  run cold
  run warm
  run off
done

echo "adapter: $("$BIN" info 2>/dev/null | sed -n '1p;2p' | tr -s ' ' | paste -sd' ')"
echo "model: $MODEL, $DTYPE, $ROUNDS runs per state (medians)"
printf '%-5s %9s %6s %7s %12s %9s %7s %s\n' state wall_ms ratio load_s self_check_s compile_s run_s \
  "counters (last run)"
OFF="$(median 1 "$WORK/off")"
for s in cold warm off; do
  wall="$(median 1 "$WORK/$s")"
  printf '%-5s %9d %6.2f %7.3f %12.3f %9.3f %7.3f %s\n' "$s" "$((wall / 1000000))" \
    "$(awk -v a="$wall" -v b="$OFF" 'BEGIN {print a / b}')" \
    "$(median 3 "$WORK/$s")" "$(median 4 "$WORK/$s")" "$(median 2 "$WORK/$s")" \
    "$(median 5 "$WORK/$s")" "$(grep -o '"counters":{[^}]*}' "$WORK/$s.last" | cut -d: -f2-)"
done
