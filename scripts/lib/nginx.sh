# nginx for the network tests' TLS front (crates/heiwa/tests/network.rs):
# Debian's own binary, unpacked into the cache and never installed, so no
# service is set up and nothing listens outside a test's own namespaces. apt
# verifies the package against the signed archive; the security archive keeps
# only its newest version, so the cache holds whichever version was current.
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

export HEIWA_NGINX=$HEIWA_CACHE/nginx/usr/sbin/nginx

# loopback_nginx DIR PORT LOCATIONS: nginx on 127.0.0.1:PORT, its files and
# access log under DIR, serving the given `location` blocks; stop it with
# kill "$(cat DIR/nginx.pid)".
loopback_nginx() {
  local dir=$1 port=$2 locations=$3
  cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/nginx-error.log;
events {}
http {
  access_log $dir/access.log;
  client_body_temp_path $dir/b; proxy_temp_path $dir/p; fastcgi_temp_path $dir/f; uwsgi_temp_path $dir/u; scgi_temp_path $dir/s;
  server { listen 127.0.0.1:$port; $locations }
}
CONF
  "$HEIWA_NGINX" -e stderr -p "$dir" -c "$dir/nginx.conf"
}

install_nginx() {
  [ -x "$HEIWA_NGINX" ] && return 0
  log "fetching nginx (Debian's package, unpacked into the cache for the network tests)"
  local tmp; tmp=$(mktemp -d)
  chmod 755 "$tmp"   # apt fetches as its own user (_apt)
  (cd "$tmp" && apt-get download -qq nginx >/dev/null) || die "apt-get download nginx failed"
  dpkg-deb -x "$tmp"/nginx_*.deb "$tmp/x"
  rm -rf "$HEIWA_CACHE/nginx" && mkdir -p "$HEIWA_CACHE" && mv "$tmp/x" "$HEIWA_CACHE/nginx" && rm -rf "$tmp"
}
