"""A resume and the options on its own command line, through the CLI and the Python API against real
PostgreSQL: run-time knobs (timeouts, parallelism, retries) given to the resume win over the recorded ones
and the record says so; options that would change which tenants or waves are refused, naming the recorded
value, before the record is touched."""

from __future__ import annotations

from test_cli_rollout_resume import HEAD, _gate, _resume_id, _rollouts, _show, _wait_for_gate
from test_cli_rollout_waves import _fleet

from grapevine_alembic.api import migrate_fleet

# Fails where fail_here exists; sleeps 3 s where sleep_here exists (past a 1 s --timeout, well within 300 s).
SLEEPY = ("BEGIN;\nDO $$ BEGIN IF to_regclass('public.fail_here') IS NOT NULL THEN RAISE EXCEPTION 'marked';"
          " END IF; IF to_regclass('public.sleep_here') IS NOT NULL THEN PERFORM pg_sleep(3); END IF; END $$;\n"
          "CREATE TABLE stamp AS SELECT clock_timestamp() AS at;\nCOMMIT;\n")


def _halted_on_w02(project) -> None:
    """A fleet of three whose w02 fails its first run (fail_here) and, once fixed, takes 3 s (sleep_here)."""
    _fleet(project, 3, failing=("w02",))
    project.write("tenant", "20240101000000_stamp.sql", SLEEPY)
    project.query("db_w02", "CREATE TABLE sleep_here ()")


def _w02(project, rollout_id: int) -> tuple:
    found = next(d for d in _show(project, rollout_id)["databases"] if d["tenant"] == "w02")
    return found["outcome"], found["attempts"]


def test_resume_honours_run_time_options_given_with_it_and_records_them(project):
    _halted_on_w02(project)
    first = project.cli("migrate", "--all-tenants", "--max-parallel", "1")
    assert first.returncode == 1
    rollout_id = _resume_id(first.stderr)
    project.query("db_w02", "DROP TABLE fail_here")
    short = project.cli("migrate", "--resume", str(rollout_id), "--timeout", "1", "--retries", "0",
                        "--max-parallel", "2")
    # the 1 s statement_timeout given to the resume cancels the 3 s file (the recorded 300 s would not)
    assert short.returncode == 1, short.stderr
    assert "statement timeout" in short.stdout + short.stderr
    assert _w02(project, rollout_id) == ("failed", 2) and project.version("db_w02") is None
    options = _show(project, rollout_id)["options"]
    assert (options["timeout"], options["retries"], options["max_parallel"]) == (1.0, 0, 2)
    assert options["resumed_with"] == {"timeout": 1.0, "retries": 0, "max_parallel": 2}
    again = project.cli("migrate", "--resume", str(rollout_id), "--timeout", "30")
    assert again.returncode == 0, again.stderr
    assert _show(project, rollout_id)["state"] == "done" and project.version("db_w02") == HEAD


def test_resume_refuses_options_that_change_its_tenants_or_waves_naming_the_recorded_value(project):
    _fleet(project, 4, failing=("w02",))
    first = project.cli("migrate", "--all-tenants", "--waves", "2,rest", "--max-parallel", "1")
    assert first.returncode == 1
    rollout_id = _resume_id(first.stderr)
    before = _show(project, rollout_id)
    for flags, refusal in (
            (("--waves", "3,rest"), f"error: rollout {rollout_id} resumes in its recorded waves (2,rest): drop --waves"),
            (("--tenant", "w01"), f"error: rollout {rollout_id} resumes over its recorded targets (all tenants):"
                                  " drop --tenant"),
            (("--control",), f"error: rollout {rollout_id} resumes over its recorded targets (all tenants):"
                             " drop --control"),
            (("--verify",), f"error: rollout {rollout_id} resumes with its recorded verify (off): drop --verify")):
        refused = project.cli("migrate", "--resume", str(rollout_id), *flags)
        assert refused.returncode == 2 and refused.stderr.strip() == refusal, refused.stderr
    assert _show(project, rollout_id) == before  # the record untouched: still halted, same options
    assert project.version("db_w03") is None


