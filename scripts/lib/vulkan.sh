# The headers llama.cpp's Vulkan backend builds against. ggml-vulkan uses
# Vulkan-Hpp types newer than bookworm's headers (1.3.239 has no
# vk::LayerSettingEXT), so the headers come from trixie's libvulkan-dev deb,
# pinned by sha256, unpacked into the cache; the loader it links stays the
# system's libvulkan.so.1 (Vulkan-Hpp dispatches dynamically, so newer headers
# run on an older loader). glslc and SPIR-V headers are bookworm's own
# (scripts/setup installs them).
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

VULKAN_HEADERS_VERSION=1.4.309.0-1
VULKAN_HEADERS_DEB=pool/main/v/vulkan-loader/libvulkan-dev_${VULKAN_HEADERS_VERSION}_amd64.deb
VULKAN_HEADERS_SHA256=8d329d465e16168afff58b1bd0dd6db46aac2cc3f56054a481b25a04e90b345a
# llama-cpp-sys-2's build reads VULKAN_SDK (include/ and lib/ under it).
export VULKAN_SDK=$HEIWA_CACHE/vulkan-sdk-$VULKAN_HEADERS_VERSION

install_vulkan_headers() {
  [ -f "$VULKAN_SDK/include/vulkan/vulkan.hpp" ] && [ -e "$VULKAN_SDK/lib/libvulkan.so" ] && return 0
  log "fetching Vulkan headers $VULKAN_HEADERS_VERSION (Debian trixie's libvulkan-dev)"
  local tmp; tmp=$(mktemp -d)
  # From this machine's own Debian mirror (its apt sources); the sha256 pins the file.
  curl -fsSL --retry 3 -o "$tmp/headers.deb" "$(debian_mirror)/$VULKAN_HEADERS_DEB"
  sha256_ok "$tmp/headers.deb" "$VULKAN_HEADERS_SHA256" || die "libvulkan-dev $VULKAN_HEADERS_VERSION: sha256 mismatch"
  dpkg-deb -x "$tmp/headers.deb" "$tmp/x"
  mkdir -p "$tmp/sdk/lib"
  mv "$tmp/x/usr/include" "$tmp/sdk/include"
  # awk reads to the end: an early exit would SIGPIPE ldconfig and fail the pipeline (pipefail).
  local loader; loader=$(ldconfig -p | awk '/libvulkan.so.1 .*x86-64/ && !found {print $NF; found = 1}')
  [ -n "$loader" ] || die "no libvulkan.so.1 on this machine (apt-get install libvulkan1)"
  ln -s "$loader" "$tmp/sdk/lib/libvulkan.so"
  rm -rf "$VULKAN_SDK" && mkdir -p "$(dirname "$VULKAN_SDK")" && mv "$tmp/sdk" "$VULKAN_SDK" && rm -rf "$tmp"
}
