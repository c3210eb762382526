"""The rollout record and resume, through the CLI against real PostgreSQL: a halted rollout resumes where it
stopped (nothing applied twice), ``--resume`` alone takes the latest rollout not done, a SIGKILLed rollout
reads as interrupted and resumes, and a second rollout over the same tenants refuses, naming the first."""

from __future__ import annotations

import json
import re
import signal
import time
from contextlib import contextmanager

from pg import connect
from test_cli_rollout_waves import STAMPED, _fleet

HEAD = "20240101000000"
GATE = 4242
# Where a marker table exists the file waits for an advisory lock the test holds: one tenant held mid-file
# (a slow file) for exactly as long as the test needs, however loaded the machine.
SLOW = ("BEGIN;\nDO $$ BEGIN IF to_regclass('public.slow_here') IS NOT NULL THEN"
        f" PERFORM pg_advisory_xact_lock({GATE}); END IF; END $$;\n" + STAMPED.split("\n", 1)[1])


@contextmanager
def _gate(project, tenant_id: str):
    """Hold the slow file of ``tenant_id`` until the block ends."""
    project.write("tenant", "20240101000000_stamp.sql", SLOW)
    project.query(f"db_{tenant_id}", "CREATE TABLE slow_here ()")
    raw = connect(project.server, f"db_{tenant_id}")
    raw.autocommit = True
    try:
        raw.cursor().execute("SELECT pg_advisory_lock(%s)", (GATE,))
        yield
    finally:
        raw.close()


