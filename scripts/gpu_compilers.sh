#!/usr/bin/env bash
# Every wgbert kernel through the real shader compilers of NVIDIA, AMD and Intel GPUs, without
# the GPUs: Mesa 26's Vulkan drivers (NVK, RADV, ANV) under Mesa's drm-shim, a preloaded
# library that fakes the kernel driver of a chip you name (submissions do nothing, so this
# compiles and never computes). For each chip it runs `wgbert kernels --compile --json`
# (every build the engine can make there, one pipeline at a time, its name on stderr first)
# with the driver's statistics turned on, and `wgbert info --json` (the tensor-core builds
# the chip would run), then scripts/gpu_stats.py attributes the statistics to the kernels
# and writes docs/gpu-compilers.md (one table per chip: registers, spills and fills, scratch,
# occupancy, instructions, shared memory; the kernels a first run takes by default marked;
# the budgets, with scripts/gpu_budgets.md's reasons for the defaults that miss them) and
# JSON beside the logs.
#
# Chips (WGBERT_GPU_CHIPS, a space-separated list; default all six):
#   ga102 ad104    NVIDIA Ampere, Ada   (NVK; NOUVEAU_CHIPSET 172, 194)
#   navi31 navi21  AMD RDNA3, RDNA2     (RADV; AMDGPU_GPU_ID)
#   dg2 bmg        Intel Xe-HPG, Xe2    (ANV; INTEL_STUB_GPU_PLATFORM)
# or any other chip of those drivers as nvk:CHIPSET, radv:GPU_ID, anv:PLATFORM (nvk:193,
# radv:gfx1150, anv:mtl).
#
# What it sets up, once, in the shared Debian 13 root of scripts/test_coop.sh
# (WGBERT_MESA_ROOT, default /var/tmp/wgbert-mesa26; made when missing), each change under
# the root's lock; reruns find everything there and take seconds per chip:
#   - mesa-drm-shim from trixie-backports (the amdgpu and nouveau shims);
#   - the nouveau shim of sid's mesa-drm-shim (26.2 and later accept Ada's chipsets 0x19x,
#     26.1's do not), unpacked into /usr/local/lib/wgbert-shims/nouveau;
#   - the Intel shim, which Debian does not ship: built from Debian's mesa source (only its
#     drm-shim and Intel tools) into /usr/local/lib/wgbert-shims/intel (about 3 minutes).
# A chip whose shim cannot be set up (no network, no mesa source) is a counted skip, which
# `WGBERT_REQUIRE=gpu-compilers` turns into a failure; a kernel that fails to compile or
# validate on any chip fails the script (after the report is written).
#
# Usage (as root, on Debian/Ubuntu): bash scripts/gpu_compilers.sh
#   WGBERT_BIN       the wgbert binary (default target/debug/wgbert; built when missing)
#   WGBERT_GPU_COMPILERS_OUT  logs and JSON (default target/gpu-compilers)
#   WGBERT_GPU_COMPILERS_DOC  the report (default docs/gpu-compilers.md; "-": none)
#   WGBERT_SKIP_LOG  where skips are appended, as the test scripts do
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd -P)"
export MESA_ROOT="${WGBERT_MESA_ROOT:-/var/tmp/wgbert-mesa26}"
# shellcheck source=scripts/mesa_root.sh
. scripts/mesa_root.sh
BIN="${WGBERT_BIN:-$REPO/target/debug/wgbert}"
OUT="${WGBERT_GPU_COMPILERS_OUT:-$REPO/target/gpu-compilers}"
DOC="${WGBERT_GPU_COMPILERS_DOC:-$REPO/docs/gpu-compilers.md}"
CHIPS="${WGBERT_GPU_CHIPS:-ga102 ad104 navi31 navi21 dg2 bmg}"
# Inside the root.
SHIMS=/usr/local/lib/wgbert-shims
LIB=/usr/lib/x86_64-linux-gnu
ICD=/usr/share/vulkan/icd.d

die() {
  echo "gpu_compilers.sh: $*" >&2
  exit 1
}
[ "$(id -u)" -eq 0 ] || die "needs root (chroot, and apt-get in the root)"
command -v unshare >/dev/null || die "unshare (util-linux) is missing"
command -v python3 >/dev/null || die "python3 is missing (it writes the report)"

