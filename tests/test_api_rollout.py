"""The Python API runs a rollout as the CLI does: control first, waves, the budget's halt, as values."""

from __future__ import annotations

import re
import threading
import time

import pytest
from pg import connect
from test_cli_rollout_waves import _fleet

from grapevine_alembic.api import migrate_fleet


def _url(project) -> str:
    return project.env["CONTROL_DATABASE_URL"]


def test_migrate_fleet_runs_waves_and_halts_on_the_budget_mid_wave(project, pg_server, capsys):
    ids = _fleet(project, 7, failing=("w03", "w05"))
    result = migrate_fleet(project.root, control_url=_url(project), waves="2,rest", max_failures=2, max_parallel=1,
                           retries=0)
    assert (result.ok, result.halted, result.reason, result.wave) == (False, True, "budget", 2)
    assert result.waves == (2, 5)
    states = {d.tenant: ("skipped" if d.skipped else ("ok" if d.ok else "failed"), d.wave) for d in result.databases}
    assert states == {None: ("ok", None), "w01": ("ok", 1), "w02": ("ok", 1), "w03": ("failed", 2), "w04": ("ok", 2),
                      "w05": ("failed", 2), "w06": ("skipped", 2), "w07": ("skipped", 2)}
    failed = next(d for d in result.databases if d.tenant == "w03")
    assert "marked" in failed.error and pg_server.password not in failed.error
    assert capsys.readouterr() == ("", "")  # the API prints nothing, and no command to paste
    for tenant_id in ("w03", "w05"):
        project.query(f"db_{tenant_id}", "DROP TABLE fail_here")
    again = migrate_fleet(project.root, control_url=_url(project), waves="2,rest", max_failures=2)
    assert again.ok and not again.halted
    assert [d.applied for d in again.databases if d.tenant] == [(), (), ("20240101000000",), (), ("20240101000000",),
                                                                ("20240101000000",), ("20240101000000",)]
    assert all(project.version(f"db_{t}") == "20240101000000" for t in ids)


def test_migrate_fleet_canary_and_percentage_budget(project):
    _fleet(project, 6, failing=("w01",))
    canary = migrate_fleet(project.root, control_url=_url(project), canary=2, max_failures=3)  # the canary must pass whole
    assert (canary.halted, canary.reason, canary.wave) == (True, "canary failed", 1)
    assert [d.tenant for d in canary.databases if d.skipped] == ["w03", "w04", "w05", "w06"]
    budget = migrate_fleet(project.root, control_url=_url(project), control=False, max_failures="10%",
                           max_parallel=1)
    assert (budget.halted, budget.reason) == (True, "budget")  # 1 failure of 1 started exceeds 10%
    assert [d.tenant for d in budget.databases if not d.skipped] == ["w01"]


@pytest.mark.parametrize("kwargs, message", [
    ({"waves": "rest,2"}, "rest can only be the last wave"),
    ({"waves": "0"}, "a wave size is a whole number"),
    ({"max_failures": "100%"}, "a percentage must be below 100%"),
    ({"waves": "2,rest", "canary": 2}, "canary=N is a first wave of N"),
])
def test_migrate_fleet_bad_rollout_values_raise_before_any_change(project, kwargs, message):
    with pytest.raises(ValueError, match=message) as raised:
        migrate_fleet(project.root, control_url=_url(project), **kwargs)
    assert "--" not in str(raised.value)  # named as the API's arguments, not the CLI's flags
    assert project.version(project.control_db) is None


