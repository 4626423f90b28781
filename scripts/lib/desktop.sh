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