def test_migrate_fleet_resume_honours_run_time_arguments_and_refuses_scope_ones(project):
    _halted_on_w02(project)
    url = project.env["CONTROL_DATABASE_URL"]
    first = migrate_fleet(project.root, control_url=url, max_parallel=1, waves="1,rest", max_failures=2)
    assert not first.ok and first.rollout is not None
    project.query("db_w02", "DROP TABLE fail_here")
    refused = migrate_fleet(project.root, control_url=url, resume=first.rollout, waves="4,rest")
    assert not refused.ok and refused.error == f"rollout {first.rollout} resumes in its recorded waves (1,rest): drop waves"
    short = migrate_fleet(project.root, control_url=url, resume=first.rollout, timeout=1, retries=0)
    assert not short.ok and "statement timeout" in next(d.error for d in short.databases if d.tenant == "w02")
    recorded = project.control("SELECT options FROM grapevine_rollouts WHERE id = %s", (first.rollout,))[0][0]
    assert recorded["resumed_with"] == {"timeout": 1, "retries": 0} and recorded["waves"] == "1,rest"
    done = migrate_fleet(project.root, control_url=url, resume=first.rollout, timeout=30)
    assert done.ok and project.version("db_w02") == HEAD
    assert _rollouts(project)[0]["state"] == "done"


def test_a_second_rollout_with_control_refuses_before_control_is_migrated(project):
    """The refusal of a rollout over tenants another one runs over comes before anything is written anywhere:
    control's pending file stays pending and the refused rollout leaves no record (CLI and API)."""
    _fleet(project, 3)
    project.write("control", "20990101000000_later.sql", "CREATE TABLE later_control_table (id int);\n")
    with _gate(project, "w02"):
        first = project.spawn("migrate", "--tenant", "w01", "--tenant", "w02", "--lock-timeout", "0")
        _wait_for_gate(project, "w02")
        [running] = _rollouts(project)
        second = project.cli("migrate", "--control", "--all-tenants")
        api = migrate_fleet(project.root, control_url=project.env["CONTROL_DATABASE_URL"])
        pending = "later_control_table" not in project.tables(project.control_db)
        listed = [r["id"] for r in _rollouts(project)]
    assert first.wait(timeout=60) == 0, first.stderr.read()
    assert second.returncode != 0 and "Traceback" not in second.stderr
    assert second.stderr.strip().startswith(f"error: rollout {running['id']} (pid "), second.stderr
    assert not api.ok and api.error.startswith(f"rollout {running['id']} (pid ") and not api.databases
    assert pending and listed == [running["id"]]  # control untouched, no record of the refused ones
    assert project.version("db_w03") is None


def _counted_tenants_query(project):
    """A tenants query that counts its own runs in a sequence of the control database (nextval is never rolled
    back); returns the reader of that count."""
    project.control("CREATE SEQUENCE tenant_reads")
    query = ("WITH counted AS MATERIALIZED (SELECT nextval('tenant_reads')) SELECT t.id::text FROM tenants t, counted"
             " WHERE t.state = 'provisioned' ORDER BY t.id")
    ini = project.root / "alembic.ini"
    ini.write_text(ini.read_text().replace("[grapevine]\n", f"[grapevine]\ntenants_query = {query}\n"))
    return lambda: project.control("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM tenant_reads")[0][0]


def test_a_rollout_with_control_beside_a_live_one_reads_its_tenants_once(project):
    """The early check against a live rollout and the run itself share one read of the tenants query."""
    _fleet(project, 3)
    reads = _counted_tenants_query(project)
    with _gate(project, "w02"):
        first = project.spawn("migrate", "--tenant", "w01", "--tenant", "w02")
        _wait_for_gate(project, "w02")
        before = reads()
        beside = project.cli("migrate", "--control", "--tenant", "w03")
        by_cli = reads() - before
        api = migrate_fleet(project.root, control_url=project.env["CONTROL_DATABASE_URL"], tenants=["w03"])
        by_api = reads() - before - by_cli
    assert first.wait(timeout=60) == 0, first.stderr.read()
    assert beside.returncode == 0, beside.stderr
    assert api.ok, api.error
    assert (by_cli, by_api) == (1, 1)
    assert project.version("db_w03") == HEAD
