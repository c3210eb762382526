"""A tenant server that restarts mid-run (a fail-over) is waited out: the run completes, exit 0.

The tenants live on an embedded PostgreSQL of this module's own (the session's server keeps the
control database and every other test's databases); the test stops it during
``migrate --all-tenants`` for 5 s and for 12 s, then starts it again.  Default options: the
retry window (60 s) is what carries the run over the outage, not a count of quick attempts.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

import pg

FILES = 6
CHAIN = {"20240101000000_runs.sql": "CREATE TABLE runs (file text);\n"}
CHAIN.update({
    f"2024010{i + 1}000000_step{i}.sql": f"BEGIN;\nSELECT pg_sleep(0.3);\nINSERT INTO runs VALUES ('step{i}');\nCOMMIT;\n"
    for i in range(1, FILES)
})
HEAD = max(name.split("_")[0] for name in CHAIN)


@pytest.fixture(scope="module")
def tenant_server(tmp_path_factory, pg_server):
    """An embedded PostgreSQL for the tenants only, with the suite's superuser and password."""
    yield from pg.own_server(tmp_path_factory, pg_server, "restarting", "stops and starts a server of its own")


@pytest.fixture
def tenants(project, tenant_server):
    project.migrate_control()
    project.clear("tenant")
    for name, sql in CHAIN.items():
        project.write("tenant", name, sql)
    ids = [f"r{i}" for i in range(1, 7)]
    for tenant in ids:
        project.add_tenant(tenant, create_db=False)
        pg.create_database(tenant_server, f"db_{tenant}")
    yield ids
    if not tenant_server.is_running():
        tenant_server.start()
    for tenant in ids:
        pg.drop_database(tenant_server, f"db_{tenant}")


def _version(server, tenant: str) -> str | None:
    return pg.version_on(server, f"db_{tenant}")


# 5 s already outlasts --retries' quick attempts (3 backoffs, about 2 s); 12 s outlasts the backoff's
# 5 s cap twice over, so the run waits through several capped waits, carried by the window alone.
@pytest.mark.parametrize("outage_s", [5, 12])
def test_run_completes_over_a_server_restart(project, tenants, tenant_server, outage_s, tally):
    env = {"PG_TENANT_DATABASE_PORT": str(tenant_server.port)}
    log: dict = {}
    outage = threading.Thread(target=pg.outage, args=(tenant_server, f"db_{tenants[0]}", outage_s, log))
    proc = project.spawn("migrate", "--all-tenants", "--max-parallel", "2", "--json", env=env)
    outage.start()
    try:
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        outage.join(timeout=120)
        if proc.poll() is None:
            proc.kill()
    tally("faults injected")
    assert "stopped" in log and "started" in log, log
    assert proc.returncode == 0, stdout + stderr
    doc = json.loads(stdout)
    assert all(d["ok"] for d in doc["databases"]), stdout
    assert any(d["attempts"] > 1 for d in doc["databases"]), stdout  # the outage was met, and waited out
    for tenant in tenants:
        tally("databases checked")
        assert _version(tenant_server, tenant) == HEAD
        runs = pg.query(tenant_server, f"db_{tenant}", "SELECT file, count(*) FROM runs GROUP BY file ORDER BY file")
        assert runs == [(f"step{i}", 1) for i in range(1, FILES)], runs  # each file exactly once


def _down_until(server, database: str, ended: threading.Event, log: dict, cap_s: float = 90) -> None:
    """Like ``pg.outage``, but the server stays down until ``ended`` is set (or ``cap_s``): it does not come back."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the run has seen the server answer: its refusal reads as a restart
        try:
            if pg.version_on(server, database):
                break
        except Exception:  # noqa: BLE001 - its database may be busy being created
            pass
        time.sleep(0.05)
    server.stop()
    log["stopped"] = time.monotonic()
    ended.wait(cap_s)
    server.start()


def test_a_server_refusing_past_the_window_fails_its_tenants(project, tenants, tenant_server):
    """The window is a bound: a server that does not come back fails the run (breaker tripped)."""
    env = {"PG_TENANT_DATABASE_PORT": str(tenant_server.port)}
    log: dict = {}
    ended = threading.Event()
    outage = threading.Thread(target=_down_until, args=(tenant_server, f"db_{tenants[0]}", ended, log))
    proc = project.spawn("migrate", "--all-tenants", "--max-parallel", "2", "--retry-window", "3", "--json", env=env)
    outage.start()
    try:
        stdout, stderr = proc.communicate(timeout=120)
        ended_at = time.monotonic()
    finally:
        ended.set()  # the server comes back only once the run has given up
        outage.join(timeout=120)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, stdout + stderr
    assert ended_at - log["stopped"] < 25, (ended_at - log["stopped"], stderr)  # gave up after about 3 s, not 60
    doc = json.loads(stdout)
    failed = [d for d in doc["databases"] if not d["ok"]]
    assert failed and any("refused" in (d["error"] or "") or "unreachable" in (d["error"] or "") for d in failed)