def test_migrate_fleet_records_the_rollout_and_resumes_it_where_it_stopped(project):
    ids = _fleet(project, 5, failing=("w02",))
    halted = migrate_fleet(project.root, control_url=_url(project), waves="1,1,rest", max_failures=1, max_parallel=1)
    assert (halted.halted, halted.wave) == (True, 2) and halted.rollout is not None
    assert project.control("SELECT state, halt FROM grapevine_rollouts WHERE id = %s", (halted.rollout,)) == [
        ("halted", "budget")]
    project.query("db_w02", "DROP TABLE fail_here")
    resumed = migrate_fleet(project.root, control_url=_url(project), resume=True)  # its recorded waves
    assert resumed.ok and resumed.rollout == halted.rollout
    assert [(d.tenant, d.wave) for d in resumed.databases] == [(None, None), ("w02", 2), ("w03", 3), ("w04", 3),
                                                              ("w05", 3)]
    for tenant_id in ids:  # nothing applied twice
        assert [v for v, _ in project.ledger(f"db_{tenant_id}")] == ["20240101000000"]
    assert project.control("SELECT outcome, attempts FROM grapevine_rollouts_tenants WHERE rollout_id = %s"
                           " AND tenant_id = 'w02'", (halted.rollout,)) == [("done", 2)]
    nothing = migrate_fleet(project.root, control_url=_url(project), resume=halted.rollout)
    assert not nothing.ok and nothing.error == f"rollout {halted.rollout} is done: nothing to resume"


def test_migrate_fleet_records_the_halt_before_reading_the_tenants_it_left(project):
    # the API's rollout ends its record as the CLI's does: before the reads of the unstarted tenants' versions
    from test_cli_rollout_resume import _wait_for_gate

    _fleet(project, 4, failing=("w01",))
    assert project.cli("migrate", "--tenant", "w04").returncode == 0  # its version table, for the read to wait on
    held = connect(project.server, "db_w04")
    done = {}
    try:
        held.cursor().execute("BEGIN; LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE")
        run = threading.Thread(target=lambda: done.update(result=migrate_fleet(
            project.root, control_url=_url(project), waves="1,rest", max_failures=1, max_parallel=1)))
        run.start()
        _wait_for_gate(project, "w04", query="%alembic_version%")
        assert project.query(project.control_db, "SELECT state, halt, ended_at IS NOT NULL FROM grapevine_rollouts"
                             " ORDER BY id DESC LIMIT 1") == [("halted", "budget", True)]
    finally:
        held.close()
        run.join(timeout=60)
    assert (done["result"].halted, done["result"].reason, done["result"].wave) == (True, "budget", 1)


ALTER = "ALTER TABLE stamp ADD COLUMN y int;\n"  # waits for any lock another session holds on stamp
# Two attempts at the default lock timeout (5 s) cannot end sooner than this; two at 0.3 s take about 1 s.
TWO_DEFAULT_LOCK_WAITS_S = 10.0


def _held_stamp(project, tenant_id: str):
    """A session of the test's own holding a lock on ``tenant_id``'s stamp table (close it to release)."""
    holder = connect(project.server, f"db_{tenant_id}")
    holder.cursor().execute("BEGIN; LOCK TABLE stamp IN ACCESS SHARE MODE")
    return holder


def _stamped_fleet_with_alter(project, count: int) -> None:
    _fleet(project, count)
    assert project.cli("migrate", "--all-tenants").returncode == 0
    project.write("tenant", "20240102000000_alter.sql", ALTER)


def _timed(call):
    started = time.monotonic()
    return call(), time.monotonic() - started


def _options(project, rollout_id: int) -> dict:
    return project.control("SELECT options FROM grapevine_rollouts WHERE id = %s", (rollout_id,))[0][0]


