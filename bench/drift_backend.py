"""Where drift's time goes on the server: CPU of one fresh backend per database, by phase.

    python bench/drift_backend.py [--tenants 40] [--rounds 30]

Builds the fleet of bench/drift.py (the 40-file chain copied into --tenants databases), then for
each case connects to the next database (a fresh backend with cold caches, as in a fan-out) and
reads that backend's CPU time from /proc/<pid>/schedstat (Linux, server on this machine) after
connecting and after the case's statements.  Medians over --rounds, cases interleaved.
Cases: status's query, and status's statements as it sends them; drift's steady state (the version
and the fingerprint), the same with the five catalogs the fingerprint leaves out read too, the version
alone, and (--per-catalog) the fingerprint over each catalog alone; drift's one round trip, without and
with the fingerprint (a first run's); the
snapshot only parsed (PREPARE); parsed and planned (EXPLAIN); one trivial lookup in each of the 16
catalogs the snapshot reads (the floor of touching them at all on a cold backend); the deparse floor:
only the definitions any drift must compare (every user column's type and default, every index,
constraint and trigger definition and function body, through the pg_get_* functions), in one flat
statement with no JSON.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import psycopg2

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from drift import build_fleet, project_copy  # noqa: E402

CATALOGS = ("pg_namespace pg_depend pg_extension pg_class pg_attribute pg_attrdef pg_type pg_inherits pg_index"
            " pg_constraint pg_rewrite pg_proc pg_trigger pg_sequence pg_enum pg_range").split()
NO_OID = {"pg_depend", "pg_sequence", "pg_inherits", "pg_attribute", "pg_index", "pg_range"}


def cases(server_version: int, per_catalog: bool) -> dict:
    from grapevine_alembic.database.session.connection import set_config_sql
    from grapevine_alembic.database.state.ledger import read_state
    from grapevine_alembic.schema.catalog import snapshot_sql, stash_version_sql
    from grapevine_alembic.schema.fingerprint import FINGERPRINT_SQL, FINGERPRINTED, fingerprint_sql

    setters, values = set_config_sql([("default_transaction_read_only", "on"), ("statement_timeout", "60000ms")])
    snapshot = snapshot_sql("public.alembic_version", "public.schema_migrations", server_version=server_version)
    settings, body = snapshot.rsplit(";\n", 1)
    touch = "SELECT " + ", ".join(f"(SELECT 1 FROM pg_catalog.{c} LIMIT 1)" if c in NO_OID
                                  else f"(SELECT 1 FROM pg_catalog.{c} WHERE oid = 1)" for c in CATALOGS)

    user = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'"
    deparse = (
        "SET LOCAL search_path TO '';\nSELECT"
        " (SELECT string_agg(pg_catalog.format_type(a.atttypid, a.atttypmod) || coalesce(pg_catalog.pg_get_expr(d.adbin, d.adrelid), ''), ',')"
        "  FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid"
        "  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        "  LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
        f"  WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND {user}),"
        " (SELECT string_agg(pg_catalog.pg_get_indexdef(i.indexrelid), ',') FROM pg_catalog.pg_index i"
        f"  JOIN pg_catalog.pg_class c ON c.oid = i.indrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE {user}),"
        " (SELECT string_agg(pg_catalog.pg_get_constraintdef(k.oid), ',') FROM pg_catalog.pg_constraint k"
        f"  JOIN pg_catalog.pg_namespace n ON n.oid = k.connamespace WHERE {user}),"
        " (SELECT string_agg(pg_catalog.pg_get_triggerdef(g.oid), ',') FROM pg_catalog.pg_trigger g WHERE NOT g.tgisinternal),"
        " (SELECT string_agg(pg_catalog.pg_get_functiondef(p.oid), ',') FROM pg_catalog.pg_proc p"
        f"  JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE p.prokind = 'f' AND {user})"
    )

    def drift(also=None):
        def case(cursor):
            bounded = cursor.mogrify(f"SET LOCAL transaction_read_only = on;\nSELECT {setters}, {stash_version_sql()};\n",
                                     values).decode()
            cursor.execute(bounded + snapshot_sql(stashed_version=True, server_version=server_version, also=also))
        return case

    def run(sql):
        return lambda cursor: cursor.execute(sql)

    def status(cursor):
        read_state(cursor, settings=[("statement_timeout", "60000ms")])

    def steady(sql):  # as schema/drift.read_live sends it
        def case(cursor):
            cursor.execute(cursor.mogrify(f"SET LOCAL transaction_read_only = on;\nSELECT {setters};\n"
                                          f"SELECT (SELECT max(version_num::text) FROM alembic_version), {sql}", values))
        return case

    alone = {f"fingerprint of {name} alone": steady(fingerprint_sql(((name, column),)))
             for name, column in FINGERPRINTED} if per_catalog else {}
    return {
        "status: SELECT version_num FROM alembic_version": run("SELECT version_num FROM alembic_version"),
        "status: its statements (read_state)": status,
        "drift steady: version and fingerprint": steady(FINGERPRINT_SQL),
        # what the five catalogs the fingerprint leaves out (their changes always write pg_depend rows) would cost
        "the same with the five left out read too": steady(fingerprint_sql(FINGERPRINTED + (
            ("pg_attrdef", "oid"), ("pg_rewrite", "oid"), ("pg_inherits", "inhrelid"), ("pg_extension", None),
            ("pg_range", "rngtypid")))),
        "version alone (no catalog)": steady("NULL"),
        **alone,
        "drift: the one round trip": drift(),
        "drift's first run: the round trip with the fingerprint": drift(FINGERPRINT_SQL),
        "snapshot parsed only (PREPARE)": run(f"{settings};\nPREPARE p AS {body}"),
        "snapshot parsed and planned (EXPLAIN)": run(f"{settings};\nEXPLAIN {body}"),
        "a lookup in each of the 16 catalogs": run(touch),
        "deparse floor: definitions only, no JSON": run(deparse),
    }


def cpu_ms(pid: int) -> float:
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenants", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--per-catalog", action="store_true",
                        help="Also the fingerprint over each catalog alone (what opening it costs a fresh backend).")
    args = parser.parse_args()
    from grapevine_alembic.local.embedded import LocalPostgres

    work = Path(tempfile.mkdtemp(prefix="grapevine-drift-backend-"))
    server = LocalPostgres(work / "pg")
    server.start()
    try:
        build_fleet(server, project_copy(work / "project", sample_chain=False), args.tenants)
        base = server.url.rsplit("/", 1)[0]
        probe = psycopg2.connect(server.url)
        todo = cases(probe.server_version, args.per_catalog)
        probe.close()
        seen = {name: [] for name in todo}
        turn = 0
        for _ in range(args.rounds):
            for name, case in todo.items():
                conn = psycopg2.connect(f"{base}/db_t{turn % args.tenants:04d}")
                turn += 1
                conn.autocommit = True
                pid = conn.get_backend_pid()
                connected = cpu_ms(pid)
                with conn.cursor() as cursor:
                    case(cursor)
                    if cursor.description:
                        cursor.fetchall()
                seen[name].append((connected, cpu_ms(pid) - connected))
                conn.close()
        print(f"\nCPU of a fresh backend (ms, medians of {args.rounds}; {args.tenants} databases in turn)")
        print(f"{'case':<56}{'connect':>9}{'statements':>12}")
        for name, values in seen.items():
            print(f"{name:<56}{statistics.median(v[0] for v in values):>9.2f}"
                  f"{statistics.median(v[1] for v in values):>12.2f}")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
