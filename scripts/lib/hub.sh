# The hub: SpacetimeDB server (from the crate registry, pinned) and the wasm32
# toolchain that compiles hub-module (this machine's rustup has no wasm32 std).
# shellcheck disable=SC2034 # HUB_SCHEMA is read by scripts/test and scripts/gen-bindings
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

SPACETIMEDB_BIN=$SPACETIMEDB_DIR/bin/spacetimedb-standalone
# Build outputs live in the cache so a fresh clone (CI) reuses them.
HUB_WASM_TARGET=$HEIWA_CACHE/hub-wasm-target
HUB_WASM=$HUB_WASM_TARGET/wasm32-unknown-unknown/release/hub_module.wasm
HUB_SCHEMA=$HEIWA_ROOT/hub-module/schema.json

install_spacetimedb() {
  [ -x "$SPACETIMEDB_BIN" ] && return 0
  log "building spacetimedb-standalone $SPACETIMEDB_VERSION (about 20 CPU-minutes, once)"
  local build; build=$(mktemp -d)
  CARGO_TARGET_DIR=$build cargo install spacetimedb-standalone --version "$SPACETIMEDB_VERSION" \
    --locked --root "$SPACETIMEDB_DIR"
  rm -rf "$build"
}

# Debian's rustc-web ships an LLVM with the WebAssembly backend and matching std
# sources; unpacked (not installed) into the cache, it builds std for wasm32.
install_wasm_toolchain() {
  [ -x "$WASM_TOOLCHAIN_DIR/usr/bin/rustc" ] && return 0
  log "unpacking Debian's rustc-web for wasm32"
  local tmp; tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download rustc-web libstd-rust-web-1.96 libstd-rust-web-dev rust-web-src \
    rust-web-llvm libllvm22 lld-22 >/dev/null 2>&1) || {
    apt-get update -qq && (cd "$tmp" && apt-get download rustc-web libstd-rust-web-1.96 \
      libstd-rust-web-dev rust-web-src rust-web-llvm libllvm22 lld-22 >/dev/null)
  }
  rm -rf "$WASM_TOOLCHAIN_DIR.tmp" && mkdir -p "$WASM_TOOLCHAIN_DIR.tmp"
  for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$WASM_TOOLCHAIN_DIR.tmp"; done
  rm -rf "$WASM_TOOLCHAIN_DIR" && mv "$WASM_TOOLCHAIN_DIR.tmp" "$WASM_TOOLCHAIN_DIR" && rm -rf "$tmp"
}

# (Without scripts/test's clippy-driver: that one belongs to the other rustc.)
wasm_cargo() {
  local rw=$WASM_TOOLCHAIN_DIR
  RUSTC=$rw/usr/bin/rustc LD_LIBRARY_PATH=$rw/usr/lib/x86_64-linux-gnu PATH=$PATH:$rw/usr/bin \
    RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=$HUB_WASM_TARGET \
    env -u RUSTC_WORKSPACE_WRAPPER cargo "$@" --manifest-path "$HEIWA_ROOT/hub-module/Cargo.toml"
}

build_hub_module() {
  log "building hub-module (wasm32)"
  wasm_cargo build --quiet --release --target wasm32-unknown-unknown -Zbuild-std=std,panic_abort
  [ -f "$HUB_WASM" ] || die "hub-module build produced no $HUB_WASM"
}

# The module's schema as the server sees it, pretty-printed; committed beside
# the generated bindings so a test can tell when they are out of date.
# The server lists row-level-security filters in no stable order: sort them.
extract_hub_schema() {
  "$SPACETIMEDB_BIN" extract-schema "$HUB_WASM" | python3 -c '
import json, sys
schema = json.load(sys.stdin)
for version in schema.values():
    version.get("row_level_security", []).sort(key=lambda rls: rls["sql"])
print(json.dumps(schema, indent=1))'
}
