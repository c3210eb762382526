"""Zero-config on the previous tool's layout: without alembic.ini every command
works on ./migrations/control and ./migrations/tenant (or MIGRATIONS_DIR), from the root or below it."""

from __future__ import annotations

import json
import shutil


def _without_ini(project):
    return project.without_alembic_ini()


def test_every_command_works_without_alembic_ini(project):
    _without_ini(project)
    assert project.cli("migrate", "--control").returncode == 0
    project.add_tenant("acme")
    run = project.cli("migrate", "--control", "--all-tenants", "--json")
    assert run.returncode == 0, run.stderr
    assert [d["version"] for d in json.loads(run.stdout)["databases"]] == ["20250115120000", "20250201080000"]
    status = project.cli("status")
    assert status.returncode == 0, status.stdout + status.stderr
    listed = json.loads(project.cli("list", "--json").stdout)
    assert len(listed["control"]) == 2 and len(listed["tenant"]) == 4
    assert project.cli("check").returncode == 0
    created = project.cli("create", "control", "add region")
    new_file = project.root / created.stdout.strip().splitlines()[-1]
    assert created.returncode == 0 and new_file.parent == project.migrations("control"), created.stdout
    new_file.write_text("ALTER TABLE tenants ADD COLUMN region text;\n")
    below = project.root / "src" / "app"
    below.mkdir(parents=True)
    pending = project.cli("migrate", "--control", "--dry-run", cwd=below)  # from a folder below the root
    assert pending.returncode == 0 and "add_region" in pending.stdout, pending.stderr
    assert not (project.root / "alembic.ini").exists()


def test_migrations_dir_without_alembic_ini(project, tmp_path):
    _without_ini(project)
    moved = project.root / "db" / "sql"
    moved.parent.mkdir()
    shutil.move(str(project.root / "migrations"), moved)
    for where in ("environment", ".env"):
        env = {"MIGRATIONS_DIR": "db/sql"} if where == "environment" else {}
        if where == ".env":
            (project.root / ".env").write_text("MIGRATIONS_DIR=db/sql\n")
        listed = project.cli("list", "--control", "--json", env=env)
        assert listed.returncode == 0, (where, listed.stderr)
        assert [m["version"] for m in json.loads(listed.stdout)["control"]] == ["20250101090000", "20250115120000"]
    assert project.cli("migrate", "--control").returncode == 0
    assert project.version(project.control_db) == "20250115120000"


def test_no_alembic_ini_and_no_migrations_is_one_line(project, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = project.cli("status", cwd=empty)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: no alembic.ini and no migrations/control or migrations/tenant in {empty}"
                                     " or any parent folder (run from the project root, set MIGRATIONS_DIR, or pass --config)")
