#!/usr/bin/env bash
# The container image of `wgbert serve`, built and run as a user would, without an image
# registry: a Debian 12 base made with debootstrap and imported under the Dockerfile's base
# name (debian:bookworm-slim), the image built from the Dockerfile with the wgbert binary
# cargo built, then run with a fixture model mounted in; checks /health, /embed (equal to the
# host's `wgbert embed`) and a clean exit (status 0) when stopped from the host.
# Uses podman with runc (crun fails on hybrid cgroup hosts), overlay storage, and ulimits
# within the host's hard limits. Usage (as root): bash scripts/test_container.sh [BINARY]
# BINARY: the wgbert binary to put in the image (default target/debug/wgbert).
# WGBERT_BASE_ROOT: where the base's root lives (default /var/tmp/wgbert-bookworm); reused.
set -euo pipefail
cd "$(dirname "$0")/.."
BINARY="${1:-target/debug/wgbert}"
ROOT="${WGBERT_BASE_ROOT:-/var/tmp/wgbert-bookworm}"
IMAGE=wgbert:ci
NAME="wgbert-ci-$$"
PORT="${WGBERT_CONTAINER_PORT:-18480}"

die() {
  echo "test_container.sh: $*" >&2
  exit 1
}
[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, podman)"
[ -x "$BINARY" ] || die "no binary at $BINARY (cargo build first)"

need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ "${#need[@]}" -gt 0 ]; then
  echo "== installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
PODMAN=(podman --runtime runc --storage-driver overlay)

if ! "${PODMAN[@]}" image exists debian:bookworm-slim; then
  if [ ! -x "$ROOT/usr/bin/apt-get" ]; then
    MIRROR="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
    MIRROR="${MIRROR:-http://deb.debian.org/debian}"
    echo "== debootstrap bookworm into $ROOT (about 2 minutes)"
    rm -rf "$ROOT"
    mkdir -p "$ROOT"
    debootstrap --variant=minbase bookworm "$ROOT" "$MIRROR" >/dev/null \
      || die "debootstrap failed (see $ROOT/debootstrap/debootstrap.log)"
    printf 'deb %s bookworm main\n' "$MIRROR" >"$ROOT/etc/apt/sources.list"
  fi
  echo "== importing the base as debian:bookworm-slim"
  tar -C "$ROOT" -c . | "${PODMAN[@]}" import -q - debian:bookworm-slim >/dev/null
fi

echo "== building $IMAGE from the Dockerfile"
"${PODMAN[@]}" build -q --network host --ulimit nofile=20000:20000 --ulimit nproc=4096:4096 \
  --build-arg "BINARY=$BINARY" -t "$IMAGE" . >/dev/null

MODEL="$(pwd)/tests/fixtures/st_mean_dense"
cleanup() { "${PODMAN[@]}" rm -f "$NAME" >/dev/null 2>&1 || true; }
trap cleanup EXIT
echo "== running it on 127.0.0.1:$PORT"
"${PODMAN[@]}" run -d --name "$NAME" --ulimit nofile=20000:20000 --ulimit nproc=4096:4096 \
  -p "127.0.0.1:$PORT:8080" -v "$MODEL:/model:ro" -e WGBERT_MODEL=/model -e HF_HUB_OFFLINE=1 \
  "$IMAGE" --dtype f32 serve --host 0.0.0.0 --port 8080 >/dev/null

for _ in $(seq 1 240); do
  code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/health" || true)"
  [ "$code" = 200 ] && break
  sleep 0.5
done
[ "$code" = 200 ] || { "${PODMAN[@]}" logs "$NAME" >&2 || true; die "/health is $code, not 200"; }
echo "== /health 200"

got="$(curl -sf -X POST "http://127.0.0.1:$PORT/embed" -H 'Content-Type: application/json' \
  -d '{"inputs": ["a first text", "another one"], "normalize": false}')" || die "/embed failed"
want="$(XDG_RUNTIME_DIR=/tmp "$BINARY" --model "$MODEL" --quiet --dtype f32 embed "a first text" "another one")"
python3 - "$got" "$want" <<'PY' || die "/embed in the container differs from the host's wgbert embed"
import json, sys
got = json.loads(sys.argv[1])
want = [json.loads(l)["embedding"] for l in sys.argv[2].splitlines() if l.strip()]
assert len(got) == len(want) == 2, (len(got), len(want))
for g, w in zip(got, want):
    assert len(g) == len(w), (len(g), len(w))
    worst = max(abs(a - b) for a, b in zip(g, w))
    assert worst < 1e-5, worst
print(f"== /embed equals the host's wgbert embed ({len(got[0])} dimensions)")
PY

"${PODMAN[@]}" stop -t 30 "$NAME" >/dev/null
status="$("${PODMAN[@]}" inspect -f '{{.State.ExitCode}}' "$NAME")"
[ "$status" = 0 ] || { "${PODMAN[@]}" logs "$NAME" >&2 || true; die "exit status $status after stop"; }
echo "== stopped from the host: exit status 0"
echo "container: 1 passed, 0 failed"
