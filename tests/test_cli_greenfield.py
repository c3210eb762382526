"""A new repository: `init` in an empty folder leaves a project that `create`, `migrate` and plain
`alembic` work on right after (with --tenants-table, its first control file creates `tenants`)."""

from __future__ import annotations

import pytest
import shutil

from pg import url_for


def _emptied(project):
    for path in project.root.iterdir():
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return project


def test_init_in_an_empty_repository_makes_the_chains_and_a_tenants_table(project):
    _emptied(project)
    init = project.cli("init", "--tenants-table")
    assert init.returncode == 0, init.stderr
    assert "made migrations/control/" in init.stdout and "made migrations/tenant/" in init.stdout
    [first] = project.migrations("control").glob("*_create_tenants.sql")
    assert f"wrote migrations/control/{first.name}" in init.stdout
    created = project.cli("create", "tenant", "add labels")
    assert created.returncode == 0, created.stderr
    new_file = project.root / created.stdout.strip()
    new_file.write_text("BEGIN;\nCREATE TABLE labels (id bigint PRIMARY KEY, name text NOT NULL);\nCOMMIT;\n")
    check = project.cli("check")
    assert check.returncode == 0, check.stdout + check.stderr

    # the CLI road: control, then a tenant row in the table the first file made, then the tenant
    project.migrate_control()
    project.control("INSERT INTO tenants (id, state) VALUES ('acme', 'provisioned')")
    project.make_db("db_acme")
    tenants = project.cli("migrate", "--all-tenants")
    assert tenants.returncode == 0, tenants.stderr
    assert project.tables("db_acme") >= {"labels"}

    # the alembic road, through the alembic.ini and env files init wrote
    other = project.make_db()
    upgraded = project.alembic("-n", "control", "upgrade", "head", env={"CONTROL_DATABASE_URL": url_for(project.server, other)})
    assert upgraded.returncode == 0, upgraded.stderr
    assert project.query(other, "SELECT version_num FROM alembic_version")[0][0] == first.name[:14]
    assert project.query(other, "SELECT count(*) FROM tenants")[0][0] == 0

    # a second run changes nothing and writes no second tenants file
    again = project.cli("init", "--tenants-table")
    assert again.returncode == 0 and "made migrations" not in again.stdout
    assert "left migrations/control as it is" in again.stdout
    assert len(list(project.migrations("control").glob("*.sql"))) == 1


@pytest.mark.files_only
def test_init_tenants_table_with_migrations_dir_set_writes_nothing(project):
    _emptied(project)
    refused = project.cli("init", "--tenants-table", env={"MIGRATIONS_DIR": "db"})
    assert refused.returncode == 2 and refused.stderr.startswith("error: --tenants-table"), refused.stderr
    assert "Traceback" not in refused.stderr and list(project.root.iterdir()) == []
