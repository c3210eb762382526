"""The rollout record when the control database goes away for good mid-rollout (its server stopped): the
tenants, on a server of their own, still finish; the run ends within the record's reconnect window and says
in one line that the record could not be written; once control is back the rollout reads as interrupted
and ``migrate --resume`` completes its record, applying nothing twice. A restart within the window is waited
out; a control database that refuses for good (a rotated password) is not waited for at all."""

from __future__ import annotations

import json
import secrets
import threading
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


def _once_under_way(pg_server, running) -> None:
    deadline = time.monotonic() + 60
    while _at_head(pg_server) < 2:  # the rollout is recorded and under way
        assert time.monotonic() < deadline and running(), "the rollout never got under way"
        time.sleep(0.02)


def _ended_with_the_record_behind(run, since: float, bound_s: float, pg_server, secrets) -> None:
    """The CLI's run ended within ``bound_s`` of ``since``, every tenant done, one line saying the record is behind."""
    stdout, stderr = run.communicate(timeout=bound_s + 60)
    took = time.monotonic() - since
    assert took < bound_s, f"the run ended {took:.1f}s after control went away"
    assert run.returncode == 0, stderr  # every tenant done: the run's exit code is the tenants'
    assert all(d["ok"] for d in json.loads(stdout)["databases"]), stdout
    assert _at_head(pg_server) == len(TENANTS)
    said = [line for line in stderr.splitlines() if "the rollout record could not be brought up to date" in line]
    assert len(said) == 1 and "rollouts show 1" in said[0], stderr
    assert "Traceback" not in stderr and not [s for s in secrets if s in stdout + stderr]


def test_a_control_database_gone_for_good_mid_rollout_ends_in_bounded_time_and_resumes(fleet, control_server,
                                                                                        pg_server):
    run = fleet.spawn("migrate", "--all-tenants", "--max-parallel", "2", "--json")
    _once_under_way(pg_server, lambda: run.poll() is None)
    control_server.stop()
    _ended_with_the_record_behind(run, time.monotonic(), BOUND_S, pg_server, (pg_server.password,))
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
    _once_under_way(pg_server, lambda: run.poll() is None)
    control_server.stop()
    deadline = time.monotonic() + 60
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

class Rotating:
    """A project whose control database is reached as a login of its own (the tenants as the superuser), whose
    password ``rotate()`` changes while ending its sessions: control answers, and refuses the run for good."""

    def __init__(self, project, pg_server):
        self.project, self.server = project, pg_server
        self.role, self.first, self.rotated = f"ctl_{secrets.token_hex(4)}", secrets.token_hex(8), secrets.token_hex(8)
        self.url = f"postgresql://{self.role}:{self.first}@{pg_server.host}:{pg_server.port}/{project.control_db}"
        self.secrets = (self.first, self.rotated, pg_server.password)

    def set_up(self) -> None:
        pg.query(self.server, None, f"CREATE ROLE {self.role} LOGIN PASSWORD '{self.first}'")
        pg.query(self.server, None, f"ALTER DATABASE {self.project.control_db} OWNER TO {self.role}")
        self.project.env.update(CONTROL_DATABASE_URL=self.url, **self.tenant_login)
        self.project.migrate_control()
        for tenant_id in TENANTS:
            self.project.add_tenant(tenant_id)
        self.project.clear("tenant")
        self.project.write("tenant", f"{HEAD}_nap.sql", NAP)

    @property
    def tenant_login(self) -> dict:
        return {"PG_TENANT_DATABASE_ADMIN_USERNAME": self.server.superuser,
                "PG_TENANT_DATABASE_ADMIN_PASSWORD": self.server.password}

    def rotate_once_under_way(self, running) -> float:
        """Once two tenants are at head, the password rotated and the record's session ended: when."""
        _once_under_way(self.server, running)
        at = time.monotonic()
        pg.query(self.server, None, f"ALTER ROLE {self.role} PASSWORD '{self.rotated}'")
        assert pg.query(self.server, None, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE usename = %s", (self.role,)) == [(1,)]  # the record's own connection, and only it
        return at

    def resumes_once_restored(self) -> None:
        """With the new password, the rollout reads interrupted and its resume completes it, nothing twice."""
        self.project.env["CONTROL_DATABASE_URL"] = self.url.replace(self.first, self.rotated)
        listed = self.project.cli("rollouts", "--json")
        assert listed.returncode == 0, listed.stderr
        assert [(r["id"], r["state"]) for r in json.loads(listed.stdout)["rollouts"]] == [(1, "interrupted")]
        resumed = self.project.cli("migrate", "--resume", "--json")
        assert resumed.returncode == 0, resumed.stderr
        assert all(d["applied"] == [] for d in json.loads(resumed.stdout)["databases"]), resumed.stdout
        shown = json.loads(self.project.cli("rollouts", "show", "1", "--json").stdout)["rollout"]
        assert shown["state"] == "done" and shown["tenants"] == {"done": len(TENANTS), "failed": 0, "pending": 0}
        for tenant_id in TENANTS:  # nothing applied twice
            assert pg.query(self.server, f"db_{tenant_id}", "SELECT version FROM schema_migrations") == [(HEAD,)]

    def tear_down(self) -> None:
        pg.query(self.server, None, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                 (self.role,))
        pg.query(self.server, None, f"ALTER DATABASE {self.project.control_db} OWNER TO {self.server.superuser}")
        pg.query(self.server, self.project.control_db, f"REASSIGN OWNED BY {self.role} TO {self.server.superuser}")
        pg.query(self.server, None, f"DROP ROLE {self.role}")


@pytest.fixture
def rotating(project, pg_server):
    fleet = Rotating(project, pg_server)
    try:
        fleet.set_up()
        yield fleet
    finally:
        fleet.tear_down()


def test_a_control_database_that_refuses_for_good_ends_the_run_at_once_and_resumes(rotating, pg_server):
    # the control password rotated mid-run: control answers, but refuses every new connection of the run's login,
    # while the tenants (another login) go on; the end of the run does not wait 30 s for a refusal to pass
    run = rotating.project.spawn("migrate", "--all-tenants", "--max-parallel", "2", "--json")
    refused_at = rotating.rotate_once_under_way(lambda: run.poll() is None)
    _ended_with_the_record_behind(run, refused_at, _RECONNECT_S, pg_server, rotating.secrets)
    rotating.resumes_once_restored()


def test_the_api_ends_at_once_too_when_control_refuses_for_good(rotating, pg_server, monkeypatch, caplog):
    from grapevine_alembic.api import migrate_fleet

    for name, value in rotating.tenant_login.items():  # the API reads the tenant server from the environment
        monkeypatch.setenv(name, value)
    done = {}
    run = threading.Thread(target=lambda: done.update(result=migrate_fleet(
        rotating.project.root, control_url=rotating.url, control=False, max_parallel=2)))
    run.start()
    refused_at = rotating.rotate_once_under_way(run.is_alive)
    run.join(timeout=_RECONNECT_S + 60)
    took = time.monotonic() - refused_at
    assert took < _RECONNECT_S, f"the rollout ended {took:.1f}s after control refused for good"
    result = done["result"]
    assert result.ok and result.rollout == 1 and _at_head(pg_server) == len(TENANTS)
    warned = [r.getMessage() for r in caplog.records if "could not be brought up to date" in r.getMessage()]
    assert len(warned) == 1 and not [s for s in rotating.secrets if s in warned[0]], caplog.text
    rotating.resumes_once_restored()
