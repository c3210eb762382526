"""Discovery never skips a migration-named entry silently; a year-0000 near miss warns; a
MIGRATIONS_DIR that is not a folder is a configuration error."""

from __future__ import annotations

import os

import pytest

NAME = "20250101095000_middle.sql"  # between the fixture chain's two control files


def _make(kind: str, path):
    if kind == "dangling symlink":
        path.symlink_to(path.parent / "missing.sql")
    elif kind == "directory":
        path.mkdir()
    else:
        os.mkfifo(path)


EXPECTED = {
    "dangling symlink": "is a symbolic link to",
    "directory": "is a directory",
    "fifo": "is not a regular file",
}
COMMANDS = {
    "list": ("cli", ["list", "--control"]),
    "check": ("cli", ["check"]),
    "migrate": ("cli", ["migrate", "--control"]),
    "status": ("cli", ["status", "--control"]),
    "alembic upgrade": ("alembic", ["-n", "control", "upgrade", "head"]),
}


@pytest.mark.parametrize("kind", list(EXPECTED))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_an_entry_named_like_a_migration_that_is_not_a_file_is_an_error(project, kind, command):
    _make(kind, project.migrations("control") / NAME)
    road, args = COMMANDS[command]
    result = getattr(project, road)(*args)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert NAME in output and EXPECTED[kind] in output, output
    assert "Traceback" not in output
    assert project.version(project.control_db) is None  # nothing ran around it


def test_a_symlink_to_a_real_file_is_a_migration(project, tmp_path):
    target = tmp_path / "shared.sql"
    target.write_text("CREATE TABLE from_symlink (id int);\n")
    (project.migrations("control") / NAME).symlink_to(target)
    result = project.cli("migrate", "--control")
    assert result.returncode == 0, result.stderr
    assert "from_symlink" in project.tables(project.control_db)
    assert NAME.split("_")[0] in [row[0] for row in project.ledger(project.control_db)]


def test_a_year_zero_near_miss_warns_and_migrate_runs(project):
    project.write("control", "00000000000000_baseline.sql", "CREATE TABLE never_run (id int);\n")
    result = project.cli("migrate", "--control")
    assert result.returncode == 0, result.stderr
    assert "warning: ignoring" in result.stderr and "00000000000000_baseline.sql" in result.stderr
    assert "never_run" not in project.tables(project.control_db)
    assert "tenants" in project.tables(project.control_db)


def test_other_near_misses_still_refuse_a_write(project):
    project.write("control", "2025010110000_short.sql", "SELECT 1;\n")
    result = project.cli("migrate", "--control")
    assert result.returncode != 0 and "refusing to write" in result.stderr


@pytest.mark.parametrize("where", ["a file", "a missing folder"])
def test_migrations_dir_that_is_not_a_folder_is_a_configuration_error(project, where):
    value = "alembic.ini" if where == "a file" else "no-such-folder"
    for args in (["migrate", "--control"], ["list"], ["status", "--control"]):
        result = project.cli(*args, env={"MIGRATIONS_DIR": value})
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "MIGRATIONS_DIR" in lines[0] and value in lines[0], result.stderr