SKIPS=0
skip() { # skip CHIP WHY
  echo "skipped (gpu-compilers): $1: $2" >&2
  SKIPS=$((SKIPS + 1))
  if [ -n "${WGBERT_SKIP_LOG:-}" ]; then
    printf 'gpu_compilers.sh::%s\tgpu-compilers\t%s\tthe kernels compiled for %s\n' "$1" "$2" "$1" \
      >>"$WGBERT_SKIP_LOG"
  fi
}
required() {
  case ",${WGBERT_REQUIRE:-}," in *,gpu-compilers,*) return 0 ;; esac
  return 1
}

in_root() { # a command in the root, as root; the caller holds the lock where it changes it
  chroot "$MESA_ROOT" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    DEBIAN_FRONTEND=noninteractive "$@"
}

# apt-get in the root, in directory DIR, with a sources list of its own (deb-src lines, sid)
# and its own package lists and caches: the root's own apt configuration is left as it is.
apt_side() { # apt_side NAME "SOURCES LINE" DIR APT-ARGS...
  local name="$1" line="$2" dir="$3"
  shift 3
  local d="/var/lib/wgbert-apt/$name"
  in_root sh -c "mkdir -p $d/lists/partial $d/cache/archives/partial $d/parts '$dir' &&
    echo '$line' >$d/sources.list" || return 1
  # Mirrors serve sid's Release file past its Valid-Until date (a snapshot of the archive).
  in_root sh -c 'd="$1"; cd "$2"; shift 2; exec apt-get -qq -o Dir::Etc::SourceList="$d/sources.list" \
    -o Dir::Etc::SourceParts="$d/parts" -o Dir::State::Lists="$d/lists" -o Dir::Cache="$d/cache" \
    -o Acquire::Check-Valid-Until=false "$@"' _ "$d" "$dir" "$@"
}

# --- the setup, each part under the root's lock -------------------------------------------

# mesa-drm-shim of the drivers' own release (trixie-backports): the amdgpu and nouveau shims.
setup_debian_shims() {
  [ -e "$MESA_ROOT$LIB/libamdgpu_noop_drm_shim.so" ] && return 0
  echo "== installing mesa-drm-shim (trixie-backports) in the root"
  in_root apt-get -qq update && in_root apt-get install -y -qq -t trixie-backports \
    mesa-drm-shim >/dev/null
}

# The nouveau shim of sid's mesa-drm-shim, for Ada.
setup_nouveau_shim() {
  [ -e "$MESA_ROOT$SHIMS/nouveau/libnouveau_noop_drm_shim.so" ] && return 0
  echo "== fetching sid's mesa-drm-shim (its nouveau shim knows Ada) into the root"
  local line tmp=/tmp/wgbert-sid
  line="deb $(mesa_root_mirror) sid main"
  in_root rm -rf "$tmp" &&
    apt_side sid "$line" / update &&
    apt_side sid "$line" "$tmp" download mesa-drm-shim &&
    in_root sh -c "dpkg-deb -x $tmp/mesa-drm-shim_*.deb $tmp/x && mkdir -p $SHIMS/nouveau &&
      cp $tmp/x$LIB/libnouveau_noop_drm_shim.so $SHIMS/nouveau/ &&
      dpkg-deb -f $tmp/mesa-drm-shim_*.deb Version >$SHIMS/nouveau/VERSION && rm -rf $tmp"
}

