"""`migrate --dry-run` validates what `migrate` validates, database by database, and says what would fail."""

from __future__ import annotations

import json

import pytest

CONCURRENT_IN_BLOCK = "BEGIN;\nCREATE INDEX CONCURRENTLY users_name_idx ON users (id);\nCOMMIT;\n"


@pytest.fixture
def fleet(project):
    project.migrate_control()
    project.add_tenant("acme")
    project.add_tenant("globex")
    project.clear("tenant")
    project.write("tenant", "20240101000000_users.sql", "CREATE TABLE users (id int);\n")
    assert project.cli("migrate", "--tenant", "acme").returncode == 0  # acme ahead of globex
    return project


def _untouched_template(project) -> str:
    created = project.cli("create", "tenant", "to be written")
    assert created.returncode == 0, created.stderr
    return created.stdout.strip().rsplit("/", 1)[-1]


@pytest.mark.parametrize("case", ["untouched template", "CONCURRENTLY inside BEGIN/COMMIT"])
def test_dry_run_fails_where_migrate_fails(fleet, case):
    if case == "untouched template":
        name, expected = _untouched_template(fleet), "untouched template"
    else:
        name, expected = "20240102000000_index.sql", "CONCURRENTLY"
        fleet.write("tenant", name, CONCURRENT_IN_BLOCK)
    dry = fleet.cli("migrate", "--all-tenants", "--dry-run")
    assert dry.returncode == 1, dry.stdout + dry.stderr
    lines = [line for line in dry.stdout.splitlines() if "would fail" in line]
    assert [line.split()[0] for line in lines] == ["acme", "globex"], dry.stdout  # database by database
    assert all(name in line and expected in line for line in lines), dry.stdout
    doc = json.loads(fleet.cli("migrate", "--all-tenants", "--dry-run", "--json").stdout)
    assert doc["ok"] is False and all(not d["ok"] for d in doc["databases"])
    real = fleet.cli("migrate", "--all-tenants", "--json")
    assert real.returncode == 1
    real_errors = [d["error"] for d in json.loads(real.stdout)["databases"]]
    assert real_errors == [d["error"] for d in doc["databases"]]  # the same verdict, word for word
    assert fleet.version("db_globex") is None  # and nothing was written by either


def test_dry_run_of_a_valid_chain_passes(fleet):
    fleet.write("tenant", "20240102000000_more.sql", "BEGIN;\nALTER TABLE users ADD COLUMN name text;\nCOMMIT;\n")
    dry = fleet.cli("migrate", "--all-tenants", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "20240102000000" in dry.stdout and "would fail" not in dry.stdout


@pytest.mark.files_only
def test_create_transliterates_accents(project):
    created = project.cli("create", "tenant", "añadir índice")
    assert created.returncode == 0
    assert created.stdout.strip().endswith("_anadir_indice.sql")
