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

# npm 11's lock file can leave out other platforms' optional packages, which
# makes `npm ci` refuse; `npm install` still follows the lock file.
install_ui_modules() {
  (cd "$HEIWA_ROOT/ui" && { npm ci --no-audit --no-fund --loglevel=error || npm install --no-audit --no-fund --loglevel=error; })
}

build_ui() {
  (cd "$HEIWA_ROOT/ui" && npm run --silent build >/dev/null)
}
