"""Read legacy tables out of SurrealDB for `heiwa migrate surrealdb`.

Run by heiwa with the interpreter of a Python environment holding SurrealDB's
official package (`surrealdb==2.0.0`, whose wheel carries SurrealDB's own
engine, so an embedded database file is read by SurrealDB itself, and a live
server through the same client). heiwa sends one JSON request on stdin. For
each page of each table this writes a header line, `{"table": T, "cbor": N}`,
then the N bytes of SurrealDB's own answer: the RPC response in CBOR, as the
engine or server encoded it, which heiwa decodes (SurrealDB's documented CBOR
tags). Decoding it here, in Python, took twice as long as the engine took to
read. Last, per table, `{"table": T, "end": COUNT}`. Credentials come from the
environment (SURREAL_USER, SURREAL_PASS), never from arguments.
"""

import json
import os
import sys

# Embedded engines whose database is a file or folder.
EMBEDDED_FILES = ("surrealkv", "surrealkv+versioned", "file", "rocksdb")


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(1)


try:
    from surrealdb import Surreal
    from surrealdb.connections import blocking_embedded, blocking_http, blocking_ws
except ImportError as error:
    fail(f"this Python has no SurrealDB package ({error}); install it with: pip install surrealdb==2.0.0")


class Pages:
    """While `taking`, the client's decoder keeps each answer's bytes for heiwa
    and gives the client an empty result in their place; otherwise it decodes
    as the SDK does (sign-in, `use`, `INFO`)."""

    def __init__(self):
        self.taking, self.taken = False, []

    def install(self):
        for module in (blocking_embedded, blocking_http, blocking_ws):
            sdk_decode = module.decode

            def decode(data, sdk_decode=sdk_decode):
                if not self.taking:
                    return sdk_decode(data)
                self.taken.append(bytes(data))
                return {"result": [{"status": "OK", "result": []}]}

            module.decode = decode

    def take(self, db, query, params):
        self.taking = True
        try:
            db.query(query, params)
        finally:
            self.taking = False
        if len(self.taken) != 1:
            fail(f"SurrealDB gave {len(self.taken)} answers to one query")
        return self.taken.pop()


def main():
    request = json.loads(sys.stdin.read())
    url, page = request["url"], int(request.get("page", 1000))
    scheme, _, path = url.partition("://")
    # Opening a file that is not there would create an empty database, and read nothing from it.
    if scheme in EMBEDDED_FILES and not os.path.exists(path):
        fail(f"no SurrealDB database at {path}")
    pages = Pages()
    pages.install()
    try:
        db = Surreal(url)
        db.connect()
        user, password = os.environ.get("SURREAL_USER"), os.environ.get("SURREAL_PASS")
        if user and password:
            db.signin({"username": user, "password": password})
        db.use(request["namespace"], request["database"])
        defined = set(db.query("INFO FOR DB")["tables"])
    except Exception as error:  # the client's own errors name the cause
        fail(f"cannot open {url}: {error}")
    if not defined:
        fail(f"namespace {request['namespace']!r}, database {request['database']!r} holds no tables "
             "(see --source-namespace and --source-database)")
    missing = [table for table in request["tables"] if table not in defined]
    if missing:
        fail(f"the legacy database has no table {', '.join(missing)} (it has: {', '.join(sorted(defined))}); "
             "name yours in the mapping")
    out = sys.stdout.buffer
    for table in request["tables"]:
        try:
            count = db.query("SELECT count() FROM type::table($table) GROUP ALL", {"table": table})
        except Exception as error:
            fail(f"cannot count table {table}: {error}")
        count = count[0]["count"] if count else 0
        for start in range(0, count, page):
            answer = pages.take(
                db,
                "SELECT * FROM type::table($table) START $start LIMIT $limit",
                {"table": table, "start": start, "limit": page},
            )
            out.write(json.dumps({"table": table, "cbor": len(answer)}).encode() + b"\n" + answer)
            out.flush()
        out.write(json.dumps({"table": table, "end": count}).encode() + b"\n")
        out.flush()
    db.close()


if __name__ == "__main__":
    main()
