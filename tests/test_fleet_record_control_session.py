"""The rollout record's control session. A rollout over tenants costs the control database one connection: the
record's, on which the tenants are read too (no second connection, with its authentication, before the first
tenant starts). Its commits do not wait for the WAL flush (see ``fleet/record._SESSION`` for why that is safe).

Counted by the server itself (``pg_stat_database.sessions``, flushed as each backend exits), on the scratch
project's own control database. Plain ``alembic`` takes its one tenant from ``-x tenant=`` and keeps no
rollout record, so the two ways in here are the CLI and the Python API."""

from __future__ import annotations

import time

import pytest

from grapevine_alembic.api import migrate_fleet
from grapevine_alembic.fleet.record import HALTED, Recorder
from grapevine_alembic.settings import load_project, parse_database_url

TENANTS = ("c01", "c02", "c03")


def _sessions(project) -> int:
    """Sessions ever opened to the control database, once none is open (each counts as its backend exits)."""
    deadline = time.monotonic() + 30
    while project.query(None, "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
                              " AND backend_type = 'client backend'", (project.control_db,))[0][0]:
        assert time.monotonic() < deadline, "a session to the control database stayed open"
        time.sleep(0.02)
    return project.query(None, "SELECT sessions FROM pg_stat_database WHERE datname = %s", (project.control_db,))[0][0]


def _run(project, road: str, *args: str) -> None:
    if road == "cli":
        result = project.cli("migrate", *args)
        assert result.returncode == 0, result.stdout + result.stderr
    else:
        tenants = list(args[1:]) if args[0] == "--tenant" else None
        url = project.env["CONTROL_DATABASE_URL"]
        assert migrate_fleet(project.root, control_url=url, control=False, tenants=tenants).ok


@pytest.mark.parametrize("road", ["cli", "api"])
@pytest.mark.parametrize("args", [("--all-tenants",), ("--tenant", "c02")])
def test_a_rollout_over_tenants_opens_one_connection_to_control(project, road, args):
    project.migrate_control()
    for tenant_id in TENANTS:
        project.add_tenant(tenant_id)
    _run(project, road, *args)  # the first run applies the chain: the one measured is the no-op that follows
    before = _sessions(project)
    _run(project, road, *args)
    assert _sessions(project) - before == 1
    assert project.control("SELECT count(*), bool_and(state = 'done') FROM grapevine_rollouts") == [(2, True)]


def _synchronous_commit(raw) -> str:
    with raw.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


def test_the_rollout_records_commits_do_not_wait_for_the_wal_flush(project):
    project.migrate_control()
    project.query(None, f'ALTER DATABASE "{project.control_db}" SET synchronous_commit = on')  # as production runs
    spec = parse_database_url(project.env["CONTROL_DATABASE_URL"])
    tables = load_project(project.root / "alembic.ini").tool_tables("control")
    started = Recorder.start(spec, tables, options={}, heads={}, command="grapevine-migrations migrate")
    assert _synchronous_commit(started.connection) == "off"
    started.close(HALTED, "a test")
    resumed = Recorder.resume(spec, tables, started.id)
    try:
        assert _synchronous_commit(resumed.connection) == "off"
        # committed without the flush, and visible to every other session at once (the refusal relies on it)
        assert project.control("SELECT id, state FROM grapevine_rollouts") == [(started.id, "running")]
        assert project.control("SHOW synchronous_commit") == [("on",)]  # the database's own setting, untouched
    finally:
        resumed.close(HALTED, "a test")
