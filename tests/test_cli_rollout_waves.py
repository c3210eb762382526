"""A rollout in waves under a failure budget, through the CLI against real PostgreSQL: wave order and
sizes, the pause between waves (and Ctrl-C in it), the budget halting mid-wave, and bad values."""

from __future__ import annotations

import json
import re
import shlex
import signal

import pytest
from test_cli_interrupts import StderrLines

from grapevine_alembic.fleet.rollout import parse_waves, plan

# Fails where a marker table exists, so a test chooses the failing tenants (and "fixes the data" by dropping it).
STAMPED = ("BEGIN;\nDO $$ BEGIN IF to_regclass('public.fail_here') IS NOT NULL THEN RAISE EXCEPTION 'marked';"
           " END IF; END $$;\nCREATE TABLE stamp AS SELECT clock_timestamp() AS at;\nCOMMIT;\n")


def _fleet(project, count: int, failing: tuple[str, ...] = ()) -> list[str]:
    project.migrate_control()
    ids = [f"w{i:02d}" for i in range(1, count + 1)]
    for tenant_id in ids:
        project.add_tenant(tenant_id)
    for tenant_id in failing:
        project.query(f"db_{tenant_id}", "CREATE TABLE fail_here ()")
    project.clear("tenant")
    project.write("tenant", "20240101000000_stamp.sql", STAMPED)
    return ids


def _stamp(project, tenant_id: str):
    return project.query(f"db_{tenant_id}", "SELECT at FROM stamp")[0][0]


def _states(stdout: str) -> dict[str, str]:
    return {d["tenant"]: ("skipped" if d["skipped"] else ("ok" if d["ok"] else "failed"))
            for d in json.loads(stdout)["databases"] if d["tenant"]}


def test_percentages_round_up_and_rest_takes_what_is_left():
    assert [w.size for w in plan(95, parse_waves("5,10%,rest")).waves] == [5, 10, 80]
    assert [w.size for w in plan(30, parse_waves("10%,rest")).waves] == [3, 27]  # exact: 3, not 4
    assert [w.size for w in plan(10, parse_waves("25%,rest")).waves] == [3, 7]  # 2.5 rounds up
    assert [w.size for w in plan(4, parse_waves("1%,50%")).waves] == [1, 2]  # never an empty wave; 1 left out
    assert [w.size for w in plan(3, parse_waves("5,rest")).waves] == [3]  # waves past the fleet are dropped


def test_waves_follow_the_tenants_query_order_in_sizes_given(project):
    ids = _fleet(project, 10)
    ini = project.root / "alembic.ini"
    query = "SELECT id::text FROM tenants WHERE state = 'provisioned' ORDER BY id DESC"  # a team's own order
    ini.write_text(ini.read_text().replace("[grapevine]\n", f"[grapevine]\ntenants_query = {query}\n"))
    result = project.cli("migrate", "--all-tenants", "--waves", "2,25%,rest", "--max-parallel", "3")
    assert result.returncode == 0, result.stderr
    assert re.findall(r"wave (\d) of 3: (\d+) tenant\(s\)", result.stderr) == [("1", "2"), ("2", "3"), ("3", "5")]
    order = list(reversed(ids))
    waves = [order[:2], order[2:5], order[5:]]
    for earlier, later in zip(waves, waves[1:]):  # every tenant of a wave done before the next wave starts
        assert max(_stamp(project, t) for t in earlier) < min(_stamp(project, t) for t in later)


def test_a_wave_with_a_failure_stops_the_rollout_without_a_budget(project):
    ids = _fleet(project, 6, failing=("w02",))
    result = project.cli("migrate", "--all-tenants", "--waves", "3,rest", "--json")
    assert result.returncode == 1
    assert _states(result.stdout) == {"w01": "ok", "w02": "failed", "w03": "ok", **dict.fromkeys(ids[3:], "skipped")}
    assert "halted in wave 1: wave failed, 3 tenant(s) not started" in result.stderr


def test_tenants_after_the_last_wave_are_left_alone_without_rest(project):
    ids = _fleet(project, 4)
    result = project.cli("migrate", "--all-tenants", "--waves", "1,25%", "--json")
    assert result.returncode == 0, result.stderr
    assert _states(result.stdout) == {"w01": "ok", "w02": "ok", "w03": "skipped", "w04": "skipped"}
    assert "waves done: 2 tenant(s) after the last wave not started (end --waves with rest" in result.stderr
    assert "halted" not in result.stderr and project.version(f"db_{ids[3]}") is None


def test_wave_pause_waits_between_waves(project):
    _fleet(project, 2)
    result = project.cli("migrate", "--all-tenants", "--waves", "1,rest", "--wave-pause", "1.5")
    assert result.returncode == 0, result.stderr
    assert "pausing 1.5s before wave 2" in result.stderr
    assert (_stamp(project, "w02") - _stamp(project, "w01")).total_seconds() >= 1.5