def _rollouts(project) -> list[dict]:
    result = project.cli("rollouts", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["rollouts"]


def _show(project, rollout_id: int) -> dict:
    result = project.cli("rollouts", "show", str(rollout_id), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["rollout"]


def _outcomes(rollout: dict) -> dict[str, tuple]:
    return {d["tenant"]: (d["wave"], d["outcome"], d["attempts"]) for d in rollout["databases"]}


def _resume_id(stderr: str) -> int:
    found = re.search(r"^resume: grapevine-migrations migrate --resume (\d+)$", stderr, re.M)
    assert found, stderr
    return int(found.group(1))


def _ledger_once(project, ids) -> None:
    for tenant_id in ids:  # nothing applied twice
        assert [v for v, _ in project.ledger(f"db_{tenant_id}")] == [HEAD], tenant_id


def _wait_for_gate(project, tenant_id: str, timeout: float = 30, query: str = "%slow_here%") -> None:
    """Until a statement like ``query`` waits for a lock in ``tenant_id``'s database (the test holds it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if project.query("postgres", "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
                         " AND wait_event_type = 'Lock' AND query LIKE %s", (f"db_{tenant_id}", query))[0][0]:
            return
        time.sleep(0.05)
    raise AssertionError(f"db_{tenant_id} never waited on {query}")


def test_a_halted_rollout_is_recorded_and_resumes_where_it_stopped(project):
    ids = _fleet(project, 6, failing=("w04",))
    first = project.cli("migrate", "--all-tenants", "--waves", "2,2,rest", "--max-failures", "1",
                        "--max-parallel", "1")
    assert first.returncode == 1
    rollout_id = _resume_id(first.stderr)
    listed = _rollouts(project)
    assert [(r["id"], r["state"], r["halt"], r["tenants"]) for r in listed] == [
        (rollout_id, "halted", "budget", {"done": 3, "failed": 1, "pending": 2})]
    shown = _show(project, rollout_id)
    assert _outcomes(shown) == {"w01": (1, "done", 1), "w02": (1, "done", 1), "w03": (2, "done", 1),
                                "w04": (2, "failed", 1), "w05": (3, "pending", 0), "w06": (3, "pending", 0)}
    assert "marked" in next(d["error"] for d in shown["databases"] if d["tenant"] == "w04")
    assert shown["options"]["waves"] == "2,2,rest" and shown["heads"]["tenant"] == HEAD and shown["ended_at"]
    project.query("db_w04", "DROP TABLE fail_here")  # fix the data
    resumed = project.cli("migrate", "--resume", str(rollout_id), "--json")
    assert resumed.returncode == 0, resumed.stderr
    # only what was not done runs, in its recorded waves; done tenants are not touched again
    assert [d["tenant"] for d in json.loads(resumed.stdout)["databases"]] == ["w04", "w05", "w06"]
    assert re.findall(r"wave (\d) of 3: (\d) tenant", resumed.stderr) == [("2", "1"), ("3", "2")]
    _ledger_once(project, ids)
    done = _show(project, rollout_id)
    assert done["state"] == "done" and done["halt"] is None
    assert _outcomes(done)["w04"] == (2, "done", 2) and _outcomes(done)["w06"] == (3, "done", 1)
    again = project.cli("migrate", "--resume", str(rollout_id))
    assert again.returncode != 0 and again.stderr.strip() == f"error: rollout {rollout_id} is done: nothing to resume"


def test_a_halted_rollout_is_recorded_halted_before_the_summary_reads_the_tenants_it_left(project):
    # At 1,000 tenants a halt in wave 2 leaves ~900 unstarted, whose versions the summary reads one connection
    # each: the record must say halted (its lock released, so it can be resumed) before those reads, not after.
    ids = _fleet(project, 4, failing=("w01",))
    assert project.cli("migrate", "--tenant", "w04").returncode == 0  # its version table, for the read to wait on
    held = connect(project.server, "db_w04")
    try:
        held.cursor().execute("BEGIN; LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE")  # the summary's read waits
        proc = project.spawn("migrate", "--all-tenants", "--waves", "1,rest", "--max-failures", "1",
                             "--max-parallel", "1", "--lock-timeout", "0")
        _wait_for_gate(project, "w04", query="%alembic_version%")
        halted = _rollouts(project)[0]
        assert (halted["state"], halted["halt"], halted["tenants"]) == (
            "halted", "budget", {"done": 0, "failed": 1, "pending": 3}) and halted["ended_at"]
    finally:
        held.close()
    assert proc.wait(timeout=60) == 1, proc.stderr.read()
    assert re.search(rf"^resume: grapevine-migrations migrate --resume {halted['id']}$", proc.stderr.read(), re.M)
    project.query("db_w01", "DROP TABLE fail_here")
    resumed = project.cli("migrate", "--resume", str(halted["id"]), "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert [d["tenant"] for d in json.loads(resumed.stdout)["databases"]] == ["w01", "w02", "w03", "w04"]
    _ledger_once(project, ids)


def test_resume_without_an_id_takes_the_latest_rollout_not_done(project):
    ids = _fleet(project, 4, failing=("w02",))
    halted = project.cli("migrate", "--all-tenants", "--waves", "1,rest", "--max-parallel", "1")
    assert halted.returncode == 1
    halted_id = _resume_id(halted.stderr)
    later = project.cli("migrate", "--tenant", "w01")  # a later rollout, done
    assert later.returncode == 0, later.stderr
    assert [r["state"] for r in _rollouts(project)] == ["done", "halted"]
    mixed = project.cli("migrate", "--resume", "--all-tenants")
    assert mixed.returncode != 0 and "drop --all-tenants" in mixed.stderr and "Traceback" not in mixed.stderr
    project.query("db_w02", "DROP TABLE fail_here")
    resumed = project.cli("migrate", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert _show(project, halted_id)["state"] == "done"
    _ledger_once(project, ids)
    nothing = project.cli("migrate", "--resume")
    assert nothing.returncode != 0
    assert nothing.stderr.strip() == "error: no rollout to resume: every recorded rollout is done"


def test_a_killed_rollout_reads_as_interrupted_and_resumes(project):
    ids = _fleet(project, 4)
    with _gate(project, "w02"):
        proc = project.spawn("migrate", "--all-tenants", "--waves", "2,rest", "--max-parallel", "1",
                             "--lock-timeout", "0")
        _wait_for_gate(project, "w02")
        proc.send_signal(signal.SIGKILL)  # a process that dies mid-wave, as on a lost node
        proc.wait(timeout=30)
        # the orphaned statement's backend is ended as a node's loss would end it
        project.query("postgres", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'db_w02'"
                      " AND wait_event_type = 'Lock'")
    deadline = time.monotonic() + 30
    while _rollouts(project)[0]["state"] != "interrupted" and time.monotonic() < deadline:
        time.sleep(0.1)  # the killed process's control session ends a moment after it
    [killed] = _rollouts(project)
    assert killed["state"] == "interrupted" and killed["ended_at"] is None
    project.query("db_w02", "DROP TABLE slow_here")
    resumed = project.cli("migrate", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert _show(project, killed["id"])["state"] == "done"
    _ledger_once(project, ids)


def test_a_live_rollout_keeps_its_lock_past_the_lease_while_a_tenant_runs_long(project):
    """The record's session is a lease the server ends after silence + 10 s without a word: a rollout whose
    tenant runs longer than that still reads as running (its writer speaks meanwhile) and is not resumed."""
    _fleet(project, 2)
    with _gate(project, "w01"):
        run = project.spawn("migrate", "--all-tenants", "--max-parallel", "1", "--lock-timeout", "0",
                            env={"GRAPEVINE_SILENCE_TIMEOUT": "1"})  # a lease of 11 s
        _wait_for_gate(project, "w01")
        time.sleep(11 + 3)
        listed = [r["state"] for r in _rollouts(project)]
        refused = project.cli("migrate", "--resume")
    assert run.wait(timeout=60) == 0, run.stderr.read()
    assert listed == ["running"]
    assert refused.returncode == 2 and "is running (pid" in refused.stderr, refused.stderr
    assert _rollouts(project)[0]["state"] == "done"


def test_a_second_rollout_over_the_same_tenants_refuses_naming_the_first(project):
    _fleet(project, 3)
    with _gate(project, "w02"):
        first = project.spawn("migrate", "--tenant", "w01", "--tenant", "w02", "--lock-timeout", "0")
        _wait_for_gate(project, "w02")
        _while_held(project)  # the second rollout refused, the resume too, other tenants alongside
    assert first.wait(timeout=60) == 0, first.stderr.read()
    assert [(r["state"], r["tenants"]["done"]) for r in _rollouts(project)] == [("done", 1), ("done", 2)]
    assert project.version("db_w03") == HEAD


def _while_held(project) -> None:
    [running] = _rollouts(project)
    assert running["state"] == "running"
    second = project.cli("migrate", "--all-tenants")
    assert second.returncode != 0
    assert second.stderr.strip().startswith(f"error: rollout {running['id']} (pid ")
    assert "is running over some of these tenants" in second.stderr and "Traceback" not in second.stderr
    resume = project.cli("migrate", "--resume", str(running["id"]))
    assert resume.returncode != 0 and f"rollout {running['id']} is running" in resume.stderr
    other = project.cli("migrate", "--tenant", "w03")  # another rollout's tenants run alongside
    assert other.returncode == 0, other.stderr


def test_the_rollout_table_name_is_configurable_and_not_drift(project):
    _fleet(project, 2)
    ini = project.root / "alembic.ini"
    ini.write_text(ini.read_text().replace("[control]\n", "[control]\nrollout_table = release_log\n", 1))
    result = project.cli("migrate", "--all-tenants")
    assert result.returncode == 0, result.stderr
    assert {"release_log", "release_log_tenants"} <= project.tables(project.control_db)
    assert "grapevine_rollouts" not in project.tables(project.control_db)
    assert [r["tenants"]["done"] for r in _rollouts(project)] == [2]
    drift = project.cli("drift", "--control")  # the record's tables are the tool's, not the schema's
    assert drift.returncode == 0, drift.stdout + drift.stderr


def test_a_rollout_halted_by_control_resumes_over_its_tenants_in_its_waves(project):
    ids = _fleet(project, 3)
    project.write("control", "20990101000000_picky.sql", STAMPED)  # fails while control has the marker
    project.control("CREATE TABLE fail_here ()")
    halted = project.cli("migrate", "--control", "--all-tenants", "--waves", "1,rest")
    assert halted.returncode == 1 and "control failed: tenants were not started" in halted.stderr
    [stopped] = _rollouts(project)
    assert (stopped["state"], stopped["halt"], stopped["tenants"]) == (
        "halted", "control failed", {"done": 0, "failed": 0, "pending": 0})
    project.control("DROP TABLE fail_here")
    resumed = project.cli("migrate", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert re.findall(r"wave (\d) of 2: (\d) tenant", resumed.stderr) == [("1", "1"), ("2", "2")]
    done = _show(project, stopped["id"])
    assert done["state"] == "done" and _outcomes(done) == {"w01": (1, "done", 1), "w02": (2, "done", 1),
                                                           "w03": (2, "done", 1)}
    _ledger_once(project, ids)


def test_rollouts_show_groups_a_fleet_and_names_its_failures(project):
    # At 1,000 tenants `rollouts show` printed 1,000 rows, the one failure among them; above 20 it groups.
    _fleet(project, 22, failing=("w03", "w05"))
    halted = project.cli("migrate", "--all-tenants", "--waves", "2,rest", "--max-failures", "2", "--max-parallel", "1")
    assert halted.returncode == 1
    rollout_id = _resume_id(halted.stderr)
    shown = project.cli("rollouts", "show", str(rollout_id))
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    headers = [i for i, line in enumerate(lines) if line.split()[:3] == ["wave", "outcome", "tenants"]]
    assert len(headers) == 1, shown.stdout
    table = [line.split() for line in lines[headers[0] + 1:headers[0] + 5]]
    assert table == [["1", "done", "2"], ["2", "failed", "2"], ["2", "done", "1"], ["2", "pending", "17"]]
    [failed] = [line for line in lines if line.startswith("failed: ")]
    assert failed.startswith("failed: w03, w05: ") and "marked" in failed
    assert f"every tenant: grapevine-migrations rollouts show {rollout_id} --verbose" in lines
    assert len(lines) < 15 and not any(line.startswith("w2") for line in lines)
    every = project.cli("rollouts", "show", str(rollout_id), "--verbose")
    assert every.returncode == 0 and sum(line.startswith("w") for line in every.stdout.splitlines()) == 22
