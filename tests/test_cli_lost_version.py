"""An applied file that disappears (deleted, or a branch switched) leaves a database that a printed command
moves back; ``migrate`` speaks of such a version as ``status`` does."""

from __future__ import annotations

import json
import shlex

import pytest

HEAD, PREVIOUS = "20250201080000", "20250120143000"


def _pasted_command(text: str) -> list[str]:
    """The command after 'with: ' in a printed line, as a user pastes it."""
    command = text.split("with: ", 1)[1].splitlines()[0]
    assert command.startswith("grapevine-migrations "), command
    return shlex.split(command)[1:]


@pytest.fixture
def migrated(project):
    project.migrate_control()
    project.add_tenant("acme")
    assert project.cli("migrate", "--tenant", "acme").returncode == 0
    return project


def test_a_head_whose_file_was_deleted_is_moved_back_by_the_printed_command(migrated):
    [head_file] = migrated.migrations("tenant").glob(f"{HEAD}_*.sql")
    head_file.unlink()  # a branch switch
    status = migrated.cli("status", "--tenant", "acme")
    assert status.returncode == 1
    command = f"grapevine-migrations mark --unapply {HEAD} --tenant acme"
    assert command in status.stdout, status.stdout
    migrate = migrated.cli("migrate", "--tenant", "acme")
    assert migrate.returncode == 1 and command in migrate.stdout, migrate.stdout

    pasted = migrated.cli(*_pasted_command(migrate.stdout))
    assert pasted.returncode == 0, pasted.stdout + pasted.stderr
    assert f"alembic_version {HEAD} -> {PREVIOUS}" in pasted.stdout
    assert migrated.version("db_acme") == PREVIOUS
    assert HEAD not in [v for v, _ in migrated.ledger("db_acme")]
    after = migrated.cli("status", "--tenant", "acme", "--exit-code")
    assert after.returncode == 0, after.stdout + after.stderr
    assert migrated.alembic("-n", "tenant", "-x", "tenant=acme", "current").stdout.split()[0] == PREVIOUS
    again = migrated.cli("mark", "--unapply", HEAD, "--tenant", "acme")
    assert again.returncode == 1 and f"unknown version {HEAD}" in again.stdout  # nothing left to move


def test_dry_run_shows_the_move_and_changes_nothing(migrated):
    [head_file] = migrated.migrations("tenant").glob(f"{HEAD}_*.sql")
    head_file.unlink()
    dry = migrated.cli("mark", "--unapply", HEAD, "--tenant", "acme", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert f"would: unmark {HEAD}; alembic_version {HEAD} -> {PREVIOUS}" in dry.stdout
    assert migrated.version("db_acme") == HEAD


def test_migrate_warns_about_an_applied_version_whose_file_was_deleted(migrated):
    [middle] = migrated.migrations("tenant").glob(f"{PREVIOUS}_*.sql")
    middle.unlink()
    status = migrated.cli("status", "--tenant", "acme")
    assert status.returncode == 1 and f"the database records {PREVIOUS}, which no migration file has" in status.stdout
    migrate = migrated.cli("migrate", "--tenant", "acme", "--json")
    assert migrate.returncode == 0
    assert json.loads(migrate.stdout)["databases"][0]["unknown"] == [PREVIOUS]
    text = migrated.cli("migrate", "--tenant", "acme")
    assert text.returncode == 0
    warning = f"warning: acme: the database records {PREVIOUS}, which no migration file has"
    assert warning in text.stdout, text.stdout
    pasted = migrated.cli(*_pasted_command(text.stdout.split(warning, 1)[1]))
    assert pasted.returncode == 0, pasted.stdout + pasted.stderr
    assert migrated.version("db_acme") == HEAD  # a row below the head: only the row goes
    assert migrated.cli("status", "--tenant", "acme").returncode == 0
    assert "no migration file has" not in migrated.cli("migrate", "--tenant", "acme").stdout
