"""A server that stops answering mid-file: bounded waiting, locks released, the other tenants carry on.

One tenant is reached through ``faultproxy.FaultProxy`` (its ``server`` in the tenants table),
the others directly.  Two seconds into the tenant's file the proxy stops forwarding but keeps
every socket open, the way a hung pooler or load balancer does: TCP sees nothing wrong, so
only the tool's watchdog and the server's idle-in-transaction bound can end the wait.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
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
BOUND_S = 60  # the bound, with the default options, for both the failure and the lock release


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


def _start_at_base(project) -> None:
    # apply only the base file first: move the stalling file away and back
    stall = project.migrations("tenant") / "20240102000000_stall.sql"
    text = stall.read_text()
    stall.unlink()
    result = project.cli("migrate", "--all-tenants")
    assert result.returncode == 0, result.stdout + result.stderr
    stall.write_text(text)


def _summary_rows(stdout: str) -> dict[str, list[str]]:
    """The summary table's rows by target (the error lines under it come later and are not rows)."""
    rows: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        words = line.split()
        if words and words[0] not in rows and len(words) >= 4 and words[1].startswith("db_"):
            rows[words[0]] = words
    return rows


def test_stalled_tenant_fails_in_bounded_time_and_releases_its_locks(project, proxy, pg_server):
    """Default options: the issue's case, end to end."""
    setup = StallSetup(project, proxy)
    _start_at_base(project)
    run = StallRun(project.spawn("migrate", "--all-tenants"), setup, pg_server, timeout=180)
    stdout, stderr, stalled_at, ended_at, reader = run.stdout, run.stderr, run.stalled_at, run.ended_at, run.reader
    assert run.returncode == 1, stdout + stderr
    print(f"stall to exit {ended_at - stalled_at:.1f}s, to lock release {(reader.done_at or 0) - stalled_at:.1f}s")
    assert ended_at - stalled_at < BOUND_S, (ended_at - stalled_at, stderr)
    assert reader.error is None and reader.done_at is not None, reader.error
    assert reader.done_at - stalled_at < BOUND_S, reader.done_at - stalled_at
    rows = _summary_rows(stdout)
    assert rows["s1"][-1] == "FAILED", stdout
    for tenant in setup.healthy:
        assert rows[tenant][-1] == "ok" and project.version(f"db_{tenant}") == HEAD, stdout
    assert "the server stopped answering" in stderr + stdout, stderr  # said when it happened
    assert project.version("db_s1") == BASE and setup.columns() == {"id"}  # nothing half-applied


def test_an_answer_lost_on_a_reachable_server_ends_the_session_and_is_retried(project, proxy, pg_server):
    """Default options: only the open connection hangs (new ones get through), so the watchdog sees
    the backend idle in transaction, ends it at once (its locks go long before the server's own
    30 s bound) and the retry applies the file."""
    setup = StallSetup(project, proxy, healthy=1)
    _start_at_base(project)
    run = StallRun(project.spawn("migrate", "--all-tenants"), setup, pg_server, new_connections=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "the server finished the statement and waits for us" in run.stderr, run.stderr  # the retry's line
    done_at = run.reader.done_at
    assert done_at is not None and done_at - run.stalled_at < 20, (run.reader.error, done_at)
    assert project.version("db_s1") == HEAD and setup.columns() == {"id", "x", "y"}


SIGNAL_BOUND_S = 10


@pytest.mark.parametrize("signals", [(signal.SIGTERM,), (signal.SIGINT, signal.SIGINT)], ids=["SIGTERM", "Ctrl-C twice"])
def test_signal_during_a_stall_ends_the_process_within_ten_seconds(project, proxy, signals):
    """Default options: the watchdog alone would wait 20 s; the signal may not take longer than 10 s."""
    setup = StallSetup(project, proxy)
    _start_at_base(project)
    proc = project.spawn("migrate", "--all-tenants", "--json")
    try:
        setup.stall_when_sleeping()
        time.sleep(1.0)
        signalled_at = time.monotonic()
        for number, signum in enumerate(signals):
            if number:
                time.sleep(0.5)
            proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=60)
        ended_at = time.monotonic()
    finally:
        if proc.poll() is None:
            proc.kill()
    print(f"signal to exit {ended_at - signalled_at:.1f}s")
    assert ended_at - signalled_at < SIGNAL_BOUND_S, (ended_at - signalled_at, stderr)
    assert proc.returncode == 130, stderr
    doc = json.loads(stdout)  # the summary, as one document
    assert doc["interrupted"] is True
    by_tenant = {d["tenant"]: d for d in doc["databases"] if d.get("tenant")}
    assert by_tenant["s1"]["ok"] is False and by_tenant["s1"]["error"]
    assert "not starting any more databases" in stderr
    assert project.version("db_s1") == BASE


