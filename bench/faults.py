"""Network faults and restarts, timed: how long a stalled tenant, a signal and a restart take.

    python bench/faults.py [--repeat 1] [--outages 5,30] [--json bench/results/faults.json]

Starts two embedded PostgreSQL 18 servers: one for the control database and the stall cases,
one for the tenants of the restart cases (stopped and started again mid-run).  Every case runs
the CLI as a separate process with default options:

1. stall: tenants h1..h3 direct, s1 through a TCP proxy (tests/faultproxy.py) that stops
   forwarding, sockets open, 2 s into ``ALTER TABLE a ADD COLUMN x int; SELECT pg_sleep(4); ...``.
   Prints stall -> the run's exit (the stalled tenant's failure) and stall -> the application's
   ``SELECT count(*) FROM a`` on s1 returning (its lock released).
2. signals during the same stall: SIGTERM, and Ctrl-C twice; prints signal -> exit and the code.
3. restart: 6 tenants x 5 files on the second server, stopped for each of --outages seconds once
   the first tenant is past its first file; prints the run's wall time, the outage, the exit code.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg2
from psycopg2 import sql

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests"))
from faultproxy import FaultProxy, send_signals  # noqa: E402
from run import CLI, machine, write_result  # noqa: E402

QUERY = "SELECT id, server FROM tenants WHERE state = 'provisioned' ORDER BY id"
STALL_CHAIN = {
    "20240101000000_a.sql": "CREATE TABLE a (id int);\nINSERT INTO a VALUES (1);\n",
    "20240102000000_stall.sql": "ALTER TABLE a ADD COLUMN x int;\nSELECT pg_sleep(4);\nALTER TABLE a ADD COLUMN y int;\n",
}
RESTART_CHAIN = {"20240101000000_runs.sql": "CREATE TABLE runs (file text);\n"}
RESTART_CHAIN.update({f"2024010{i + 1}000000_step{i}.sql":
                      f"BEGIN;\nSELECT pg_sleep(0.3);\nINSERT INTO runs VALUES ('step{i}');\nCOMMIT;\n"
                      for i in range(1, 6)})


class Lab:
    def __init__(self, work: Path):
        from grapevine_alembic.local.embedded import LocalPostgres

        self.work = work
        password = secrets.token_urlsafe(16)
        self.main, self.restarting = (LocalPostgres(work / f"pg{n}", password=password) for n in (1, 2))
        self.main.start()
        self.restarting.start()
        self.count = 0

    def admin(self, server, dbname: str = "postgres"):
        conn = psycopg2.connect(server.url.rsplit("/", 1)[0] + "/" + dbname)
        conn.autocommit = True
        return conn

    def execute(self, server, dbname: str, statement, params=None) -> list:
        conn = self.admin(server, dbname)
        try:
            with conn.cursor() as cur:
                cur.execute(statement, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def project(self, chain: dict, tenants: dict[str, object], server_column: dict[str, str] | None = None):
        """A fresh project and control database; ``tenants``: id -> the server its database is on."""
        self.count += 1
        root = self.work / f"project{self.count}"
        root.mkdir()
        for name in ("alembic.ini", "alembic_control", "alembic_tenant"):
            source = REPO / name
            (shutil.copytree if source.is_dir() else shutil.copy)(source, root / name)
        ini = root / "alembic.ini"
        ini.write_text(ini.read_text().replace("[grapevine]\n", f"[grapevine]\ntenants_query = {QUERY}\n"))
        shutil.copytree(REPO / "tests" / "fixtures" / "migrations" / "control", root / "migrations" / "control")
        (root / "migrations" / "tenant").mkdir()
        control = f"control{self.count}"
        self.execute(self.main, "postgres", sql.SQL("CREATE DATABASE {}").format(sql.Identifier(control)))
        env = {"PATH": f"{Path(CLI).parent}{os.pathsep}{os.environ.get('PATH', '')}", "HOME": os.environ.get("HOME", "/"),
               "CI": "true", "CONTROL_DATABASE_URL": self.main.url.rsplit("/", 1)[0] + "/" + control}
        run(env, root, "migrate", "--control", expect=0)
        self.execute(self.main, control, "ALTER TABLE tenants ADD COLUMN server text")
        for tenant, server in tenants.items():
            label = (server_column or {}).get(tenant) or (None if server is self.main else f"127.0.0.1:{server.port}")
            self.execute(self.main, control, "INSERT INTO tenants (id, name, state, server)"
                         " VALUES (%s, %s, 'provisioned', %s)", (tenant, tenant, label))
            database = sql.Identifier(f"db_{tenant}")  # the previous case's copy goes first
            self.execute(server, "postgres", sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(database))
            self.execute(server, "postgres", sql.SQL("CREATE DATABASE {}").format(database))
        for name, text in chain.items():
            (root / "migrations" / "tenant" / name).write_text(text)
        return root, env

    def stop(self) -> None:
        self.main.stop()
        self.restarting.stop()


def run(env, root, *args, expect=None) -> subprocess.CompletedProcess:
    result = subprocess.run([CLI, *args], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    if expect is not None and result.returncode != expect:
        raise SystemExit(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def stall_case(lab: Lab, signals: tuple = ()) -> dict:
    with FaultProxy("127.0.0.1", lab.main.port) as proxy:
        tenants = {"h1": lab.main, "h2": lab.main, "h3": lab.main, "s1": lab.main}
        root, env = lab.project(STALL_CHAIN, tenants, {"s1": proxy.label})
        stall_file = root / "migrations" / "tenant" / "20240102000000_stall.sql"
        text = stall_file.read_text()
        stall_file.unlink()
        run(env, root, "migrate", "--all-tenants", expect=0)
        stall_file.write_text(text)
        proc = subprocess.Popen([CLI, "migrate", "--all-tenants"], cwd=root, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        stalled = _stall_into_sleep(lab, proxy)
        released: dict = {}
        reader = threading.Thread(target=_count_rows, args=(lab, released), daemon=True)
        reader.start()
        signalled = None
        if signals:
            time.sleep(1.0)
            signalled = send_signals(proc, signals)
        proc.communicate(timeout=300)
        ended = time.monotonic()
        reader.join(timeout=120)
    result = {"exit": proc.returncode, "stall_to_exit_s": round(ended - stalled, 1)}
    if "at" in released:
        result["stall_to_lock_release_s"] = round(released["at"] - stalled, 1)
    if signalled is not None:
        result["signal_to_exit_s"] = round(ended - signalled, 1)
    return result


def _stall_into_sleep(lab: Lab, proxy: FaultProxy, into: float = 2.0) -> float:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = lab.execute(lab.main, "db_s1", "SELECT extract(epoch FROM now() - xact_start) FROM pg_stat_activity"
                           " WHERE datname = 'db_s1' AND state = 'active' AND pid <> pg_backend_pid()"
                           " AND query LIKE '%pg_sleep(4)%'")
        if rows:
            time.sleep(max(0.0, into - float(rows[0][0])))
            return proxy.stall()
        time.sleep(0.05)
    raise SystemExit("the stalling file never started")


def _count_rows(lab: Lab, released: dict) -> None:
    try:
        lab.execute(lab.main, "db_s1", "SET statement_timeout = '300s'; SELECT count(*) FROM a")
        released["at"] = time.monotonic()
    except psycopg2.Error as err:
        released["error"] = str(err)


def restart_case(lab: Lab, outage_s: float) -> dict:
    tenants = {f"r{i}": lab.restarting for i in range(1, 7)}
    root, env = lab.project(RESTART_CHAIN, tenants)
    env = {**env, "PG_TENANT_DATABASE_PORT": str(lab.restarting.port)}
    started = time.monotonic()
    proc = subprocess.Popen([CLI, "migrate", "--all-tenants", "--max-parallel", "2", "--json"], cwd=root, env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    while True:  # the first tenant past its first file
        try:
            if lab.execute(lab.restarting, "db_r1", "SELECT to_regclass('alembic_version') IS NOT NULL")[0][0]:
                break
        except psycopg2.Error:
            pass
        time.sleep(0.05)
    stopping = time.monotonic()
    lab.restarting.stop()
    time.sleep(outage_s)
    lab.restarting.start()
    back = time.monotonic()
    stdout, _ = proc.communicate(timeout=600)
    ended = time.monotonic()
    doc = json.loads(stdout)
    at_head = sum(1 for t in tenants if lab.execute(lab.restarting, f"db_{t}",
                  "SELECT version_num FROM alembic_version")[0][0] == max(RESTART_CHAIN)[:14])
    return {"exit": proc.returncode, "outage_s": round(back - stopping, 1), "run_s": round(ended - started, 1),
            "back_to_done_s": round(ended - back, 1), "tenants_at_head": f"{at_head}/{len(tenants)}",
            "retries": sum(d["attempts"] - 1 for d in doc["databases"] if d.get("attempts"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--outages", default="5,30")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "faults.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="grapevine-faults-"))
    lab = Lab(work)
    result: dict = {"machine": machine(), "stall": [], "SIGTERM": [], "Ctrl-C twice": [], "restart": {}}
    try:
        for _ in range(args.repeat):
            result["stall"].append(stall_case(lab))
            result["SIGTERM"].append(stall_case(lab, (signal.SIGTERM,)))
            result["Ctrl-C twice"].append(stall_case(lab, (signal.SIGINT, signal.SIGINT)))
            for outage in [float(o) for o in args.outages.split(",") if o.strip()]:
                result["restart"].setdefault(str(outage), []).append(restart_case(lab, outage))
    finally:
        lab.stop()
        shutil.rmtree(work, ignore_errors=True)
    print_table(result)
    write_result(args.json, result)


def print_table(result: dict) -> None:
    m = result["machine"]
    print(f"\nnetwork faults and restarts, default options; {m['cpus']} CPUs ({m['cpu']})")
    for run_ in result["stall"]:
        print(f"stall 2 s into the file: exit {run_['exit']}, stall -> run ends {run_['stall_to_exit_s']} s,"
              f" stall -> lock released {run_.get('stall_to_lock_release_s', 'never')} s")
    for case in ("SIGTERM", "Ctrl-C twice"):
        for run_ in result[case]:
            print(f"{case} 1 s into the stall: exit {run_['exit']}, signal -> exit {run_['signal_to_exit_s']} s")
    for outage, runs in result["restart"].items():
        for run_ in runs:
            print(f"server stopped for {outage} s (measured {run_['outage_s']} s) during migrate --all-tenants:"
                  f" exit {run_['exit']}, {run_['tenants_at_head']} at head, run {run_['run_s']} s,"
                  f" server back -> done {run_['back_to_done_s']} s, {run_['retries']} retries")


if __name__ == "__main__":
    main()