def test_ctrl_c_during_the_wave_pause_stops_cleanly(project):
    _fleet(project, 3)
    proc = project.spawn("migrate", "--all-tenants", "--waves", "1,rest", "--wave-pause", "600", "--json")
    stderr = StderrLines(proc)
    assert stderr.wait_for("pausing 600s before wave 2"), stderr.seen
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)  # not the 600 s of the pause
    stdout = proc.stdout.read()
    rest = stderr.rest()
    assert proc.returncode == 130, rest
    assert _states(stdout) == {"w01": "ok", "w02": "skipped", "w03": "skipped"}
    assert json.loads(stdout)["interrupted"] is True
    assert "interrupted, 2 tenant(s) not started" in rest and "halted" not in rest
    assert project.version("db_w02") is None


def test_max_failures_count_halts_mid_wave_and_the_resume_command_completes(project):
    ids = _fleet(project, 8, failing=("w03", "w05"))
    result = project.cli("migrate", "--all-tenants", "--waves", "2,rest", "--max-failures", "2",
                         "--max-parallel", "1", "--json")
    assert result.returncode == 1
    assert _states(result.stdout) == {"w01": "ok", "w02": "ok", "w03": "failed", "w04": "ok", "w05": "failed",
                                      **dict.fromkeys(ids[5:], "skipped")}
    assert "halted in wave 2: 2 failure(s) reached --max-failures 2, 3 tenant(s) not started" in result.stderr
    resume = re.search(r"^resume: grapevine-migrations (migrate --resume \d+)$", result.stderr, re.M)
    assert resume, result.stderr
    for tenant_id in ("w03", "w05"):  # fix the data
        project.query(f"db_{tenant_id}", "DROP TABLE fail_here")
    again = project.cli(*shlex.split(resume.group(1)), "--json")
    assert again.returncode == 0, again.stderr
    assert _states(again.stdout) == dict.fromkeys(["w03", "w05", *ids[5:]], "ok")  # the rest of the rollout
    for tenant_id in ids:  # nothing applied twice
        assert [v for v, _ in project.ledger(f"db_{tenant_id}")] == ["20240101000000"]


def test_max_failures_percentage_counts_the_tenants_started_so_far(project):
    ids = _fleet(project, 10, failing=("w06", "w07"))
    result = project.cli("migrate", "--all-tenants", "--waves", "4,rest", "--max-failures", "20%",
                         "--max-parallel", "1", "--json")
    assert result.returncode == 1
    # w06: 1 of 6 started (16.7%) is within 20%; w07: 2 of 7 (28.6%) exceeds it
    assert _states(result.stdout) == {**dict.fromkeys(ids[:5], "ok"), "w06": "failed", "w07": "failed",
                                      **dict.fromkeys(ids[7:], "skipped")}
    assert "halted in wave 2: 2 failure(s) of 7 tenant(s) started exceeded --max-failures 20%," in result.stderr


def test_waves_apply_to_a_shard_and_a_tenants_file(project):
    ids = _fleet(project, 6)
    (project.root / "chosen.txt").write_text("w05\nw02\nw04\n")
    result = project.cli("migrate", "--tenants-file", "chosen.txt", "--waves", "1,rest", "--json")
    assert result.returncode == 0, result.stderr
    assert sorted(_states(result.stdout)) == ["w02", "w04", "w05"]
    assert re.findall(r"wave \d of 2: (\d+)", result.stderr) == ["1", "2"]
    assert _stamp(project, "w05") < min(_stamp(project, "w02"), _stamp(project, "w04"))  # the file's order
    sharded = project.cli("migrate", "--all-tenants", "--shard", "1/2", "--waves", "1,rest", "--json")
    assert sharded.returncode == 0, sharded.stderr
    assert set(_states(sharded.stdout)) < set(ids) and "wave 1 of " in sharded.stderr


def test_canary_is_still_a_first_wave_that_must_pass(project):
    ids = _fleet(project, 5, failing=("w01",))
    result = project.cli("migrate", "--all-tenants", "--canary", "2", "--max-failures", "3", "--json")
    assert result.returncode == 1
    assert _states(result.stdout) == {"w01": "failed", "w02": "ok", **dict.fromkeys(ids[2:], "skipped")}
    assert "canary failed, 3 tenant(s) not started" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--waves", "0"], "--waves 0: a wave size is a whole number of tenants"),
    (["--waves", "rest,5"], "rest can only be the last wave"),
    (["--waves", "5,,rest"], "a wave size is a count, a percentage (10%) or rest"),
    (["--waves", "150%"], "a percentage must be above 0% and at most 100%"),
    (["--waves", "ten"], "a wave size is a count, a percentage (10%) or rest (got 'ten')"),
    (["--waves", "2,rest", "--canary", "2"], "--canary N is a first wave of N"),
    (["--wave-pause", "5"], "--wave-pause waits between waves"),
    (["--max-failures", "0"], "--max-failures 0: a count must be a whole number, at least 1"),
    (["--max-failures", "100%"], "a percentage must be below 100%"),
    (["--max-failures", "lots"], "--max-failures takes a count or a percentage"),
])
def test_bad_rollout_values_are_one_line_and_change_nothing(project, args, message):
    result = project.cli("migrate", "--control", "--all-tenants", *args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert project.version(project.control_db) is None
