"""The initial load's SQL alone, outside keygate: the shapes of page query
that were weighed for it, each paging through every live key of a seeded
SQLite store the way keygate's loader does (2,000 keys a page, one
aggregated row per page), timed over several rounds, shapes alternated.

    python3 -m venv /tmp/loadsql && /tmp/loadsql/bin/pip install pysqlite3-binary==0.5.3
    /tmp/loadsql/bin/python benches/loadsql.py /tmp/keygate-coldstart-1000000.db

`pysqlite3-binary` 0.5.3 carries SQLite 3.46.0, the version sqlx bundles
into keygate; a newer wheel measures a newer SQLite. The store is one
`benches/coldstart.sh` seeded (`STORE=` there); it is copied first, so the
seeded file and its write-ahead log stay as a first start finds them.
Run it pinned (`taskset -c 1 ...`) beside nothing else.

Shapes:
  concat  each line built by a chain of `||` (keygate before `format`)
  format  each line built by one `format()` (keygate's)
  rowid   `format()`, paged on SQLite's rowid instead of the key id
  apart   keys and accounts each paged on their own, no join (what a load
          joining in memory would read)

Then the reads a start makes after the keys, each timed as the store has
them and again with the partial indexes of migration 0011 dropped (what a
start read before them). Their SQL is keygate's (src/store/sql), copied.
"""

import os
import shutil
import statistics
import sys
import tempfile
import time

try:
    import pysqlite3 as sqlite3
except ImportError:
    sys.exit("loadsql: needs pysqlite3-binary (see the docstring)")

PAGE = 2000
T = "\t"
JOIN = (
    "FROM api_keys k JOIN service_accounts a ON a.id = k.service_account_id "
    "WHERE k.revoked_at IS NULL AND a.closed_at IS NULL AND a.enabled = TRUE"
)
CONCAT = (
    f"k.id || '{T}' || k.hash || '{T}' || COALESCE(CAST(k.expires_at AS TEXT), '') "
    f"|| '{T}' || a.id || '{T}' || a.organization_id || '{T}' || COALESCE(a.project_id, '') "
    f"|| '{T}' || a.role || '{T}' || COALESCE(CAST(a.expires_at AS TEXT), '') "
    f"|| '{T}' || COALESCE(a.rate_limit, '') || '{T}' || a.scopes"
)
FORMAT = (
    "format('" + T.join(["%s"] * 10) + "', k.id, k.hash, k.expires_at, a.id, "
    "a.organization_id, a.project_id, a.role, a.expires_at, a.rate_limit, a.scopes)"
)
KEYS = "format('" + T.join(["%s"] * 4) + "', k.id, k.hash, k.expires_at, k.service_account_id)"
ACCOUNTS = (
    "format('" + T.join(["%s"] * 7) + "', a.id, a.organization_id, a.project_id, "
    "a.role, a.expires_at, a.rate_limit, a.scopes)"
)


def paged(line, source, order, start):
    """A page query: the lines aggregated, and the last cursor value."""
    return (
        f"SELECT group_concat(line, char(10)), max(c), count(*) FROM "
        f"(SELECT {line} AS line, {order} AS c {source} AND {order} > ? "
        f"ORDER BY {order} LIMIT {PAGE})",
        start,
    )


SHAPES = {
    "concat": [paged(CONCAT, JOIN, "k.id", "")],
    "format": [paged(FORMAT, JOIN, "k.id", "")],
    "rowid": [paged(FORMAT, JOIN, "k.rowid", 0)],
    "apart": [
        paged(KEYS, "FROM api_keys k WHERE k.revoked_at IS NULL", "k.id", ""),
        paged(
            ACCOUNTS,
            "FROM service_accounts a WHERE a.closed_at IS NULL AND a.enabled = TRUE",
            "a.id",
            "",
        ),
    ],
}


