"""In the control database the rollout record's tables and drift's verified table are the tool's too: a
control file that writes them is refused before anything of it runs, on both roads, with the names
alembic.ini gives them; a tenant file may use those names (tenant databases hold no record)."""

from __future__ import annotations

import pytest
from test_database_tool_tables import _error_lines

ROADS = ["migrate", "alembic"]
LATER = "20990101000000"


def _run_control(project, road: str):
    if road == "migrate":
        return project.cli("migrate", "--control")
    if road == "alembic --sql":  # offline: the SQL a DBA would run, refused the same
        return project.alembic("-n", "control", "upgrade", "head", "--sql")
    return project.alembic("-n", "control", "upgrade", "head")


def _configure_control(project, **options: str) -> None:
    ini = project.root / "alembic.ini"
    lines = "".join(f"{key} = {value}\n" for key, value in options.items())
    ini.write_text(ini.read_text().replace("[control]\n", f"[control]\n{lines}", 1))


@pytest.mark.parametrize("road", [*ROADS, "alembic --sql"])
@pytest.mark.parametrize("statement, table, option", [
    ("UPDATE grapevine_rollouts SET state = 'done';", "grapevine_rollouts", "rollout_table"),
    ("DELETE FROM public.grapevine_rollouts_tenants;", "grapevine_rollouts_tenants", "rollout_table"),
    ("ALTER TABLE grapevine_verified ADD COLUMN note text;", "grapevine_verified", "verified_table"),
])
def test_a_control_file_writing_the_record_or_verified_table_is_refused(project, road, statement, table, option):
    project.migrate_control()
    assert project.cli("migrate", "--all-tenants").returncode == 0  # a first rollout: the record's tables exist
    before = project.version(project.control_db)
    project.write("control", f"{LATER}_tamper.sql", "CREATE TABLE tamper_first (x int);\n" + statement + "\n")
    result = _run_control(project, road)
    assert result.returncode != 0
    lines = _error_lines(result)
    assert len(lines) == 1, result.stdout + result.stderr
    assert f"migrations/control/{LATER}_tamper.sql:2:" in lines[0] and f"the tool's" in lines[0], lines[0]
    assert table in lines[0] and f"set {option} = <another name> in alembic.ini [control]" in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    assert project.version(project.control_db) == before  # nothing of the file ran
    assert "tamper_first" not in project.tables(project.control_db)


@pytest.mark.parametrize("road", ROADS)
def test_the_renamed_record_tables_are_refused_and_the_old_names_are_the_files_own(project, road):
    project.migrate_control()
    _configure_control(project, rollout_table="release_log", verified_table="checked_ok")
    project.write("control", f"{LATER}_own.sql", "CREATE TABLE grapevine_rollouts (id int);\n"
                                                 "CREATE TABLE grapevine_verified (id int);\n")
    applied = _run_control(project, road)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert project.version(project.control_db) == LATER
    project.write("control", "20990102000000_tamper.sql", "TRUNCATE release_log_tenants;\n")
    refused = _run_control(project, road)
    lines = _error_lines(refused)
    assert refused.returncode != 0 and len(lines) == 1, refused.stdout + refused.stderr
    assert "release_log_tenants" in lines[0] and "rollout_table = <another name>" in lines[0], lines[0]
    assert project.version(project.control_db) == LATER
    check = project.cli("check")
    assert check.returncode != 0 and "release_log_tenants" in check.stdout + check.stderr


def test_a_tenant_file_may_use_the_record_tables_names(project):
    database = project.tenant_chain({"20250101000000_a.sql": "CREATE TABLE grapevine_rollouts (id int);\n"
                                                             "INSERT INTO grapevine_rollouts VALUES (1);\n"})
    result = project.cli("migrate", "--tenant", "acme")
    assert result.returncode == 0, result.stdout + result.stderr
    assert project.query(database, "SELECT id FROM grapevine_rollouts") == [(1,)]