def test_migrate_fleet_takes_migrates_run_time_options_records_them_and_resumes_with_them(project):
    _stamped_fleet_with_alter(project, 2)
    holder = _held_stamp(project, "w01")
    try:
        failed, took = _timed(lambda: migrate_fleet(project.root, control_url=_url(project), lock_timeout=0.3,
                                                    retries=1, retry_window=7, max_per_server=1, max_parallel=2))
        assert took < TWO_DEFAULT_LOCK_WAITS_S, took
        errors = {d.tenant: d.error for d in failed.databases}
        assert not failed.ok and "lock timeout" in errors["w01"] and errors["w02"] is None
        assert project.control("SELECT attempts FROM grapevine_rollouts_tenants WHERE rollout_id = %s"
                               " AND tenant_id = 'w01'", (failed.rollout,)) == [(2,)]
        recorded = _options(project, failed.rollout)
        assert {k: recorded[k] for k in ("lock_timeout", "retries", "retry_window", "max_per_server", "timeout")} == {
            "lock_timeout": 0.3, "retries": 1, "retry_window": 7, "max_per_server": 1, "timeout": 300.0}
        again, took = _timed(lambda: migrate_fleet(project.root, control_url=_url(project), resume=failed.rollout))
        assert took < TWO_DEFAULT_LOCK_WAITS_S, took  # the recorded 0.3 s, not the default 5 s
        assert not again.ok and "lock timeout" in next(d.error for d in again.databases if d.tenant == "w01")
    finally:
        holder.close()
    done = migrate_fleet(project.root, control_url=_url(project), resume=failed.rollout, lock_timeout=2,
                         retry_window=30)
    assert done.ok, [d.error for d in done.databases]
    recorded = _options(project, failed.rollout)
    assert recorded["resumed_with"] == {"lock_timeout": 2, "retry_window": 30} and recorded["retries"] == 1
    assert [v for v, _ in project.ledger("db_w01")] == ["20240101000000", "20240102000000"]


def test_migrate_fleet_resumes_a_cli_rollout_with_its_recorded_lock_timeout(project):
    _stamped_fleet_with_alter(project, 1)
    holder = _held_stamp(project, "w01")
    try:
        first = project.cli("migrate", "--all-tenants", "--lock-timeout", "0.3", "--retries", "1")
        assert first.returncode == 1 and "lock timeout" in first.stdout, first.stdout + first.stderr
        rollout_id = int(re.search(r"--resume (\d+)", first.stderr).group(1))
        resumed, took = _timed(lambda: migrate_fleet(project.root, control_url=_url(project), resume=rollout_id))
    finally:
        holder.close()
    assert took < TWO_DEFAULT_LOCK_WAITS_S, took  # the CLI's recorded --lock-timeout 0.3, not the API's default
    assert not resumed.ok and "lock timeout" in resumed.databases[-1].error


def test_migrate_fleet_follows_the_projects_out_of_order_setting_unless_told(project):
    _fleet(project, 1)
    assert project.cli("migrate", "--all-tenants").returncode == 0
    project.write("tenant", "20231201000000_late.sql", "CREATE TABLE late_table (id int);\n")
    ini = project.root / "alembic.ini"
    ini.write_text(ini.read_text().replace("[grapevine]\n", "[grapevine]\nout_of_order = refuse\n"))
    refused = migrate_fleet(project.root, control_url=_url(project))
    assert not refused.ok and "never applied here although older" in refused.databases[-1].error
    assert "late_table" not in project.tables("db_w01")
    applied = migrate_fleet(project.root, control_url=_url(project), resume=refused.rollout, out_of_order="apply")
    assert applied.ok and "late_table" in project.tables("db_w01")
    assert _options(project, refused.rollout)["resumed_with"] == {"out_of_order": True}
    with pytest.raises(ValueError, match="out_of_order must be apply or refuse"):
        migrate_fleet(project.root, control_url=_url(project), out_of_order="sometimes")


def test_a_rollout_given_no_options_records_the_same_defaults_through_the_cli_and_the_api(project):
    # one source of migrate's defaults: a default changed on one road only shows here as a difference
    _fleet(project, 2)
    by_cli = project.cli("migrate", "--control", "--all-tenants")
    assert by_cli.returncode == 0, by_cli.stdout + by_cli.stderr
    project.write("tenant", "20240102000000_more.sql", "CREATE TABLE more_here (id int);\n")
    by_api = migrate_fleet(project.root, control_url=_url(project))
    assert by_api.ok, [d.error for d in by_api.databases]
    (cli_options,), (api_options,) = (row for row in project.control(
        "SELECT options FROM grapevine_rollouts ORDER BY id"))
    assert api_options == cli_options
    assert {knob: cli_options[knob] for knob in ("timeout", "lock_timeout", "retries", "retry_window", "max_parallel",
                                                 "wave_pause", "canary")} == {
        "timeout": 300.0, "lock_timeout": 5.0, "retries": 3, "retry_window": 60.0, "max_parallel": 5,
        "wave_pause": 0.0, "canary": 0}
