# The desktop app's tooling: the UI's node modules and tauri-driver (the
# WebDriver bridge that end-to-end tests drive the real WebView through).
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

build_ui() {
  (cd "$HEIWA_ROOT/ui" && npm run --silent build >/dev/null)
}

# The Debian package, built from the debug tree (seconds when warm), must hold
# the app, its desktop entry and its icon. The AppImage is not built: its
# tools (linuxdeploy, AppRun) are served only from GitHub, which CI cannot reach.
check_deb_bundle() {
  local version deb listing
  version=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$HEIWA_ROOT/tauri.conf.json")
  deb=$CARGO_TARGET_DIR/debug/bundle/deb/Heiwa_${version}_amd64.deb
  rm -f "$deb"
  (cd "$HEIWA_ROOT/src-tauri" && "$HEIWA_ROOT/ui/node_modules/.bin/tauri" build --debug --bundles deb --ci >/dev/null)
  listing=$(dpkg-deb -c "$deb")
  for file in usr/bin/heiwa-desktop usr/share/applications/Heiwa.desktop usr/share/icons/hicolor/128x128/apps/heiwa-desktop.png; do
    grep -q " \./$file\$\| $file\$" <<<"$listing" || die "$deb lacks $file"
  done
  dpkg-deb -f "$deb" Depends | grep -q libwebkit2gtk-4.1 || die "$deb does not depend on WebKitGTK"
  log "bundle: $(basename "$deb") ($(du -h "$deb" | cut -f1), debug build) holds the app, its desktop entry and icon"
}
