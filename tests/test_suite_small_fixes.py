"""The smaller items of the first-hour review, each run as a user would."""

from __future__ import annotations

import json

import pytest
from pg import url_for


def test_a_plain_word_password_is_masked_as_a_password_not_as_a_word(project):
    project.query("postgres", "DROP ROLE IF EXISTS plainpw")
    project.query("postgres", "CREATE ROLE plainpw LOGIN PASSWORD 'not-this-one'")
    try:
        url = url_for(project.server, project.control_db).replace(
            url_for(project.server, project.control_db).split("@")[0], "postgresql://plainpw:password")
        result = project.cli("status", "--control", env={"CONTROL_DATABASE_URL": url})
        assert 'password authentication failed for user "plainpw"' in result.stderr + result.stdout
        assert "plainpw:***@" in result.stderr + result.stdout
        assert ":password@" not in result.stderr + result.stdout
        shown = project.cli("dev", "url", env={"CONTROL_DATABASE_URL": url})
        assert shown.stdout.startswith("postgresql://plainpw:***@")
    finally:
        project.query("postgres", "DROP ROLE IF EXISTS plainpw")


def test_config_is_accepted_after_the_subcommand(project, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    project.migrate_control()
    ini = project.root / "alembic.ini"
    for args in (["status", "--control", "--config", str(ini)], ["status", "--control", f"--config={ini}"],
                 ["--config", str(ini), "status", "--control"]):
        result = project.cli(*args, cwd=elsewhere)
        assert result.returncode == 0, (args, result.stderr)
    missing = project.cli("status", "--config", "nope.ini", cwd=elsewhere)
    assert missing.returncode == 2 and "config file nope.ini does not exist" in missing.stderr


@pytest.mark.parametrize("xarg, message", [
    ("timeout=abc", "-x timeout must be a number of seconds (0 = no limit), not 'abc'"),
    ("lock_timeout=-1", "-x lock_timeout must be a number of seconds"),
    ("timout=5", "unknown -x timout for the control environment (did you mean timeout?"),
])
def test_alembic_x_arguments_are_checked_in_one_line(project, xarg, message):
    result = project.alembic("-n", "control", "-x", xarg, "upgrade", "head")
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert project.version(project.control_db) is None


def test_alembic_x_timeout_still_works(project):
    result = project.alembic("-n", "control", "-x", "timeout=30", "-x", "lock_timeout=2", "upgrade", "head")
    assert result.returncode == 0, result.stderr
    assert project.version(project.control_db) == "20250115120000"


def test_list_with_both_flags_shows_both_chains(project):
    both = json.loads(project.cli("list", "--control", "--tenant", "--json").stdout)
    assert set(both) == {"control", "tenant"} and both["control"] and both["tenant"]
    only = json.loads(project.cli("list", "--tenant", "--json").stdout)
    assert set(only) == {"tenant"}


@pytest.mark.parametrize("args, message", [
    (["--all-tenants", "--canary", "0"], "Invalid value for '--canary'"),
    (["--control", "--canary", "2"], "--canary stages a rollout over tenants"),
])
def test_canary_misuse_is_a_usage_error(project, args, message):
    result = project.cli("migrate", *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert project.version(project.control_db) is None


@pytest.mark.files_only
def test_a_duplicate_version_is_a_usage_error(project):
    project.write("tenant", "20250101090000_again.sql", "SELECT 1;\n")
    result = project.cli("list")
    assert result.returncode == 2
    assert "duplicate version 20250101090000" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_tenant_version_with_control_says_it_is_a_tenant_version(project):
    project.migrate_control()
    result = project.cli("mark", "--apply", "20250201080000", "--control")
    assert result.returncode == 2
    assert "20250201080000 is a tenant migration, not a control one: mark it with --tenant ID or --all-tenants" \
        in result.stderr
