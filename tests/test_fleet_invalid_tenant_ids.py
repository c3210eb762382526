"""Rows of the tenants table whose id cannot name a database.

A provisioned row with a NULL id once became the tenant "None" and migrated an unrelated
database db_None. NULL, empty and malformed ids are each that row's one-line error, like any
invalid id: the valid tenants are migrated, no database is touched for them, and ``status``
shows them as invalid, not unreachable.
"""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def loose_tenants(project):
    """A tenants table as an application may keep it: no primary key, no check on the id."""
    project.migrate_control()
    project.control("ALTER TABLE tenants DROP CONSTRAINT tenants_pkey")
    project.control("ALTER TABLE tenants DROP CONSTRAINT tenants_id_check")
    project.control("ALTER TABLE tenants ALTER COLUMN id DROP NOT NULL")
    project.add_tenant("acme")
    project.control("INSERT INTO tenants (id, name, state) VALUES (NULL, 'null row', 'provisioned'),"
                    " ('', 'empty row', 'provisioned'), ('bad id', 'spaced row', 'provisioned')")
    project.make_db("db_None")  # an unrelated database that happens to have the name
    project.query("db_None", "CREATE TABLE bystander (x int)")
    return project


def _tables(project, db):
    return project.tables(db)


def test_null_and_empty_ids_never_become_databases(loose_tenants):
    project = loose_tenants
    result = project.cli("migrate", "--all-tenants")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output  # the bad rows are failures, named
    assert "Traceback" not in output
    assert project.version("db_acme") is not None  # the valid tenant is migrated
    assert _tables(project, "db_None") == {"bystander"}  # untouched: no version table, no tenant tables
    assert "db_None" not in output and "tenant None" not in output
    assert "a provisioned row of the tenants table has a NULL id" in output
    assert "a provisioned row of the tenants table has an empty id" in output
    assert "invalid tenant id 'bad id'" in output


def test_status_shows_invalid_rows_as_invalid_not_unreachable(loose_tenants):
    project = loose_tenants
    result = project.cli("status", "--all-tenants")
    assert result.returncode == 1, result.stdout + result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    for label in ("(NULL", "(empty", "bad"):
        assert label in rows, result.stdout
        assert "invalid" in rows[label] and "unreachable" not in rows[label], rows[label]
    assert "db_None" not in result.stdout + result.stderr
    doc = json.loads(project.cli("status", "--all-tenants", "--json").stdout)
    null_rows = [d for d in doc["databases"] if d["tenant"] is None]
    assert len(null_rows) == 1 and not null_rows[0]["ok"] and "NULL id" in null_rows[0]["error"]
    assert not any(d["database"] == "db_None" for d in doc["databases"])
    assert _tables(project, "db_None") == {"bystander"}


def test_invalid_id_in_the_version_column_is_invalid(project):
    """Item 10: with the table's own constraints, a tenants_query can still return a bad id."""
    project.migrate_control()
    project.add_tenant("acme")
    ini = project.root / "alembic.ini"
    ini.write_text(ini.read_text().replace("[grapevine]\n", "[grapevine]\ntenants_query = SELECT id FROM tenants"
                                           " UNION ALL SELECT 'bad/id' ORDER BY 1\n", 1))
    result = project.cli("status")
    line = next(line for line in result.stdout.splitlines() if line.startswith("bad/id"))
    assert "invalid" in line and "unreachable" not in line, result.stdout
    assert result.returncode == 1