# The Intel shim, built from Debian's mesa source: only its drm-shim and Intel tools, no
# drivers, no LLVM.
setup_intel_shim() {
  [ -e "$MESA_ROOT$SHIMS/intel/libintel_noop_drm_shim.so" ] && return 0
  echo "== building the Intel drm-shim from Debian's mesa source in the root (about 3 minutes)"
  local line tmp=/tmp/wgbert-mesa-src
  # trixie's source: the backports' .dsc files are not served by every mirror.
  line="deb-src $(mesa_root_mirror) trixie main"
  in_root apt-get -qq update && in_root apt-get install -y -qq --no-install-recommends \
    meson ninja-build gcc g++ pkgconf python3-mako python3-yaml python3-packaging libdrm-dev \
    libexpat1-dev zlib1g-dev libzstd-dev flex bison glslang-tools libvulkan-dev xz-utils \
    >/dev/null || return 1
  in_root rm -rf "$tmp" &&
    apt_side src "$line" / update &&
    apt_side src "$line" "$tmp" source --download-only mesa >/dev/null || return 1
  in_root sh -c "set -e; cd $tmp; tar xf \$(ls mesa_*.orig.tar.* | grep -v '\\.asc\$'); cd mesa-*/
    meson setup build -Dbuildtype=release -Dvulkan-drivers= -Dgallium-drivers= -Dplatforms= \
      -Dtools=drm-shim,intel -Dllvm=disabled -Dglx=disabled -Degl=disabled -Dgbm=disabled \
      -Dopengl=false -Dgles1=disabled -Dgles2=disabled -Dvalgrind=disabled \
      -Dlibunwind=disabled -Dlmsensors=disabled >/dev/null
    nice ninja -C build src/intel/tools/libintel_noop_drm_shim.so >/dev/null
    mkdir -p $SHIMS/intel
    cp build/src/intel/tools/libintel_noop_drm_shim.so $SHIMS/intel/
    basename \"\$(pwd)\" >$SHIMS/intel/VERSION
    cd /; rm -rf $tmp"
}

# The statistics: scripts/pipeline_stats_layer.c, a Vulkan layer that prints each compute
# pipeline's executable statistics (VK_KHR_pipeline_executable_properties), the same way for
# every driver; rebuilt when its source changes.
setup_stats_layer() {
  local dir="$MESA_ROOT$SHIMS/stats" sum
  sum="$(sha256sum "$REPO/scripts/pipeline_stats_layer.c" | cut -d' ' -f1)"
  [ "$(cat "$dir/SOURCE" 2>/dev/null)" = "$sum" ] && return 0
  echo "== building the statistics layer in the root"
  in_root sh -c 'command -v cc >/dev/null && [ -e /usr/include/vulkan/vk_layer.h ]' ||
    { in_root apt-get -qq update && in_root apt-get install -y -qq --no-install-recommends \
      gcc libc6-dev libvulkan-dev >/dev/null; } || return 1
  mkdir -p "$dir"
  cp "$REPO/scripts/pipeline_stats_layer.c" "$dir/"
  in_root cc -shared -fPIC -O1 -Wall -o "$SHIMS/stats/libwgbert_pipeline_stats.so" \
    "$SHIMS/stats/pipeline_stats_layer.c" || return 1
  cat >"$dir/wgbert_pipeline_stats.json" <<'JSON'
{
  "file_format_version": "1.0.0",
  "layer": {
    "name": "VK_LAYER_WGBERT_pipeline_stats",
    "type": "GLOBAL",
    "library_path": "./libwgbert_pipeline_stats.so",
    "api_version": "1.3.0",
    "implementation_version": "1",
    "description": "prints the compiler statistics of each compute pipeline",
    "functions": {
      "vkGetInstanceProcAddr": "stats_GetInstanceProcAddr",
      "vkGetDeviceProcAddr": "stats_GetDeviceProcAddr"
    }
  }
}
JSON
  echo "$sum" >"$dir/SOURCE"
}

# The setup's parts in order; a part that fails leaves its chips skipped, not the others.
mesa_root_ensure || die "could not make the Mesa 26 root at $MESA_ROOT"
cp /etc/resolv.conf "$MESA_ROOT/etc/resolv.conf" 2>/dev/null || true
declare -A READY=()
export -f in_root apt_side mesa_root_mirror setup_debian_shims setup_nouveau_shim setup_intel_shim \
  setup_stats_layer
export SHIMS LIB REPO
for part in stats_layer debian_shims nouveau_shim intel_shim; do
  if mesa_root_locked bash -c "setup_$part"; then
    READY[$part]=1
  else
    echo "== setting up $part failed" >&2
  fi
done

# --- the runs -----------------------------------------------------------------------------

if [ ! -x "$BIN" ]; then
  echo "== building wgbert"
  cargo build --bin wgbert
  BIN="$REPO/target/debug/wgbert"
