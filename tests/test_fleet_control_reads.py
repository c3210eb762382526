"""Reading the control database (the tenants, a named tenant's row) never ends in a traceback: a server restarting
under the read is waited out and the read runs again; any other driver error is one line."""

from __future__ import annotations

import time

import pytest
from pg import connect

GATE = 4242  # an advisory lock the tenants query waits on, so the test restarts the server under that very read


def _gated_tenants_query(project) -> None:
    query = ("WITH gate AS (SELECT pg_advisory_lock_shared(4242)) SELECT id FROM tenants, gate"
             " WHERE state = 'provisioned' ORDER BY id")
    ini = project.root / "alembic.ini"
    ini.write_text(ini.read_text().replace("[grapevine]\n", f"[grapevine]\ntenants_query = {query}\n"))


# CLI only: plain `alembic` takes its one tenant from -x tenant= and reads no tenants from the control database
@pytest.mark.parametrize("command", [("migrate", "--all-tenants"), ("status", "--all-tenants")])
def test_server_restart_under_the_tenants_query_is_waited_out(project, pg_server, command):
    project.migrate_control()
    database = project.add_tenant("acme")
    if command[0] == "status":
        assert project.cli("migrate", "--tenant", "acme").returncode == 0
    _gated_tenants_query(project)
    holder = connect(pg_server, project.control_db)
    with holder.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", (GATE,))
    proc = project.spawn(*command)
    deadline = time.monotonic() + 60
    while not project.query(project.control_db, "SELECT 1 FROM pg_locks WHERE locktype = 'advisory'"
                                                " AND objid = %s AND NOT granted", (GATE,)):
        assert time.monotonic() < deadline and proc.poll() is None, "the tenants query never waited on the gate"
        time.sleep(0.05)
    pg_server.restart()  # ends the holder's session too: the gate opens once the server is back
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stdout + stderr
    assert "Traceback" not in stderr
    head = max(path.name[:14] for path in project.migrations("tenant").glob("[0-9]*_*.sql"))
    assert project.version(database) == head


def test_failed_read_of_a_named_tenants_row_is_one_line(project):
    # a tenants table of its own shape: the tenants query fits it, the read of a tenant it does not list fails
    project.migrate_control()
    project.add_tenant("acme")
    project.control("ALTER TABLE tenants RENAME COLUMN state TO status")
    ini = project.root / "alembic.ini"
    ini.write_text(ini.read_text().replace(
        "[grapevine]\n", "[grapevine]\ntenants_query = SELECT id FROM tenants WHERE status = 'ready'\n"))
    result = project.cli("status", "--tenant", "acme")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output
    assert 'column "state" does not exist' in output, output
