"""One big migration file (a seed of INSERTs) against `psql -1 -f`, on a PostgreSQL it starts itself.

    python bench/bigfile.py [--mb 50] [--statements 362318] [--tenants 5] [--cli OTHER/.venv/bin/grapevine-migrations]

Writes ``--mb`` MB of ``--statements`` INSERTs into one tenant file (the documented figures: 50 MB,
362,318 statements), then measures, each as a separate process (wall time, peak RSS from
wait4):

1. parsing alone: the file parsed as `migrate` parses it, in the CLI's Python;
2. `psql -X -q -1 -v ON_ERROR_STOP=1 -f FILE` into one empty tenant database (the floor);
3. `migrate --tenant T0` (one tenant) and its ratio to psql;
4. `migrate --all-tenants --max-parallel 5` over ``--tenants`` empty tenants.

``--cli`` runs another build of the tool (an older checkout's CLI) instead of this one, for the
before/after figures. Targets: peak RSS <= 256 MiB at --max-parallel 5, one tenant
<= 2x psql. Starts an embedded PostgreSQL unless TEST_DATABASE_URL names a server.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import psycopg2
from psycopg2 import sql

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from run import Timed, must, timed  # noqa: E402

TARGET_RSS_MIB = 256
TARGET_RATIO = 2.0
FILE_NAME = "20250101000000_seed_big_table.sql"


def write_big_file(path: Path, megabytes: float, statements: int) -> int:
    """``statements`` INSERTs padded to about ``megabytes`` MB in all; returns the size in bytes."""
    per_statement = int(megabytes * 1_000_000 / statements)
    with path.open("w") as out:
        out.write("CREATE TABLE big (id bigint PRIMARY KEY, name text NOT NULL, email text, note text);\n")
        for i in range(1, statements + 1):
            head = f"INSERT INTO big (id, name, email, note) VALUES ({i}, 'name {i}', 'user{i}@example.com', '"
            tail = "');\n"
            pad = max(0, per_statement - len(head) - len(tail))
            out.write(head + ("seed row %d " % i).ljust(pad, "x")[:pad] + tail)
    return path.stat().st_size


class BigBench:
    def __init__(self, args):
        self.args = args
        self.cli = args.cli or str(Path(sys.executable).parent / "grapevine-migrations")
        self.python = str(Path(self.cli).parent / "python")
        self.work = Path(tempfile.mkdtemp(prefix="grapevine-bigfile-"))
        self.server = None
        url = os.environ.get("TEST_DATABASE_URL")
        if not url:
            from grapevine_alembic.local.embedded import LocalPostgres

            self.server = LocalPostgres(self.work / "pg")
            self.server.start()
            url = self.server.url
        self.base = url.rsplit("/", 1)[0]
        self.project = self.work / "project"
        self.project.mkdir()
        for name in ("alembic.ini", "alembic_control", "alembic_tenant"):
            source = REPO / name
            (shutil.copytree if source.is_dir() else shutil.copy)(source, self.project / name)
        shutil.copytree(REPO / "migrations" / "control", self.project / "migrations" / "control")
        tenant = self.project / "migrations" / "tenant"
        tenant.mkdir(parents=True)
        self.file = tenant / FILE_NAME
        self.size = write_big_file(self.file, args.mb, args.statements)
        self.env = {
            "PATH": f"{Path(self.cli).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": os.environ.get("HOME", "/root"),
            "CI": "true",
            "CONTROL_DATABASE_URL": f"{self.base}/bigbench_control",
        }

    def admin(self, dbname: str = "postgres"):
        conn = psycopg2.connect(f"{self.base}/{dbname}")
        conn.autocommit = True
        return conn

    def fresh_database(self, name: str) -> None:
        conn = self.admin()
        with conn.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        conn.close()

    def set_up(self) -> list[str]:
        self.fresh_database("bigbench_control")
        must(timed([self.cli, "migrate", "--control"], self.env, self.project), "migrate --control")
        tenants = [f"t{i}" for i in range(self.args.tenants)]
        control = self.admin("bigbench_control")
        with control.cursor() as cur:
            for tenant in tenants:
                self.fresh_database(f"db_{tenant}")
                cur.execute("INSERT INTO tenants (id, name, state) VALUES (%s, %s, 'provisioned')", (tenant, tenant))
        control.close()
        return tenants

    def count_rows(self, tenant: str) -> int:
        conn = self.admin(f"db_{tenant}")
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM big")
            count = cur.fetchone()[0]
        conn.close()
        return count

    def parse_alone(self) -> Timed:
        code = ("from pathlib import Path\n"
                "try:\n    from grapevine_alembic.files.migration import MigrationFile\n"
                "except ImportError:  # a build from before files/sqlfile was split\n"
                "    try:\n        from grapevine_alembic.files.sqlfile import MigrationFile\n"
                "    except ImportError:  # a build from before the files/ layer\n"
                "        from grapevine_alembic.sqlfile import MigrationFile\n"
                f"MigrationFile('20250101000000', 'seed', Path({str(self.file)!r})).parse()\n")
        return must(timed([self.python, "-c", code], self.env, self.project), "parsing")

    def psql(self) -> Timed:
        self.fresh_database("bigbench_psql")
        args = ["psql", "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-f", str(self.file), f"{self.base}/bigbench_psql"]
        return must(timed(args, self.env, self.project), "psql -1 -f")

    def run(self) -> int:
        tenants = self.set_up()
        statements = self.args.statements + 1
        print(f"file: {self.size / 1e6:.1f} MB, {statements} statements; CLI {self.cli}", flush=True)
        parse = self.parse_alone()
        print(f"parse alone                         {parse.seconds:7.1f} s   peak RSS {parse.peak_mb:7.0f} MiB", flush=True)
        floor = self.psql()
        print(f"psql -1 -f, one tenant              {floor.seconds:7.1f} s   peak RSS {floor.peak_mb:7.0f} MiB", flush=True)
        one = must(timed([self.cli, "migrate", "--tenant", tenants[0]], self.env, self.project), "migrate --tenant")
        assert self.count_rows(tenants[0]) == self.args.statements
        ratio = one.seconds / floor.seconds
        print(f"migrate --tenant, one tenant        {one.seconds:7.1f} s   peak RSS {one.peak_mb:7.0f} MiB"
              f"   {ratio:.2f}x psql (target <= {TARGET_RATIO}x)", flush=True)
        for tenant in tenants[:1]:
            self.fresh_database(f"db_{tenant}")
        fleet = must(timed([self.cli, "migrate", "--all-tenants", "--max-parallel", "5"], self.env, self.project),
                     "migrate --all-tenants")
        assert all(self.count_rows(t) == self.args.statements for t in tenants)
        print(f"migrate --all-tenants ({len(tenants)}), -p 5     {fleet.seconds:7.1f} s   peak RSS {fleet.peak_mb:7.0f} MiB"
              f"   (target <= {TARGET_RSS_MIB} MiB)", flush=True)
        met = ratio <= TARGET_RATIO and fleet.peak_mb <= TARGET_RSS_MIB
        print("targets met" if met else "targets NOT met")
        return 0 if met else 1

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
        shutil.rmtree(self.work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=50)
    parser.add_argument("--statements", type=int, default=362_318)
    parser.add_argument("--tenants", type=int, default=5)
    parser.add_argument("--cli", help="another build's grapevine-migrations (its python runs the parse case)")
    bench = BigBench(parser.parse_args())
    try:
        return bench.run()
    finally:
        bench.close()


if __name__ == "__main__":
    sys.exit(main())
