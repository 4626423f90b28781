# Official clients that nobody here wrote, used by the tests to talk to what
# the limb serves: the MCP Python SDK and the openai client (and jsonschema,
# to check structured output by the schema, not by our own reading; python-xlib,
# to close the desktop window as a window manager would; surrealdb, SurrealDB's
# own package with its embedded engine, to build the legacy database the
# cutover tests migrate, and to read it as `heiwa migrate surrealdb` does). One
# venv in the cache, keyed by the pinned versions.
TEST_CLIENTS=(mcp==2.3.0 openai==3.54.0 jsonschema==4.23.0 python-xlib==0.33 surrealdb==2.0.0)
TEST_CLIENTS_VENV=$HEIWA_CACHE/venv-clients-$(printf '%s\n' "${TEST_CLIENTS[@]}" | sha256sum | cut -c1-12)

install_test_clients() {
  [ -x "$TEST_CLIENTS_VENV/bin/python" ] && [ -f "$TEST_CLIENTS_VENV/.complete" ] && return 0
  log "installing the test clients: ${TEST_CLIENTS[*]}"
  rm -rf "$TEST_CLIENTS_VENV"
  python3 -m venv "$TEST_CLIENTS_VENV"
  "$TEST_CLIENTS_VENV/bin/pip" install -q "${TEST_CLIENTS[@]}"
  touch "$TEST_CLIENTS_VENV/.complete"
}
