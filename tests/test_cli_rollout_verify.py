"""``migrate --verify`` against real PostgreSQL: each tenant of a wave is compared with the schema its new version
should have (as drift compares); one that differs fails, named with its differences, and counts toward the budget;
the resume completes once it is fixed; the API does the same."""

from __future__ import annotations

import json

from test_cli_rollout_waves import _fleet, _states

from grapevine_alembic.api import migrate_fleet

VERSION = "20240101000000"
DIFFERS = f"verify: the schema differs from what {VERSION} should have: extra table public.stray"


def _ledger_rows(project, ids):
    return {t: project.query(f"db_{t}", "SELECT count(*) FROM schema_migrations")[0][0] for t in ids}


def test_verify_fails_a_tenant_that_differs_and_the_budget_halts_the_rollout(project):
    ids = _fleet(project, 5)
    project.query("db_w02", "CREATE TABLE stray (id int)")  # drift that migrating does not touch
    args = ("migrate", "--control", "--all-tenants", "--waves", "1,1,rest", "--max-failures", "1", "--verify")
    result = project.cli(*args, "--json")
    assert result.returncode == 1, result.stderr
    assert _states(result.stdout) == {"w01": "ok", "w02": "failed", "w03": "skipped", "w04": "skipped",
                                      "w05": "skipped"}
    failed = next(d for d in json.loads(result.stdout)["databases"] if d["tenant"] == "w02")
    assert failed["error"] == DIFFERS
    assert "halted in wave 2: 1 failure(s) reached --max-failures 1, 3 tenant(s) not started" in result.stderr
    project.query("db_w02", "DROP TABLE stray")  # fixed: the resume command completes, applying nothing twice
    again = project.cli(*args)
    assert again.returncode == 0, again.stdout + again.stderr
    assert all(project.version(f"db_{t}") == VERSION for t in ids)
    assert _ledger_rows(project, ids) == dict.fromkeys(ids, 1)


def test_verify_cannot_be_combined_with_dry_run(project):
    _fleet(project, 1)
    result = project.cli("migrate", "--all-tenants", "--verify", "--dry-run")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: --verify compares the schema a run leaves: it cannot be combined with --dry-run"]
    assert project.version("db_w01") is None


def test_the_api_verifies_each_wave(project):
    ids = _fleet(project, 4)
    project.query("db_w02", "CREATE TABLE stray (id int)")
    url = project.env["CONTROL_DATABASE_URL"]
    result = migrate_fleet(project.root, control_url=url, waves="1,1,rest", max_failures=1, verify=True, retries=0)
    assert (result.halted, result.reason, result.wave) == (True, "budget", 2)
    failed = next(d for d in result.databases if d.tenant == "w02")
    assert failed.error == DIFFERS
    project.query("db_w02", "DROP TABLE stray")
    again = migrate_fleet(project.root, control_url=url, waves="1,1,rest", max_failures=1, verify=True)
    assert again.ok and not again.halted, [d.error for d in again.databases if not d.ok]
    assert _ledger_rows(project, ids) == dict.fromkeys(ids, 1)
