"""Late-merged files (older than a database's version, never applied there): applied in version order with a
warning line naming each, as the previous tool did, unless the project (alembic.ini) or the run refuses them."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import textwrap

import pytest

import pg

HEAD = "20250201080000"
LATE = "20250110000000_late_from_a_branch.sql"


def set_policy(project, value: str) -> None:
    ini = project.root / "alembic.ini"
    ini.write_text(ini.read_text().replace("[grapevine]\n", f"[grapevine]\nout_of_order = {value}\n", 1))


@pytest.fixture
def late(project):
    """acme at the head; then a file older than the head arrives (a branch merged late)."""
    project.migrate_control()
    project.add_tenant("acme")
    assert project.cli("migrate", "--tenant", "acme").returncode == 0
    project.write("tenant", LATE, "CREATE TABLE late (a int);\n")
    return project


def test_an_out_of_order_file_is_applied_by_default_with_a_warning_naming_it(late):
    result = late.cli("migrate", "--tenant", "acme", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    warning = f"warning: db_acme: applying {LATE} out of order: older than the database's version {HEAD}"
    assert warning in result.stderr
    [db] = json.loads(result.stdout)["databases"]
    assert db["applied"] == [LATE[:14]] and db["warnings"][0].startswith(warning)
    assert "late" in late.tables("db_acme")
    assert (LATE[:14], "out-of-order") in late.ledger("db_acme")
    assert late.version("db_acme") == HEAD
    again = late.cli("migrate", "--tenant", "acme")
    assert again.returncode == 0 and "out of order" not in again.stderr  # once


def test_dry_run_lists_the_out_of_order_file_it_would_apply(late):
    dry = late.cli("migrate", "--tenant", "acme", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert f"acme (db_acme): at {HEAD}, would apply:" in dry.stdout
    assert f"  {LATE[:14]}  {LATE}  (out of order" in dry.stdout
    assert "late" not in late.tables("db_acme")


def test_the_project_setting_refuses_them_and_the_flag_overrides_it(late):
    set_policy(late, "refuse")
    refused = late.cli("migrate", "--tenant", "acme")
    assert refused.returncode == 1
    assert f"never applied here although older than the database's version {HEAD}" in refused.stdout
    assert "late" not in late.tables("db_acme")
    dry = late.cli("migrate", "--tenant", "acme", "--dry-run")
    assert dry.returncode == 1 and "would fail: never applied here" in dry.stdout
    suggested = next(part.split(";")[0].strip() for part in refused.stdout.split("with: ")[1:])
    assert suggested == "grapevine-migrations migrate --tenant acme --out-of-order"
    pasted = late.cli(*shlex.split(suggested)[1:])
    assert pasted.returncode == 0, pasted.stdout + pasted.stderr
    assert "late" in late.tables("db_acme")


def test_refuse_out_of_order_refuses_for_one_run(late):
    refused = late.cli("migrate", "--tenant", "acme", "--refuse-out-of-order")
    assert refused.returncode == 1 and LATE in refused.stdout
    assert "late" not in late.tables("db_acme")


def test_a_bad_setting_is_one_configuration_error(late):
    set_policy(late, "sometimes")
    result = late.cli("migrate", "--tenant", "acme")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].endswith("out_of_order must be apply or refuse, not 'sometimes'")
    assert "late" not in late.tables("db_acme")


API_CALL = textwrap.dedent(
    """
    import json, sys
    from grapevine_alembic.api import migrate_database

    kwargs = json.loads(sys.argv[3])
    result = migrate_database(sys.argv[1], sys.argv[2], retries=0, **kwargs)
    print(json.dumps({"ok": result.ok, "applied": list(result.applied_versions), "error": result.error,
                      "notices": list(result.notices)}))
    """
)


def _api(project, kwargs: dict) -> dict:
    url = pg.url_for(project.server, "db_acme")
    run = subprocess.run([sys.executable, "-c", API_CALL, url, str(project.migrations("tenant")), json.dumps(kwargs)],
                         capture_output=True, text=True, timeout=120, cwd=project.root)
    assert run.returncode == 0 and run.stderr == "", run.stderr
    return json.loads(run.stdout)


def test_the_api_honours_the_project_setting_and_its_argument(late):
    set_policy(late, "refuse")
    refused = _api(late, {})
    assert not refused["ok"] and "never applied here" in refused["error"]
    applied = _api(late, {"out_of_order": "apply"})
    assert applied["ok"] and applied["applied"] == [LATE[:14]], applied
    assert any(f"applying {LATE} out of order" in n for n in applied["notices"])
    assert "late" in late.tables("db_acme")


@pytest.mark.parametrize("line, ends", [
    ("out_of_order = sometimes", "out_of_order must be apply or refuse, not 'sometimes'"),
    ("out_of_order = 50%", "out_of_order must be apply or refuse, not '50%'"),
    ("out_of_order = refuse\nout_of_order = apply", "option 'out_of_order' in section 'grapevine' already exists"),
    ("lock_key = twelve", "lock_key must be a whole number (a bigint), not 'twelve'"),
])
def test_a_bad_setting_is_the_same_one_line_error_on_every_road(late, line, ends):
    # alembic.ini's [grapevine] is read and checked in one place: the CLI, alembic and the API's migrate_database
    # (which finds alembic.ini above its folder) give the same line, and none of them applies the file
    ini = late.root / "alembic.ini"
    ini.write_text(ini.read_text().replace("[grapevine]\n", f"[grapevine]\n{line}\n", 1))
    by_cli = late.cli("migrate", "--tenant", "acme")
    assert by_cli.returncode == 2 and by_cli.stdout == "", by_cli.stdout + by_cli.stderr
    [error] = by_cli.stderr.strip().splitlines()
    assert error.startswith(f"error: {ini}") and error.endswith(ends), error
    if "already exists" not in ends:  # a file configparser cannot read stops Alembic itself, before our env runs
        by_alembic = late.alembic("-n", "tenant", "-x", "tenant=acme", "upgrade", "head")
        said = by_alembic.stdout + by_alembic.stderr
        assert by_alembic.returncode != 0 and "Traceback" not in said
        assert f"FAILED: {error.removeprefix('error: ')}" in said.splitlines(), said
    url = pg.url_for(late.server, "db_acme")
    run = subprocess.run([sys.executable, "-c", API_CALL, url, str(late.migrations("tenant")), "{}"],
                         capture_output=True, text=True, timeout=120, cwd=late.root)
    assert run.returncode == 1 and run.stderr.strip().splitlines()[-1] == "ValueError: " + error.removeprefix(
        "error: "), run.stdout + run.stderr
    assert "late" not in late.tables("db_acme")
