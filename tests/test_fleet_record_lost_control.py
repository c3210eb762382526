"""The rollout record when the control database goes away for good mid-rollout (its server stopped): the
tenants, on a server of their own, still finish; the run ends within the record's reconnect window and says
in one line that the record could not be written; once control is back the rollout reads as interrupted
and ``migrate --resume`` completes its record, applying nothing twice. A restart within the window is waited
out; a control database that refuses for good (a rotated password) is not waited for at all."""

from __future__ import annotations

import json
import secrets
import time

import pytest

import pg
from project import ScratchProject

from grapevine_alembic.fleet.record import _RECONNECT_S

NAP = "SELECT pg_sleep(0.25);\nCREATE TABLE napped (x int);\n"
HEAD = "20240101000000"
TENANTS = [f"c{i:02d}" for i in range(1, 13)]
CONNECT_TIMEOUT_S = 10  # RunOptions.connect_timeout_s: the longest one connection attempt of the record's waits
# The end of the run waits for control up to the record's reconnect window; a last connection attempt started
# within it may take its connect timeout; the rest of the tenants take a few seconds (0.25 s each, two at once).
BOUND_S = _RECONNECT_S + CONNECT_TIMEOUT_S + 10


@pytest.fixture
def control_server(tmp_path_factory, pg_server):
    yield from pg.own_server(tmp_path_factory, pg_server, "lost-control", "stops the control database's server")


@pytest.fixture
def fleet(tmp_path, control_server, pg_server, make_db):
    """A project whose control database is on a server of its own, its tenants on the session's server."""
    root = tmp_path / "proj"
    root.mkdir()
    controls = pg.DatabaseFactory(control_server)
    project = ScratchProject(root, control_server, controls)
    project.env["PG_TENANT_DATABASE_PORT"] = str(pg_server.port)
    project.migrate_control()
    for tenant_id in TENANTS:
        project.add_tenant(tenant_id, create_db=False)
        make_db(f"db_{tenant_id}")
    project.clear("tenant")
    project.write("tenant", f"{HEAD}_nap.sql", NAP)
    yield project
    if not control_server.is_running():
        control_server.start()
    controls.close()


def _at_head(pg_server) -> int:
    return sum(pg.version_on(pg_server, f"db_{t}") == HEAD for t in TENANTS)


