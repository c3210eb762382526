"""The rollout record on a control connection that goes silent mid-run (a proxy that stops forwarding but
keeps every socket open): the record's writes never hold up the tenants, and the record catches up at the
end once the control database answers again; if it never does, the server's end of the record's session
(a lease) does not outlive the run, so the rollout reads as interrupted and resumes."""

from __future__ import annotations

import json
import time

from test_fleet_silent_network import proxy  # noqa: F401 - the fixture: a FaultProxy to the session server

NAP = "SELECT pg_sleep(0.25);\nCREATE TABLE napped (x int);\n"
HEAD = "20240101000000"
TENANTS = [f"q{i:02d}" for i in range(1, 17)]
# Without the stall the tenants take about 16 x 0.25 s / 2 = 2 s; a record write that waits for the silent
# connection holds them up for the watchdog's silence (20 s), and each reconnect for connect_timeout (10 s).
BOUND_S = 8.0


def _at_head(project) -> int:
    return sum(project.version(f"db_{t}") == HEAD for t in TENANTS)


def _wait(condition, timeout: float = 60) -> float:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return time.monotonic()


def _control_through_proxy(project, proxy, pg_server) -> dict:
    """The fleet of ``TENANTS`` with a napping file; the environment that reaches control through the proxy
    (the tenants directly)."""
    project.migrate_control()
    for tenant_id in TENANTS:
        project.add_tenant(tenant_id)
    project.clear("tenant")
    project.write("tenant", f"{HEAD}_nap.sql", NAP)
    direct = project.env["CONTROL_DATABASE_URL"]
    through_proxy = {"CONTROL_DATABASE_URL": direct.replace(f":{pg_server.port}/", f":{proxy.port}/"),
                     "PG_TENANT_DATABASE_PORT": str(pg_server.port)}
    assert through_proxy["CONTROL_DATABASE_URL"] != direct
    return through_proxy


def test_a_silent_control_connection_never_holds_up_the_tenants_and_the_record_catches_up(project, proxy, pg_server):
    through_proxy = _control_through_proxy(project, proxy, pg_server)
    run = project.spawn("migrate", "--all-tenants", "--max-parallel", "2", "--json", env=through_proxy)
    _wait(lambda: _at_head(project) >= 2)  # the record's connection is open and has results to write
    stalled_at = proxy.stall()
    done_at = _wait(lambda: _at_head(project) == len(TENANTS))
    took = done_at - stalled_at
    proxy.resume()  # the control database answers again: the record catches up at the end
    assert run.wait(timeout=90) == 0, run.stderr.read()
    assert took < BOUND_S, f"the tenants took {took:.1f}s after the stall"
    assert all(d["ok"] for d in json.loads(run.stdout.read())["databases"])
    shown = project.cli("rollouts", "show", "1", "--json")
    assert shown.returncode == 0, shown.stderr
    rollout = json.loads(shown.stdout)["rollout"]
    assert rollout["state"] == "done" and rollout["tenants"] == {"done": len(TENANTS), "failed": 0, "pending": 0}


def test_a_control_connection_silent_for_good_reads_as_interrupted_once_the_run_is_over(project, proxy, pg_server):
    """The proxy never forwards again, yet keeps the record's socket open: the server's end of the record's
    session, which holds the rollout's lock, must not outlive the run (a lost node leaves the same), so that
    ``rollouts`` (from elsewhere) says interrupted and ``--resume`` completes it."""
    silent = 3  # GRAPEVINE_SILENCE_TIMEOUT: the server ends a silent record session 10 s after it
    run = project.spawn("migrate", "--all-tenants", "--max-parallel", "2", "--json", env={
        **_control_through_proxy(project, proxy, pg_server), "GRAPEVINE_SILENCE_TIMEOUT": str(silent)})
    _wait(lambda: _at_head(project) >= 2)
    stalled_at = proxy.stall()  # and never resumed
    stdout, stderr = run.communicate(timeout=120)
    assert run.returncode == 0, stderr
    assert "the rollout record could not be brought up to date" in stderr and "Traceback" not in stderr
    assert all(d["ok"] for d in json.loads(stdout)["databases"])
    _wait(lambda: time.monotonic() - stalled_at > silent + 10 + 5)  # the session's lease, and some slack
    listed = project.cli("rollouts", "--json")
    assert [r["state"] for r in json.loads(listed.stdout)["rollouts"]] == ["interrupted"], listed.stdout
    resumed = project.cli("migrate", "--resume", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert all(d["applied"] == [] for d in json.loads(resumed.stdout)["databases"])
    assert all(project.ledger(f"db_{t}") == [(HEAD, "migrate")] for t in TENANTS)
