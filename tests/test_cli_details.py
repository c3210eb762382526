"""Smaller differences a user switching over noticed: each one as the user saw it."""

from __future__ import annotations

import json

import pytest

from pg import connect

A, B, C, D = "20250101090000", "20250108100000", "20250120143000", "20250201080000"


@pytest.fixture
def acme(project):
    project.migrate_control()
    project.add_tenant("acme")
    return project


def test_dry_run_on_a_legacy_database_shows_the_version_status_shows(acme):
    [first] = acme.migrations("tenant").glob(f"{A}_*.sql")
    connection = connect(acme.server, "db_acme")
    connection.cursor().execute(first.read_text())
    connection.close()
    acme.query("db_acme", "CREATE TABLE schema_migrations (version varchar PRIMARY KEY, applied_at timestamptz)")
    acme.query("db_acme", "INSERT INTO schema_migrations VALUES (%s, now())", (A,))
    status = json.loads(acme.cli("status", "--tenant", "acme", "--json").stdout)
    assert status["databases"][0]["version"] == A
    dry = acme.cli("migrate", "--tenant", "acme", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert f"acme (db_acme): at {A}, would apply:" in dry.stdout and "(none)" not in dry.stdout


def test_dry_run_never_prints_would_apply_followed_by_nothing(acme):
    assert acme.cli("mark", "--apply", D, "--tenant", "acme").returncode == 0  # D recorded ahead, alone
    assert acme.cli("mark", "--apply", C, "--range", "--tenant", "acme").returncode == 0  # head C; only D left
    dry = acme.cli("migrate", "--tenant", "acme", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    lines = dry.stdout.splitlines()
    header = lines.index(f"acme (db_acme): at {C}, would apply:")
    assert lines[header + 1].split()[0] == D and "marked applied" in lines[header + 1], dry.stdout


@pytest.mark.files_only
def test_list_json_paths_are_relative_to_the_project_root(project):
    listing = project.cli("list", "--json")
    assert listing.returncode == 0, listing.stderr
    files = [m["file"] for chain in json.loads(listing.stdout).values() for m in chain]
    assert files and all(f.startswith("migrations/") for f in files), files
    text = project.cli("list").stdout
    assert all(f in text for f in files)  # the same paths as the text view


def test_the_version_table_counts_a_missing_database_as_missing(acme):
    acme.add_tenant("ghost", create_db=False)
    status = acme.cli("status", "--all-tenants")
    rows = [line.split() for line in status.stdout.splitlines()]
    assert ["missing", "1"] in rows and ["error", "1"] not in rows, status.stdout
    doc = json.loads(acme.cli("status", "--all-tenants", "--json").stdout)
    assert doc["versions"] == {"(none)": 1, "missing": 1}


@pytest.mark.parametrize("args, start", [
    (["migrate", "--bogus"], "error: No such option '--bogus'"),
    (["migrat"], "error: No such command 'migrat'"),
    (["status", "--max-parallel", "0"], "error: Invalid value for '--max-parallel'"),
])
@pytest.mark.files_only
def test_command_line_mistakes_get_the_tools_one_error_line(project, args, start):
    result = project.cli(*args)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith(start), result.stderr
    assert "Error:" not in result.stderr and "Usage:" not in result.stderr


def test_unknown_version_suggestions_include_the_chains_head(acme):
    result = acme.cli("mark", "--apply", "20250108100001", "--tenant", "acme")
    assert result.returncode == 2
    assert "unknown version 20250108100001" in result.stderr
    assert f"{D} (head)" in result.stderr, result.stderr
