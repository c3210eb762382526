"""Exit codes as the previous tool had them: status with pending files exits 0 (``--exit-code``: 3), and a
command that writes but was given no target exits 1."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def behind(project):
    project.migrate_control()
    project.add_tenant("acme")
    return project


def test_status_with_pending_files_exits_0_and_3_with_exit_code(behind):
    plain = behind.cli("status", "--tenant", "acme")
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert "4 pending" in plain.stdout  # still says so
    flagged = behind.cli("status", "--tenant", "acme", "--exit-code")
    assert flagged.returncode == 3, flagged.stdout + flagged.stderr
    document = behind.cli("status", "--tenant", "acme", "--json")
    assert document.returncode == 0 and json.loads(document.stdout)["exit_code"] == 0
    document = behind.cli("status", "--tenant", "acme", "--json", "--exit-code")
    assert document.returncode == 3 and json.loads(document.stdout)["exit_code"] == 3
    assert behind.cli("migrate", "--tenant", "acme").returncode == 0
    assert behind.cli("status", "--tenant", "acme", "--exit-code").returncode == 0  # up to date


def test_status_still_fails_on_drift_and_missing_databases(behind):
    behind.add_tenant("ghost", create_db=False)
    assert behind.cli("status", "--tenant", "ghost").returncode == 1
    assert behind.cli("migrate", "--tenant", "acme").returncode == 0
    behind.query("db_acme", "INSERT INTO schema_migrations (version, applied_by) VALUES ('20240101000000', 'migrate')")
    assert behind.cli("status", "--tenant", "acme").returncode == 1


@pytest.mark.parametrize("command", ["migrate", "mark --apply 20250101090000", "reset --force"])
def test_a_missing_target_exits_1_with_one_error_line(project, command):
    result = project.cli(*command.split())
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: {command.split()[0]} needs a target: --control, --all-tenants, --tenant ID or --tenants-file"]
    document = project.cli(*command.split(), "--json") if command == "migrate" else None
    if document is not None:
        assert document.returncode == 1 and json.loads(document.stdout)["exit_code"] == 1


@pytest.mark.parametrize("command", ["migrate --all-tenants", "status --all-tenants", "list --tenant"])
def test_a_missing_migration_folder_is_a_usage_error(behind, command):
    """A project without migrations/tenant is misconfigured: exit 2, one line naming the folder, nothing run."""
    import shutil

    folder = behind.migrations("tenant")
    shutil.rmtree(folder)
    result = behind.cli(*command.split())
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [f"error: migration directory {folder} does not exist"], result.stderr
    assert behind.version("db_acme") is None  # nothing was applied to the tenant
