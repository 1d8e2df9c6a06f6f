# The Debian 13 (trixie) root with Mesa 26's Vulkan drivers that scripts/test_coop.sh and
# scripts/gpu_compilers.sh run in (Mesa 26 needs glibc 2.39; the host is Debian 12). Sourced,
# not run. The root is shared by every script and every checkout on the machine, so whatever
# changes it holds its lock: `mesa_root_locked CMD...` runs CMD under `flock ROOT.lock`.
#   MESA_ROOT       where the root lives (the caller sets it; WGBERT_MESA_ROOT by convention)
#   mesa_root_ensure  makes the root once (debootstrap + mesa-vulkan-drivers and the loader
#                     from trixie-backports); an existing root is reused. Needs root.
#   mesa_root_apt ARGS...  `apt-get ARGS` inside the root, under the lock, non-interactive.
#   mesa_root_mirror  the Debian mirror apt already uses on the host, else deb.debian.org.

mesa_root_mirror() {
  local m
  m="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
  echo "${m:-http://deb.debian.org/debian}"
}

mesa_root_locked() {
  mkdir -p "$(dirname "$MESA_ROOT")"
  flock "$MESA_ROOT.lock" "$@"
}

mesa_root_apt() {
  mesa_root_locked chroot "$MESA_ROOT" env DEBIAN_FRONTEND=noninteractive apt-get -qq "$@"
}

# Lavapipe's ICD and the Vulkan loader are both there: the root is ready.
mesa_root_ready() {
  local f g
  for f in "$MESA_ROOT"/usr/share/vulkan/icd.d/lvp_icd*.json; do
    for g in "$MESA_ROOT"/usr/lib/*/libvulkan.so.1; do
      [ -e "$f" ] && [ -e "$g" ] && return 0
    done
  done
  return 1
}

# Run under the lock by mesa_root_ensure (so two first runs never debootstrap at once).
mesa_root_make() {
  mesa_root_ready && return 0
  if ! command -v debootstrap >/dev/null; then
    command -v apt-get >/dev/null || { echo "debootstrap is missing and apt-get is not available" >&2; return 1; }
    echo "== installing debootstrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null || return 1
  fi
  local mirror
  mirror="$(mesa_root_mirror)"
  if [ ! -x "$MESA_ROOT/usr/bin/apt-get" ]; then
    echo "== debootstrap trixie into $MESA_ROOT (about 2 minutes)"
    mkdir -p "$MESA_ROOT"
    debootstrap --variant=minbase trixie "$MESA_ROOT" "$mirror" >/dev/null || {
      echo "debootstrap failed (see $MESA_ROOT/debootstrap/debootstrap.log)" >&2
      return 1
    }
  fi
  printf 'deb %s trixie main\ndeb %s trixie-backports main\n' "$mirror" "$mirror" \
    >"$MESA_ROOT/etc/apt/sources.list"
  cp /etc/resolv.conf "$MESA_ROOT/etc/resolv.conf"
  echo "== installing Mesa 26's Vulkan drivers in the root"
  chroot "$MESA_ROOT" bash -c 'export DEBIAN_FRONTEND=noninteractive; apt-get update -qq &&
    apt-get install -y -qq -t trixie-backports mesa-vulkan-drivers libvulkan1 >/dev/null' || return 1
  mesa_root_ready
}

mesa_root_ensure() {
  mesa_root_ready && return 0
  [ "$(id -u)" -eq 0 ] || { echo "making the Mesa 26 root needs root" >&2; return 1; }
  export MESA_ROOT
  export -f mesa_root_mirror mesa_root_ready mesa_root_make
  mesa_root_locked bash -c mesa_root_make
}

# mesa_root_run DIR [NAME=VALUE...] CMD...: CMD in the root under `env -i` with the variables
# given, a PATH and HOME=/tmp; DIR (a folder of the host, such as the build's) bind-mounted
# at the same path inside, with /proc, /sys and /dev, in a mount namespace of its own, so
# every mount goes when CMD ends and none is seen by anyone else. Needs root.
mesa_root_run() {
  local dir="$1"
  shift
  mkdir -p "$MESA_ROOT$dir"
  MESA_DIR="$dir" unshare --mount --propagation private bash -c '
    set -e
    for d in proc sys dev; do mount --bind "/$d" "$MESA_ROOT/$d"; done
    mount --bind "$MESA_DIR" "$MESA_ROOT$MESA_DIR"
    exec chroot "$MESA_ROOT" env -i PATH=/usr/bin:/bin HOME=/tmp "$@"' _ "$@"
}
