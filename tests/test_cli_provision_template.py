"""The provisioning template is what its files produce: a refresh that fails halfway never reaches a tenant."""

from __future__ import annotations

import pg
from test_cli_provision import HEAD, TEMPLATE, _new_tenant, _reference, _seeded, assert_same_as_file_by_file

# A deploy whose first file applies and whose second fails: the template is left holding A.
A = "20250401000000_a.sql"
B = "20250402000000_b.sql"
A_SQL = "CREATE TABLE a_things (id int PRIMARY KEY);\n"
A_EDITED = "CREATE TABLE a_things (id int PRIMARY KEY, label text NOT NULL DEFAULT 'edited');\n"
B_FAILS = "CREATE TABLE b_things (id int PRIMARY KEY);\nSELECT 1 / 0;\n"
B_FIXED = "CREATE TABLE b_things (id int PRIMARY KEY);\n"


def _mark(project) -> str | None:
    return project.query("postgres", "SELECT shobj_description(oid, 'pg_database') FROM pg_database"
                                     " WHERE datname = %s", (TEMPLATE,))[0][0]


def _failed_refresh(project, tenant_id: str) -> None:
    """Deploy A and a failing B, and ask for a tenant: the template applies A, then B fails."""
    project.write("tenant", A, A_SQL)
    project.write("tenant", B, B_FAILS)
    database = _new_tenant(project, tenant_id)
    failed = project.cli("provision", "--tenant", tenant_id)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "division by zero" in failed.stderr
    assert not pg.database_exists(project.server, database)


def _rolled_back(project) -> None:
    (project.migrations("tenant") / A).unlink()
    (project.migrations("tenant") / B).unlink()


def _provisioned_like(project, tenant_id: str, reference: str) -> str:
    """Provision ``tenant_id``, check it equals ``reference`` (migrated file by file); the notices printed."""
    database = _new_tenant(project, tenant_id)
    result = project.cli("provision", "--tenant", tenant_id)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_same_as_file_by_file(project, database, reference, applied_by="provision (template)")
    drift = project.cli("drift", "--tenant", tenant_id)  # its schema is its version's, built file by file
    assert drift.returncode == 0, drift.stdout + drift.stderr
    return result.stderr


def test_a_failed_template_refresh_never_reaches_a_tenant(project):
    _seeded(project)
    assert project.cli("provision", "--tenant", _new_tenant(project, "first")[3:]).returncode == 0
    at_head = _mark(project)

    # (a) the deploy is rolled back: the template must not hand out A, a version no file has
    _failed_refresh(project, "second")
    assert _mark(project) != at_head  # unusable as it is, until its ledger was read
    _rolled_back(project)
    reference = _reference(project)
    rebuilt = _provisioned_like(project, "third", reference)
    assert f"notice: the template {TEMPLATE} holds files the chain does not have" in rebuilt
    assert project.version("db_third") == HEAD

    # (b) A edited and B fixed: the template must be rebuilt, not migrated forward over the old A
    _failed_refresh(project, "fourth")
    project.write("tenant", A, A_EDITED)
    project.write("tenant", B, B_FIXED)
    assert project.cli("migrate", "--tenant", "ref").returncode == 0
    rebuilt = _provisioned_like(project, "fifth", reference)  # the reference holds A as edited
    assert f"notice: the template {TEMPLATE} holds files the chain does not have" in rebuilt


def test_a_template_under_a_stale_mark_is_rebuilt_not_copied(project):
    """A template that an earlier release left holding A under its old mark: the copy's ledger gives it away."""
    _seeded(project)
    assert project.cli("provision", "--tenant", _new_tenant(project, "first")[3:]).returncode == 0
    at_head = _mark(project)
    _failed_refresh(project, "second")
    _rolled_back(project)
    project.query("postgres", f"ALTER DATABASE {TEMPLATE} ALLOW_CONNECTIONS false")
    project.query("postgres", f"COMMENT ON DATABASE {TEMPLATE} IS '{at_head}'")  # as the old code left it
    reference = _reference(project)
    notices = _provisioned_like(project, "third", reference)
    assert f"notice: the copy of {TEMPLATE} did not hold the chain's files" in notices
    assert _mark(project) == at_head  # rebuilt and sealed again
