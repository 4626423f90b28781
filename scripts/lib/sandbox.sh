# The container engine (Docker's daemon, started by us on a private socket) and
# the sandbox image, built locally from the host's Python since no image
# registry is reachable.
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DOCKER_DATA=$HEIWA_SYSTEM_CACHE/docker
DOCKER_SOCK=$RUN_DIR/docker.sock

# start_engine: use DOCKER_HOST if it answers; otherwise start our own dockerd.
start_engine() {
  if [ -n "${DOCKER_HOST:-}" ] && docker info >/dev/null 2>&1; then return 0; fi
  export DOCKER_HOST=unix://$DOCKER_SOCK
  docker info >/dev/null 2>&1 && return 0
  command -v dockerd >/dev/null || die "no container engine: install docker.io (scripts/setup does)"
  mkdir -p "$RUN_DIR" "$DOCKER_DATA"
  # A pid file left by a dockerd that died with an earlier session: dockerd
  # refuses to start if that pid now belongs to some other process.
  local old; old=$(cat "$RUN_DIR/dockerd.pid" 2>/dev/null || true)
  if [ -n "$old" ] && ! grep -qs dockerd "/proc/$old/comm"; then rm -f "$RUN_DIR/dockerd.pid"; fi
  log "starting dockerd on $DOCKER_SOCK"
  # No bridge and no iptables: sandbox containers get network mode `none` anyway.
  dockerd --host "$DOCKER_HOST" --data-root "$DOCKER_DATA" --exec-root "$RUN_DIR/docker-exec" \
    --pidfile "$RUN_DIR/dockerd.pid" --iptables=false --ip6tables=false --bridge=none \
    --storage-driver=overlay2 >"$RUN_DIR/dockerd.log" 2>&1 &
  for _ in $(seq 1 100); do docker info >/dev/null 2>&1 && return 0; sleep 0.1; done
  die "dockerd did not start; see $RUN_DIR/dockerd.log"
}

stop_engine() {
  local pid; pid=$(cat "$RUN_DIR/dockerd.pid" 2>/dev/null) || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
}

# A minimal image: the host's python3.11, the libraries it links, its standard
# library (no test suite), the libraries its extension modules need, and an
# unprivileged user of its own. ~80 MB, a few seconds.
build_sandbox_image() {
  docker image inspect "$SANDBOX_IMAGE" >/dev/null 2>&1 && return 0
  log "building sandbox image $SANDBOX_IMAGE"
  local python=/usr/bin/python3.11 root; root=$(mktemp -d)
  [ -x "$python" ] || die "$python is missing (apt-get install python3.11)"
  mkdir -p "$root"/{usr/bin,usr/lib,etc,tmp,sandbox}
  cp "$python" "$root/usr/bin/python3"
  # The libraries python3.11 and its extension modules (ctypes → libffi, ssl, sqlite3, …) link.
  # (`ldd` names each module with a trailing colon before its libraries; those names are skipped.)
  ldd "$python" /usr/lib/python3.11/lib-dynload/*.so 2>/dev/null | grep -o '/[^ :]*\.so[^ :]*' | sort -u | while read -r lib; do
    if [ -e "$lib" ]; then mkdir -p "$root$(dirname "$lib")" && cp -L "$lib" "$root$lib"; fi
  done
  tar -C /usr/lib --exclude='python3.11/test' --exclude='python3.11/idlelib' \
    --exclude='python3.11/tkinter' --exclude='__pycache__' -c python3.11 | tar -C "$root/usr/lib" -x
  printf 'root:x:0:0:root:/root:/bin/false\nsandbox:x:65533:65533:sandbox:/tmp:/bin/false\n' > "$root/etc/passwd"
  printf 'root:x:0:\nsandbox:x:65533:\n' > "$root/etc/group"
  chmod 1777 "$root/tmp"   # Docker copies this mode onto the tmpfs mounted there
  tar -C "$root" -c . | docker import - "$SANDBOX_IMAGE" >/dev/null
  rm -rf "$root"
}
