"""Read legacy tables out of SurrealDB for `heiwa migrate surrealdb`.

Run by heiwa with the interpreter of a Python environment holding SurrealDB's
official package (`surrealdb==2.0.0`, whose wheel carries SurrealDB's own
engine, so an embedded database file is read by SurrealDB itself). heiwa
sends one JSON request on stdin; this prints one JSON object per record on
stdout, then one per finished table, and nothing else. Credentials come from
the environment (SURREAL_USER, SURREAL_PASS), never from arguments.
"""

import base64
import datetime
import decimal
import json
import os
import re
import sys
import uuid

EMBEDDED_FILES = ("surrealkv", "surrealkv+versioned", "file", "rocksdb")
PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(1)


try:
    from surrealdb import RecordID, Surreal
except ImportError as error:
    fail(f"this Python has no SurrealDB package ({error}); install it with: pip install surrealdb==2.0.0")


def record_key(key):
    """A record id's key as SurrealQL writes it, so that `t:1` and `t:⟨1⟩` stay two ids."""
    if isinstance(key, bool):
        return json.dumps(key)
    if isinstance(key, int):
        return str(key)
    if isinstance(key, str):
        return key if PLAIN_KEY.match(key) else f"⟨{key}⟩"
    if isinstance(key, uuid.UUID):
        return f"u'{key}'"
    return json.dumps(plain(key), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def plain(value):
    """A SurrealDB value as JSON: a record link as its id (`table:key`), a
    datetime as microseconds since the epoch, bytes as base64."""
    if isinstance(value, RecordID):
        return f"{value.table_name}:{record_key(value.id)}"
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        delta = value - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
        return {"$datetime_micros": (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds}
    if isinstance(value, (bytes, bytearray)):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain(v) for v in value]
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def emit(line):
    sys.stdout.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")


def main():
    request = json.loads(sys.stdin.read())
    url, page = request["url"], int(request.get("page", 1000))
    scheme, _, path = url.partition("://")
    # Opening a file that is not there would create an empty database, and read nothing from it.
    if scheme in EMBEDDED_FILES and not os.path.exists(path):
        fail(f"no SurrealDB database at {path}")
    try:
        db = Surreal(url)
        db.connect()
        user, password = os.environ.get("SURREAL_USER"), os.environ.get("SURREAL_PASS")
        if user and password:
            db.signin({"username": user, "password": password})
        db.use(request["namespace"], request["database"])
    except Exception as error:  # the engine's own errors name the cause
        fail(f"cannot open {url}: {error}")
    try:
        defined = set(db.query("INFO FOR DB")["tables"])
    except Exception as error:
        fail(f"cannot list the tables of {url}: {error}")
    missing = [table for table in request["tables"] if table not in defined]
    if missing:
        fail(f"the legacy database has no table {', '.join(missing)} (it has: {', '.join(sorted(defined)) or 'none'})")
    for table in request["tables"]:
        count = 0
        while True:
            try:
                rows = db.query(
                    "SELECT * FROM type::table($table) START $start LIMIT $limit",
                    {"table": table, "start": count, "limit": page},
                )
            except Exception as error:
                fail(f"cannot read table {table}: {error}")
            for row in rows:
                row = dict(row)
                record_id = plain(row.pop("id"))
                emit({"table": table, "id": record_id, "fields": plain(row)})
            count += len(rows)
            sys.stdout.flush()
            if len(rows) < page:
                break
        emit({"table": table, "end": count})
        sys.stdout.flush()
    db.close()


if __name__ == "__main__":
    main()