ACCOUNT_COLUMNS = (
    "a.id, a.organization_id, a.project_id, a.name, a.description, a.role, a.scopes, "
    "a.enabled, a.expires_at, a.closed_at, a.rate_limit, a.created_by, a.created_at, "
    "a.updated_at, a.last_used_at, a.tokens_not_before, a.metadata, a.quota"
)
# The reads after the keys (`restricted_accounts`, `narrowed_accounts`).
AFTER_KEYS = {
    "restricted accounts": (
        f"SELECT {ACCOUNT_COLUMNS} FROM service_accounts a WHERE a.closed_at IS NOT NULL "
        "OR a.enabled = FALSE OR a.expires_at IS NOT NULL OR a.rate_limit IS NOT NULL "
        "OR a.tokens_not_before IS NOT NULL"
    ),
    "narrowed accounts": (
        "SELECT id FROM service_accounts WHERE quota IS NOT NULL AND closed_at IS NULL "
        "UNION SELECT service_account_id AS id FROM api_keys WHERE revoked_at IS NULL "
        "AND (quota IS NOT NULL OR scopes IS NOT NULL OR allowed_cidrs IS NOT NULL) "
        "UNION SELECT service_account_id AS id FROM client_credentials WHERE deleted_at IS NULL "
        "AND (quota IS NOT NULL OR scopes IS NOT NULL OR allowed_cidrs IS NOT NULL) "
        "UNION SELECT service_account_id AS id FROM federated_identities WHERE deleted_at IS NULL"
    ),
}
START_INDEXES = (
    "service_accounts_restricted",
    "service_accounts_quota",
    "api_keys_narrowing",
    "client_credentials_narrowing",
)


def timed_reads(db, rounds):
    """Median milliseconds of each read after the keys, and its plan."""
    out = {}
    for name, sql in AFTER_KEYS.items():
        took = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            db.execute(sql).fetchall()
            took.append((time.perf_counter() - t0) * 1000)
        plan = "; ".join(r[-1] for r in db.execute("EXPLAIN QUERY PLAN " + sql).fetchall())
        out[name] = (statistics.median(took), plan)
    return out


def run(db, queries):
    """Seconds to page through every query's rows; the lines read."""
    lines = 0
    t0 = time.perf_counter()
    for sql, cursor in queries:
        while True:
            page, last, n = db.execute(sql, (cursor,)).fetchone()
            if not n:
                break
            lines += page.count("\n") + 1
            cursor = last
    return time.perf_counter() - t0, lines


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    rounds = int(os.environ.get("ROUNDS", "3"))
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, "load.db")
        shutil.copy(sys.argv[1], copy)
        if os.path.exists(sys.argv[1] + "-wal"):
            shutil.copy(sys.argv[1] + "-wal", copy + "-wal")
        db = sqlite3.connect(copy)
        # As keygate reads at start: the log copied in, the file mapped.
        db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        db.execute("PRAGMA mmap_size = 1099511627776").fetchall()
        times = {name: [] for name in SHAPES}
        counts = {}
        for _ in range(rounds):
            for name, queries in SHAPES.items():
                took, counts[name] = run(db, queries)
                times[name].append(took)
        print(f"loadsql: SQLite {sqlite3.sqlite_version}, {rounds} rounds, shapes alternated")
        print("| shape | lines read | seconds per pass (median; all) |")
        print("|---|---|---|")
        for name, t in times.items():
            every = " / ".join(f"{x:.2f}" for x in t)
            print(f"| {name} | {counts[name]:,} | {statistics.median(t):.2f}; {every} |")

        # The reads after the keys: as stored, then without 0011's indexes.
        with_indexes = timed_reads(db, rounds)
        for index in START_INDEXES:
            db.execute(f"DROP INDEX IF EXISTS {index}")
        db.commit()
        db.close()
        # A fresh connection: none of the statements planned with the indexes.
        db = sqlite3.connect(copy)
        db.execute("PRAGMA mmap_size = 1099511627776").fetchall()
        without = timed_reads(db, rounds)
        print("| read after the keys | as stored: ms (plan) | without 0011's indexes: ms (plan) |")
        print("|---|---|---|")
        for name in AFTER_KEYS:
            (a, pa), (b, pb) = with_indexes[name], without[name]
            print(f"| {name} | {a:.2f} ({pa}) | {b:.1f} ({pb}) |")


if __name__ == "__main__":
    main()