def test_a_long_statement_through_a_healthy_proxy_is_never_cut(project, proxy):
    """Default options: pg_sleep(20) runs its 20 s although the watchdog probes it from the fifth second."""
    long_chain = {**CHAIN, "20240102000000_stall.sql": "ALTER TABLE a ADD COLUMN x int;\nSELECT pg_sleep(20);\n"}
    setup = StallSetup(project, proxy, chain=long_chain, healthy=1)
    _start_at_base(project)
    started = time.monotonic()
    result = project.cli("migrate", "--all-tenants", timeout=180)
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert seconds >= 20 and "stopped answering" not in result.stdout + result.stderr
    assert project.version("db_s1") == HEAD and setup.columns() == {"id", "x"}
    watchdog_probes = project.query(
        "postgres", "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'grapevine-migrations watchdog'")
    assert watchdog_probes == [(0,)]  # the watchdog's connection ends with the run


SMALL_BOUNDS = {"GRAPEVINE_SILENCE_TIMEOUT": "4"}  # probe after 1 s, lost after 4 s, server side after 14 s
SMALL_BOUND_S = 40


def test_alembic_road_fails_a_stalled_database_in_bounded_time(project, proxy, pg_server):
    setup = StallSetup(project, proxy, healthy=0)
    _start_at_base(project)
    proc = subprocess.Popen(
        [str(pg_bin("alembic")), "-c", "alembic.ini", "-n", "tenant", "-x", "tenant=s1", "-x", f"server={proxy.label}",
         "upgrade", "head"],
        cwd=project.root, env=_env(project, SMALL_BOUNDS), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = StallRun(proc, setup, pg_server)
    assert run.returncode != 0 and run.seconds < SMALL_BOUND_S, (run.seconds, run.stderr)
    assert "the server stopped answering" in run.stderr and "Traceback" not in run.stderr, run.stderr
    done_at = run.reader.done_at
    assert done_at is not None and done_at - run.stalled_at < SMALL_BOUND_S, run.reader.error
    assert project.version("db_s1") == BASE and setup.columns() == {"id"}


API_PROGRAM = textwrap.dedent(
    """
    import json, logging, sys
    from grapevine_alembic.api import migrate_database

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)  # a service's logging: the retries show

    result = migrate_database(sys.argv[1], sys.argv[2])  # bounds from GRAPEVINE_SILENCE_TIMEOUT
    print(json.dumps({"ok": result.ok, "error": result.error, "version": result.version}))
    """
)


def test_api_fails_a_stalled_database_in_bounded_time(project, proxy, pg_server):
    setup = StallSetup(project, proxy, healthy=0)
    _start_at_base(project)
    url = pg.url_for(pg_server, "db_s1").replace(f":{pg_server.port}/", f":{proxy.port}/")
    proc = subprocess.Popen([sys.executable, "-c", API_PROGRAM, url, str(project.migrations("tenant"))],
                            cwd=project.root, env=_env(project, SMALL_BOUNDS), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        stalled_at = setup.stall_when_sleeping()
        stdout, stderr = proc.communicate(timeout=120)
        ended_at = time.monotonic()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    result = json.loads(stdout)
    assert result["ok"] is False and result["version"] == BASE, result
    assert ended_at - stalled_at < SMALL_BOUND_S, ended_at - stalled_at
    assert "the server stopped answering" in stderr, stderr  # the retry, logged


def pg_bin(name: str):
    from project import BIN

    return BIN / name


def _env(project, extra: dict) -> dict:
    return {k: v for k, v in {**project.env, **extra}.items() if v is not None}


@pytest.mark.parametrize("value", ["0", "-1", "soon", "inf"])
def test_a_bad_silence_timeout_is_one_usage_error(project, value):
    project.migrate_control()
    result = project.cli("migrate", "--all-tenants", env={"GRAPEVINE_SILENCE_TIMEOUT": value})
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"error: GRAPEVINE_SILENCE_TIMEOUT must be a number of seconds greater than 0, not {value!r}"]