def test_a_control_database_gone_for_good_mid_rollout_ends_in_bounded_time_and_resumes(fleet, control_server,
                                                                                        pg_server):
    run = fleet.spawn("migrate", "--all-tenants", "--max-parallel", "2", "--json")
    deadline = time.monotonic() + 60
    while _at_head(pg_server) < 2:  # the rollout is recorded and under way
        assert time.monotonic() < deadline and run.poll() is None, "the rollout never got under way"
        time.sleep(0.02)
    control_server.stop()
    stopped_at = time.monotonic()
    stdout, stderr = run.communicate(timeout=BOUND_S + 60)
    took = time.monotonic() - stopped_at
    assert took < BOUND_S, f"the run ended {took:.1f}s after control stopped"
    assert run.returncode == 0, stderr  # every tenant done: the run's exit code is the tenants'
    assert all(d["ok"] for d in json.loads(stdout)["databases"]), stdout
    assert _at_head(pg_server) == len(TENANTS)
    lines = stderr.splitlines()
    said = [line for line in lines if "the rollout record could not be brought up to date" in line]
    assert len(said) == 1 and "rollouts show 1" in said[0], stderr
    assert "Traceback" not in stderr and pg_server.password not in stdout + stderr
    control_server.start()
    listed = fleet.cli("rollouts", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [(r["id"], r["state"]) for r in json.loads(listed.stdout)["rollouts"]] == [(1, "interrupted")]
    resumed = fleet.cli("migrate", "--resume", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert all(d["applied"] == [] for d in json.loads(resumed.stdout)["databases"]), resumed.stdout
    shown = json.loads(fleet.cli("rollouts", "show", "1", "--json").stdout)["rollout"]
    assert shown["state"] == "done" and shown["tenants"] == {"done": len(TENANTS), "failed": 0, "pending": 0}
    for tenant_id in TENANTS:  # nothing applied twice
        assert pg.query(pg_server, f"db_{tenant_id}", "SELECT version FROM schema_migrations") == [(HEAD,)]


def test_a_control_server_restarting_at_the_end_of_a_run_is_waited_out_and_the_record_written(fleet, control_server,
                                                                                                pg_server):
    # connection refused is a restart: the end of the run waits for it (within the reconnect window), not a refusal
    run = fleet.spawn("migrate", "--all-tenants", "--max-parallel", "2", "--json")
    deadline = time.monotonic() + 60
    while _at_head(pg_server) < 2:
        assert time.monotonic() < deadline and run.poll() is None, "the rollout never got under way"
        time.sleep(0.02)
    control_server.stop()
    while _at_head(pg_server) < len(TENANTS):  # the tenants finish while control is away
        assert time.monotonic() < deadline and run.poll() is None, "the run ended before control came back"
        time.sleep(0.05)
    time.sleep(2)  # the end of the run is waiting for control now
    assert run.poll() is None, "the run did not wait for a restarting control server"
    control_server.start()
    stdout, stderr = run.communicate(timeout=_RECONNECT_S + 60)
    assert run.returncode == 0 and "could not be brought up to date" not in stderr, stderr
    shown = json.loads(fleet.cli("rollouts", "show", "1", "--json").stdout)["rollout"]
    assert shown["state"] == "done" and shown["tenants"] == {"done": len(TENANTS), "failed": 0, "pending": 0}

def test_a_control_database_that_refuses_for_good_ends_the_run_at_once_and_resumes(project, pg_server):
    # the control password rotated mid-run: control answers, but refuses every new connection of the run's role,
    # while the tenants (another login) go on; the end of the run does not wait 30 s for a refusal to pass
    role, first, rotated = f"ctl_{secrets.token_hex(4)}", secrets.token_hex(8), secrets.token_hex(8)
    pg.query(pg_server, None, f"CREATE ROLE {role} LOGIN PASSWORD '{first}'")
    try:
        pg.query(pg_server, None, f"ALTER DATABASE {project.control_db} OWNER TO {role}")
        control_url = f"postgresql://{role}:{first}@{pg_server.host}:{pg_server.port}/{project.control_db}"
        project.env.update(CONTROL_DATABASE_URL=control_url, PG_TENANT_DATABASE_ADMIN_USERNAME=pg_server.superuser,
                           PG_TENANT_DATABASE_ADMIN_PASSWORD=pg_server.password)
        project.migrate_control()
        for tenant_id in TENANTS:
            project.add_tenant(tenant_id)
        project.clear("tenant")
        project.write("tenant", f"{HEAD}_nap.sql", NAP)
        run = project.spawn("migrate", "--all-tenants", "--max-parallel", "2", "--json")
        deadline = time.monotonic() + 60
        while _at_head(pg_server) < 2:  # the rollout is recorded and under way
            assert time.monotonic() < deadline and run.poll() is None, "the rollout never got under way"
            time.sleep(0.02)
        refused_at = time.monotonic()
        pg.query(pg_server, None, f"ALTER ROLE {role} PASSWORD '{rotated}'")
        assert pg.query(pg_server, None, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE usename = %s", (role,)) == [(1,)]  # the record's own connection, and only it
        stdout, stderr = run.communicate(timeout=_RECONNECT_S + 60)
        took = time.monotonic() - refused_at
        assert took < _RECONNECT_S, f"the run ended {took:.1f}s after control refused for good"
        assert run.returncode == 0, stderr  # every tenant done: the run's exit code is the tenants'
        assert all(d["ok"] for d in json.loads(stdout)["databases"]), stdout
        assert _at_head(pg_server) == len(TENANTS)
        said = [line for line in stderr.splitlines() if "the rollout record could not be brought up to date" in line]
        assert len(said) == 1 and "rollouts show 1" in said[0], stderr
        assert "Traceback" not in stderr and not [s for s in (first, rotated, pg_server.password) if s in stdout + stderr]
        project.env["CONTROL_DATABASE_URL"] = control_url.replace(first, rotated)  # access restored
        listed = project.cli("rollouts", "--json")
        assert listed.returncode == 0, listed.stderr
        assert [(r["id"], r["state"]) for r in json.loads(listed.stdout)["rollouts"]] == [(1, "interrupted")]
        resumed = project.cli("migrate", "--resume", "--json")
        assert resumed.returncode == 0, resumed.stderr
        assert all(d["applied"] == [] for d in json.loads(resumed.stdout)["databases"]), resumed.stdout
        shown = json.loads(project.cli("rollouts", "show", "1", "--json").stdout)["rollout"]
        assert shown["state"] == "done" and shown["tenants"] == {"done": len(TENANTS), "failed": 0, "pending": 0}
        for tenant_id in TENANTS:  # nothing applied twice
            assert pg.query(pg_server, f"db_{tenant_id}", "SELECT version FROM schema_migrations") == [(HEAD,)]
    finally:
        pg.query(pg_server, None, f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'")
        pg.query(pg_server, None, f"ALTER DATABASE {project.control_db} OWNER TO {pg_server.superuser}")
        pg.query(pg_server, project.control_db, f"REASSIGN OWNED BY {role} TO {pg_server.superuser}")
        pg.query(pg_server, None, f"DROP ROLE {role}")
