"""A tenant reached through a proxy that stalls mid-file, shared by the silent-network tests.

One tenant is reached through ``faultproxy.FaultProxy`` (its ``server`` in the tenants table),
the others directly.  Two seconds into the tenant's file the proxy stops forwarding but keeps
every socket open, the way a hung pooler or load balancer does: TCP sees nothing wrong, so
only the tool's watchdog and the server's idle-in-transaction bound can end the wait.
"""

from __future__ import annotations

import threading
import time

import pytest

import pg
from faultproxy import FaultProxy

QUERY = "SELECT id, server FROM tenants WHERE state = 'provisioned' ORDER BY id"
BASE = "20240101000000"
STALL_FILE = "ALTER TABLE a ADD COLUMN x int;\nSELECT pg_sleep(4);\nALTER TABLE a ADD COLUMN y int;\n"
CHAIN = {
    f"{BASE}_a.sql": "CREATE TABLE a (id int);\nINSERT INTO a VALUES (1);\n",
    "20240102000000_stall.sql": STALL_FILE,
}
HEAD = "20240102000000"
# The tests pass a small GRAPEVINE_SILENCE_TIMEOUT: the watchdog probes after 1 s, calls the answer
# lost after 4 s, and the server ends the abandoned transaction after 14 s.  The defaults (20 s,
# the 60 s bound) are pinned by test_silence_bounds_default_to_what_the_docs_say.
SILENCE_S = 4
SMALL_BOUNDS = {"GRAPEVINE_SILENCE_TIMEOUT": str(SILENCE_S)}


def bound_s(silence_s: float) -> float:
    """The longest a stall may take to fail and release its locks: 60 s at the default silence of 20 s."""
    return 2 * silence_s + 20


SMALL_BOUND_S = bound_s(SILENCE_S)


class StallSetup:
    """Healthy tenants h1..h3 on the session server, tenant ``s1`` through a proxy to the same server."""

    def __init__(self, project, proxy: FaultProxy, chain=CHAIN, healthy: int = 3):
        self.project, self.proxy = project, proxy
        project.migrate_control()
        project.control("ALTER TABLE tenants ADD COLUMN server text")
        ini = project.root / "alembic.ini"
        ini.write_text(ini.read_text().replace("[grapevine]\n", f"[grapevine]\ntenants_query = {QUERY}\n"))
        self.healthy = [f"h{i}" for i in range(1, healthy + 1)]
        for tenant in self.healthy:
            project.add_tenant(tenant)
        project.add_tenant("s1")
        project.control("UPDATE tenants SET server = %s WHERE id = 's1'", (proxy.label,))
        project.clear("tenant")
        for name, sql in chain.items():
            project.write("tenant", name, sql)

    def stall_when_sleeping(self, sleep_sql: str = "pg_sleep(4)", into: float = 2.0, timeout: float = 60,
                            new_connections: bool = True) -> float:
        """Stall the proxy ``into`` seconds after the file's statements began (seen in pg_stat_activity)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self.project.query(
                "db_s1", "SELECT extract(epoch FROM now() - xact_start) FROM pg_stat_activity"
                " WHERE datname = 'db_s1' AND state = 'active' AND pid <> pg_backend_pid() AND query LIKE %s",
                (f"%{sleep_sql}%",))
            if rows:
                time.sleep(max(0.0, into - float(rows[0][0])))
                return self.proxy.stall(new_connections=new_connections)
            time.sleep(0.05)
        raise AssertionError(f"{sleep_sql} never started on db_s1")

    def columns(self) -> set[str]:
        rows = self.project.query("db_s1", "SELECT column_name FROM information_schema.columns WHERE table_name = 'a'")
        return {r[0] for r in rows}


class LockProbe(threading.Thread):
    """The application's ``SELECT count(*) FROM a`` on the stalled tenant, started at the stall."""

    def __init__(self, server, database: str):
        super().__init__(daemon=True)
        self.server, self.database = server, database
        self.done_at: float | None = None
        self.error: str | None = None

    def run(self) -> None:
        try:
            conn = pg.connect(self.server, self.database)
            with conn.cursor() as cursor:
                cursor.execute("SET statement_timeout = '120s'")
                cursor.execute("SELECT count(*) FROM a")
                cursor.fetchone()
            conn.close()
            self.done_at = time.monotonic()
        except Exception as err:  # noqa: BLE001 - reported by the test
            self.error = str(err)


class StallRun:
    """A run of ``proc`` through a stall of db_s1, and a lock probe started as the stall begins."""

    def __init__(self, proc, setup: StallSetup, pg_server, *, timeout: float = 120, **stall):
        try:
            self.stalled_at = setup.stall_when_sleeping(**stall)
            self.reader = LockProbe(pg_server, "db_s1")
            self.reader.start()
            self.stdout, self.stderr = proc.communicate(timeout=timeout)
            self.ended_at = time.monotonic()
            self.reader.join(timeout=timeout / 2)
        finally:
            if proc.poll() is None:
                proc.kill()
        self.returncode = proc.returncode

    @property
    def seconds(self) -> float:
        return self.ended_at - self.stalled_at


@pytest.fixture
def proxy(pg_server):
    if pg.is_external(pg_server):
        pytest.skip("the proxy forwards to a loopback server")
    with FaultProxy("127.0.0.1", pg_server.port) as proxy:
        yield proxy


def start_at_base(project) -> None:
    # apply only the base file first: move the stalling file away and back
    stall = project.migrations("tenant") / "20240102000000_stall.sql"
    text = stall.read_text()
    stall.unlink()
    result = project.cli("migrate", "--all-tenants")
    assert result.returncode == 0, result.stdout + result.stderr
    stall.write_text(text)


def summary_rows(stdout: str) -> dict[str, list[str]]:
    """The summary table's rows by target (the error lines under it come later and are not rows)."""
    rows: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        words = line.split()
        if words and words[0] not in rows and len(words) >= 4 and words[1].startswith("db_"):
            rows[words[0]] = words
    return rows


def alembic_bin():
    from project import BIN  # lazy, as in the tests: collecting them does not import the product

    return BIN / "alembic"


def env_with(project, extra: dict) -> dict:
    return {k: v for k, v in {**project.env, **extra}.items() if v is not None}
