"""A connection refused for want of a slot (SQLSTATE 53300) is waited for within ``--retry-window``.

The slots are really taken: real connections of a login role with ``CONNECTION LIMIT 1``, of a
database with ``CONNECTION LIMIT 1``, and, on a server of the test's own with few slots, every slot
but the superusers' reserved ones.  They are released after a delay (the run then succeeds) or
held past the window (the run fails with one line).
"""

from __future__ import annotations

import secrets
import threading
import time

import psycopg2
import pytest

import pg
from project import ScratchProject

FEW_SLOTS = {"max_connections": "8", "superuser_reserved_connections": "3", "reserved_connections": "0"}
CASES = {
    # case: (the refusal's text, how many connections of the role take every slot it may have)
    "role": ('too many connections for role "{role}"', 1),
    "database": ('too many connections for database "{database}"', 1),
    "reserved": ("remaining connection slots are reserved for roles with the SUPERUSER attribute", 5),
}


@pytest.fixture(scope="module")
def few_slots_server(tmp_path_factory, pg_server):
    yield from pg.own_server(tmp_path_factory, pg_server, "pg-few-slots", "needs a server with 8 connection slots",
                             settings=FEW_SLOTS)


@pytest.fixture(params=sorted(CASES))
def limited(request, tmp_path, pg_server):
    """(project, env for the tenant's login, case, holder): ``holder()`` takes every slot the tenant's login may use."""
    case = request.param
    server = request.getfixturevalue("few_slots_server") if case == "reserved" else pg_server
    factory = pg.DatabaseFactory(server)
    root = tmp_path / "proj"
    root.mkdir()
    project = ScratchProject(root, server, factory)
    project.migrate_control()
    role, password = f"slots_{secrets.token_hex(4)}", secrets.token_hex(12)
    limit = "CONNECTION LIMIT 1" if case == "role" else ""
    project.query("postgres", f"CREATE ROLE {role} LOGIN PASSWORD '{password}' {limit}")
    project.add_tenant("acme", create_db=False)
    project.query("postgres", f"CREATE DATABASE db_acme OWNER {role}"
                  + (" CONNECTION LIMIT 1" if case == "database" else ""))
    factory.created.append("db_acme")
    env = {"PG_TENANT_DATABASE_ADMIN_USERNAME": role, "PG_TENANT_DATABASE_ADMIN_PASSWORD": password}
    held: list = []

    def holder() -> list:
        for _ in range(CASES[case][1]):
            held.append(psycopg2.connect(host=server.host, port=server.port, user=role, password=password,
                                         dbname="db_acme"))
        return held

    yield project, env, case, role, holder
    for connection in held:
        connection.close()
    factory.close()
    pg.query(server, None, f"DROP ROLE {role}")


def _refusal(case: str, role: str) -> str:
    return CASES[case][0].format(role=role, database="db_acme")


def test_a_connection_refused_for_want_of_a_slot_is_retried_until_one_frees(limited):
    project, env, case, role, holder = limited
    held = holder()
    child = project.spawn("migrate", "--tenant", "acme", "--retry-window", "30", env=env)
    try:
        retry_line = child.stderr.readline()  # the slots are released once the run was refused and waits
        for connection in held:
            connection.close()
        stdout, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert "retrying in" in retry_line and _refusal(case, role) in retry_line, retry_line + stderr
    assert child.returncode == 0, stdout + stderr
    assert project.version("db_acme") == "20250201080000"


def test_slots_taken_past_the_retry_window_fail_with_one_line(limited):
    project, env, case, role, holder = limited
    holder()
    started = time.monotonic()
    result = project.cli("migrate", "--tenant", "acme", "--retry-window", "3", env=env)
    took = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    assert _refusal(case, role) in result.stdout, output
    assert took >= 3, f"gave up after {took:.1f}s, inside the 3 s window"
    assert took < 30, f"{took:.1f}s for a 3 s window"
    assert project.version("db_acme") is None


# GRAPEVINE_SILENCE_TIMEOUT=4: the watchdog asks about a round trip once it has waited 1 s
QUICK_WATCHDOG = {"GRAPEVINE_SILENCE_TIMEOUT": "4"}
SLOW = ("20250101000000_slow.sql", "SELECT pg_sleep(2.5);\n")
# counts the watchdog's sessions on this database for up to 0.7 s (below the 1 s that gets it asked about)
COUNT_WATCHDOGS = ("20250102000000_count.sql", """\
CREATE TABLE watchdog_sessions AS SELECT -1::bigint AS n;
DO $$
DECLARE deadline timestamptz := clock_timestamp() + interval '0.7 s';
BEGIN
  LOOP
    PERFORM pg_stat_clear_snapshot();
    UPDATE watchdog_sessions SET n = (SELECT count(*) FROM pg_stat_activity
      WHERE application_name = 'grapevine-migrations watchdog' AND datname = current_database());
    EXIT WHEN (SELECT n FROM watchdog_sessions) = 0 OR clock_timestamp() > deadline;
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
""")


def test_the_watchdog_holds_no_connection_slot_once_the_slow_statement_ended(project):
    database = project.tenant_chain(dict([SLOW, COUNT_WATCHDOGS]))
    child = project.spawn("migrate", "--tenant", "acme", env=QUICK_WATCHDOG)
    try:
        deadline = time.monotonic() + 30
        while not project.query("postgres", "SELECT 1 FROM pg_stat_activity WHERE datname = %s AND application_name"
                                " = 'grapevine-migrations watchdog'", (database,)):
            assert child.poll() is None and time.monotonic() < deadline, "the watchdog never asked about pg_sleep"
            time.sleep(0.05)
        stdout, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, stdout + stderr
    assert project.query(database, "SELECT n FROM watchdog_sessions") == [(0,)], "the watchdog kept its connection"


def test_a_role_with_no_slot_to_spare_for_the_watchdog_runs_a_slow_file(project):
    """CONNECTION LIMIT 1: the run's own connection takes the role's only slot; the probe is refused."""
    role, password = f"slots_{secrets.token_hex(4)}", secrets.token_hex(12)
    project.query("postgres", f"CREATE ROLE {role} LOGIN PASSWORD '{password}' CONNECTION LIMIT 1")
    try:
        project.migrate_control()
        project.clear("tenant")
        project.write("tenant", *SLOW)
        project.add_tenant("acme", create_db=False)
        project.query("postgres", f"CREATE DATABASE db_acme OWNER {role}")
        project.make_db.created.append("db_acme")
        env = {**QUICK_WATCHDOG, "PG_TENANT_DATABASE_ADMIN_USERNAME": role, "PG_TENANT_DATABASE_ADMIN_PASSWORD": password}
        result = project.cli("migrate", "--tenant", "acme", env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert project.version("db_acme") == "20250101000000"
    finally:
        pg.drop_database(project.server, "db_acme")
        project.query("postgres", f"DROP ROLE {role}")
