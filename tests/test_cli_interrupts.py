"""Ctrl-C and SIGTERM against real runs: stop starting, then cancel, always a summary, exit 130.

The migration under way waits on an advisory lock the test holds, so "still running" is a
condition the test controls, not a race against a sleep.
"""

from __future__ import annotations

import json
import queue
import signal
import threading
import time

import pytest
from pg import connect

LOCK = 4242
CHAIN = {
    "20240101000000_base.sql": "CREATE TABLE base (x int);\n",
    "20240102000000_blocked.sql": f"BEGIN;\nCREATE TABLE blocked (x int);\nSELECT pg_advisory_xact_lock({LOCK});\nCOMMIT;\n",
}


class StderrLines:
    """Reads a process's stderr on a thread so the test can wait for a line without blocking."""

    def __init__(self, proc):
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, args=(proc.stderr,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self.lines.put(line)
        self.lines.put("")

    def wait_for(self, text: str, timeout: float = 30) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                return False
            if line == "":
                return False
            self.seen.append(line)
            if text in line:
                return True
        return False

    def rest(self) -> str:
        while True:
            line = self.lines.get(timeout=30)
            if line == "":
                return "".join(self.seen)
            self.seen.append(line)


def _setup(project, count: int = 3) -> list[str]:
    project.migrate_control()
    ids = [f"t{i}" for i in range(1, count + 1)]
    for tenant_id in ids:
        project.add_tenant(tenant_id)
    project.clear("tenant")
    for name, sql in CHAIN.items():
        project.write("tenant", name, sql)
    return ids


def _blocked(project, database: str) -> bool:
    rows = project.query(
        database,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND wait_event_type = 'Lock' AND query LIKE %s",
        ("%pg_advisory_xact_lock%",),
    )
    return rows[0][0] > 0


def _wait_until(condition, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def _hold_lock(project, database: str):
    holder = connect(project.server, database)
    holder.autocommit = True
    holder.cursor().execute("SELECT pg_advisory_lock(%s)", (LOCK,))
    return holder


def _start(project, *args):
    proc = project.spawn("migrate", "--all-tenants", "--max-parallel", "1", "--lock-timeout", "0", *args)
    return proc, StderrLines(proc)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_first_signal_lets_the_running_tenant_finish_and_skips_the_rest(project, signum):
    _setup(project)
    holder = _hold_lock(project, "db_t1")
    proc, stderr = _start(project)
    try:
        assert _wait_until(lambda: _blocked(project, "db_t1")), "the first tenant never reached the lock"
        proc.send_signal(signum)
        assert stderr.wait_for("not starting any more databases"), stderr.seen
        assert _blocked(project, "db_t1") and proc.poll() is None  # said at once, while still running
    finally:
        holder.close()  # let the running migration finish
    stdout = proc.stdout.read()
    proc.wait(timeout=120)
    rest = stderr.rest()
    assert proc.returncode == 130, rest
    assert project.version("db_t1") == "20240102000000"  # finished cleanly
    assert project.version("db_t2") is None and project.version("db_t3") is None  # never started
    lines = {line.split()[0]: line for line in stdout.splitlines() if line.strip()}
    assert "ok" in lines["t1"] and "skipped" in lines["t2"] and "skipped" in lines["t3"], stdout
    assert "interrupted, 2 tenant(s) not started" in rest


def test_second_signal_cancels_the_running_statement_and_still_reports(project):
    _setup(project)
    holder = _hold_lock(project, "db_t1")
    proc, stderr = _start(project, "--json")
    try:
        assert _wait_until(lambda: _blocked(project, "db_t1"))
        proc.send_signal(signal.SIGINT)
        assert stderr.wait_for("not starting any more databases")
        proc.send_signal(signal.SIGINT)
        assert stderr.wait_for("cancelling the running statements")
        stdout = proc.stdout.read()  # the lock is still held: only the cancel can end the run
        proc.wait(timeout=60)
    finally:
        holder.close()
        if proc.poll() is None:  # a failed assertion above: leave no CLI behind
            proc.kill()
    assert proc.returncode == 130, stderr.rest()
    doc = json.loads(stdout)
    assert doc["ok"] is False and doc["interrupted"] is True
    by_tenant = {d["tenant"]: d for d in doc["databases"]}
    assert not by_tenant["t1"]["ok"] and "canceling statement" in by_tenant["t1"]["error"]
    assert by_tenant["t2"]["skipped"] and by_tenant["t3"]["skipped"]
    # rolled back: the blocked file left nothing behind and recorded no version
    assert project.version("db_t1") == "20240101000000"
    assert "blocked" not in project.tables("db_t1")
