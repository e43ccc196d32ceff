#!/usr/bin/env bash
# Installs a Vulkan driver for wgpu when none is present: Mesa's lavapipe, a
# conformant software Vulkan implementation that runs on the CPU. Also
# installs Mesa's EGL/GL drivers (llvmpipe), so wgpu's GL backend can be
# tested headless (surfaceless EGL).
#
# On Debian 12 (bookworm) it takes Mesa from bookworm-backports: Mesa 25's
# lavapipe ran a register-blocked WGSL GEMM ~4x faster than bookworm's Mesa 22
# (DESIGN.md §6). Elsewhere it uses the distribution's mesa-vulkan-drivers.
# Idempotent: a second run changes nothing. Prints the driver it ends up with.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

have_vulkan_icd() {
  ls /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json 2>/dev/null | grep -q .
}

mesa_version() {
  dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true
}

if ! command -v apt-get >/dev/null 2>&1; then
  if have_vulkan_icd; then
    echo "install-vulkan: no apt-get; using the Vulkan driver already installed"
    exit 0
  fi
  echo "install-vulkan: no apt-get and no Vulkan driver; install Mesa's lavapipe (mesa-vulkan-drivers) by hand" >&2
  exit 1
fi

. /etc/os-release
codename="${VERSION_CODENAME:-}"
need_install=0
for pkg in mesa-vulkan-drivers libvulkan1 libegl1 libegl-mesa0 libgl1-mesa-dri; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_install=1
done
have_vulkan_icd || need_install=1

if [ "${ID:-}" = "debian" ] && [ "$codename" = "bookworm" ]; then
  # Mesa 22 lavapipe is ~4x slower for compute than Mesa 25 from backports.
  case "$(mesa_version)" in
    25.*|26.*|27.*) ;;
    *) need_install=1 ;;
  esac
  if [ "$need_install" = 1 ]; then
    if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
      echo "deb http://deb.debian.org/debian bookworm-backports main" |
        $SUDO tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null
    fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq -t bookworm-backports \
      mesa-vulkan-drivers libvulkan1 libegl1 libegl-mesa0 libgl1-mesa-dri >/dev/null
  fi
elif [ "$need_install" = 1 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
    mesa-vulkan-drivers libvulkan1 libegl1 libegl-mesa0 libgl1-mesa-dri >/dev/null
fi

echo "install-vulkan: mesa-vulkan-drivers $(mesa_version)"
ls /usr/share/vulkan/icd.d/ 2>/dev/null | sed 's/^/install-vulkan: icd /'