fi
[ -x "$BIN" ] || die "no wgbert binary at $BIN"
BIN="$(cd "$(dirname "$BIN")" && pwd -P)/$(basename "$BIN")"
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.log "$OUT"/*.rc

# CHIP -> "driver shim-part chip-variable label"
leg() {
  case "$1" in
    ga102) echo "nvk nouveau_shim NOUVEAU_CHIPSET=172 NVIDIA_GA102" ;;
    ad104) echo "nvk nouveau_shim NOUVEAU_CHIPSET=194 NVIDIA_AD104" ;;
    navi31) echo "radv debian_shims AMDGPU_GPU_ID=navi31 AMD_Navi31" ;;
    navi21) echo "radv debian_shims AMDGPU_GPU_ID=navi21 AMD_Navi21" ;;
    dg2) echo "anv intel_shim INTEL_STUB_GPU_PLATFORM=dg2 Intel_DG2" ;;
    bmg) echo "anv intel_shim INTEL_STUB_GPU_PLATFORM=bmg Intel_BMG" ;;
    nvk:*) echo "nvk nouveau_shim NOUVEAU_CHIPSET=${1#nvk:} nvk_${1#nvk:}" ;;
    radv:*) echo "radv debian_shims AMDGPU_GPU_ID=${1#radv:} radv_${1#radv:}" ;;
    anv:*) echo "anv intel_shim INTEL_STUB_GPU_PLATFORM=${1#anv:} anv_${1#anv:}" ;;
    *) return 1 ;;
  esac
}
# DRIVER -> its ICD and its shim; every driver's statistics come from the layer.
driver_env() {
  local layer="VK_LAYER_PATH=$SHIMS/stats VK_INSTANCE_LAYERS=VK_LAYER_WGBERT_pipeline_stats"
  case "$1" in
    nvk) echo "$layer VK_ICD_FILENAMES=$ICD/nouveau_icd.json LD_PRELOAD=$SHIMS/nouveau/libnouveau_noop_drm_shim.so" ;;
    radv) echo "$layer VK_ICD_FILENAMES=$ICD/radeon_icd.json LD_PRELOAD=$LIB/libamdgpu_noop_drm_shim.so" ;;
    anv) echo "$layer VK_ICD_FILENAMES=$ICD/intel_icd.json LD_PRELOAD=$SHIMS/intel/libintel_noop_drm_shim.so" ;;
  esac
}

# One chip: `wgbert kernels --compile --json` in the root under the chip's driver and shim
# (the binary's folder mounted there, scripts/mesa_root.sh), the JSON and stderr (kernel
# names, the layer's statistics) into OUT/LABEL.{json,log}, the exit code into OUT/LABEL.rc.
run_chip() { # run_chip LABEL DRIVER CHIP-VARIABLE
  local label="$1" driver="$2" var="$3" started=$SECONDS rc=0
  # shellcheck disable=SC2046
  mesa_root_run "$(dirname "$BIN")" WGPU_BACKEND=vulkan MESA_SHADER_CACHE_DISABLE=true \
    RUST_LOG=warn $(driver_env "$driver") "$var" "$BIN" kernels --compile --json \
    >"$OUT/$label.json" 2>"$OUT/$label.log" || rc=$?
  echo "== $label ($driver, $var): $(grep -c '^kernel [0-9]*/' "$OUT/$label.log" || true) kernels" \
    "in $((SECONDS - started)) s, exit $rc"
  [ "$rc" -eq 0 ] || tail -5 "$OUT/$label.log" >&2
  # What `info` says the chip's tensor cores would run (its `tensor_cores`), with the
  # self-checks off (WGBERT_COOP=0: they read zeros here) and a cache of its own.
  # shellcheck disable=SC2046
  mesa_root_run "$(dirname "$BIN")" WGPU_BACKEND=vulkan WGBERT_COOP=0 RUST_LOG=error \
    WGBERT_CACHE="/tmp/wgbert-gpu-compilers-info.$label.$$" \
    $(driver_env "$driver" | sed 's/VK_INSTANCE_LAYERS=[^ ]*//') "$var" "$BIN" info --json \
    >"$OUT/$label.adapter.json" 2>/dev/null || rc=$?
  rm -rf "$MESA_ROOT/tmp/wgbert-gpu-compilers-info.$label.$$"
  echo "$rc" >"$OUT/$label.rc"
}

# Two chips at a time (each compiles on one thread); WGBERT_GPU_JOBS to change.
JOBS="${WGBERT_GPU_JOBS:-2}"
FAILED=()
RAN=()
for chip in $CHIPS; do
  spec="$(leg "$chip")" || die "unknown chip '$chip' (ga102 ad104 navi31 navi21 dg2 bmg, or nvk:X radv:X anv:X)"
  read -r driver part var label <<<"$spec"
  if [ -z "${READY[$part]:-}" ] || [ -z "${READY[stats_layer]:-}" ]; then
    skip "$label" "the $part for $driver or the statistics layer could not be set up (see above)"
    continue
  fi
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
  run_chip "$label" "$driver" "$var" &
  RAN+=("$label=$driver:$var")
done
wait
for r in "${RAN[@]}"; do
  label="${r%%=*}"
  [ "$(cat "$OUT/$label.rc" 2>/dev/null)" = 0 ] || FAILED+=("$label")
done

# A no-op device cannot poison the cache: on a chip with cooperative matrices (the first
# RADV one that ran, else NVK, whose compiler is slower), `wgbert info` with an empty cache
# runs the tensor-core self-checks, which read back zeros there; they must be called
# inconclusive, and no verdict may be left in the tuning file.
for r in $(printf '%s\n' "${RAN[@]}" | grep '=radv:') $(printf '%s\n' "${RAN[@]}" | grep '=nvk:'); do
  label="${r%%=*}" spec="${r#*=}"
  grep -q '"fragment"' "$OUT/$label.json" 2>/dev/null || continue
  cache="/tmp/wgbert-gpu-compilers-cache.$$"
  rm -rf "$MESA_ROOT$cache"
  # shellcheck disable=SC2046
  mesa_root_run "$(dirname "$BIN")" WGPU_BACKEND=vulkan WGBERT_CACHE="$cache" RUST_LOG=error \
    $(driver_env "${spec%%:*}" | sed 's/VK_INSTANCE_LAYERS=[^ ]*//') "${spec#*:}" "$BIN" info --json \
    >"$OUT/$label.info.json" 2>"$OUT/$label.info.log" || FAILED+=("$label (info)")
  verdicts="$(cat "$MESA_ROOT$cache/tune.json" 2>/dev/null | grep -c '_coop"' || true)"
  rm -rf "$MESA_ROOT$cache"
  if ! grep -q 'inconclusive' "$OUT/$label.info.json" || [ "$verdicts" != 0 ]; then
    echo "gpu_compilers.sh: $label: the self-checks on a no-op device were not called" \
      "inconclusive, or left $verdicts verdicts in the cache ($OUT/$label.info.json)" >&2
    FAILED+=("$label (cache poisoned)")
  else
    echo "== $label: the self-checks read back zeros: inconclusive, nothing cached"
  fi
  break
done

# --- the report ---------------------------------------------------------------------------

version() { in_root dpkg-query -W -f '${Version}' "$1" 2>/dev/null || echo unknown; }
MESA="$(version mesa-vulkan-drivers)"
NOUVEAU="$(cat "$MESA_ROOT$SHIMS/nouveau/VERSION" 2>/dev/null || echo none)"
INTEL="$(cat "$MESA_ROOT$SHIMS/intel/VERSION" 2>/dev/null || echo none)"
if [ ${#RAN[@]} -gt 0 ]; then
  python3 scripts/gpu_stats.py --out "$OUT" --doc "$DOC" --mesa "$MESA" \
    --notes scripts/gpu_budgets.md \
    --shims "amdgpu: mesa-drm-shim $(version mesa-drm-shim); nouveau: mesa-drm-shim $NOUVEAU (sid); intel: built from $INTEL" \
    "${RAN[@]}" || FAILED+=("the report")
fi
echo "== $SKIPS chips skipped"
if [ ${#FAILED[@]} -gt 0 ]; then
  die "kernels failed to compile on: ${FAILED[*]} (logs in $OUT)"
fi
if [ "$SKIPS" -gt 0 ] && required; then
  die "$SKIPS chips skipped, and WGBERT_REQUIRE=${WGBERT_REQUIRE} requires gpu-compilers"
fi
[ ${#RAN[@]} -gt 0 ] || { echo "gpu_compilers.sh: no chip ran" >&2; exit 0; }
echo "== gpu_compilers.sh: every kernel compiled on ${#RAN[@]} chips"
