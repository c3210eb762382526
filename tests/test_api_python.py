"""The Python API (grapevine_alembic.api), as a provisioning service uses it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

import pg

PROGRAM = textwrap.dedent(
    """
    import asyncio, json, logging, sys
    from grapevine_alembic.api import migrate_database_async

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)

    async def main(urls, folder):
        results = await asyncio.gather(*(migrate_database_async(url, folder, timeout=300, retries=1) for url in urls))
        out = []
        for result in results:
            applied, total, ok = result  # the previous tool's shape
            out.append({"applied": applied, "total": total, "ok": ok, "version": result.version,
                        "error": result.error, "notices": list(result.notices)})
        print(json.dumps(out))

    asyncio.run(main(json.loads(sys.argv[1]), sys.argv[2]))
    """
)


def run_program(project, urls, folder):
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM, json.dumps(urls), str(folder)],
        capture_output=True, text=True, timeout=300, cwd=project.root,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), result.stderr


def test_asyncio_program_migrates_ten_databases_at_once_then_mixes_with_the_cli(project, pg_server):
    project.migrate_control()
    project.write("tenant", "20250301000000_notice.sql", "DO $$ BEGIN RAISE NOTICE 'hello from the api'; END $$;\n")
    tenants = [f"api{i}" for i in range(10)]
    databases = [project.add_tenant(t) for t in tenants]
    urls = [pg.url_for(pg_server, db) for db in databases]
    folder = project.migrations("tenant")
    total = len(list(folder.glob("2*.sql")))

    results, stderr = run_program(project, urls, folder)
    assert [(r["applied"], r["total"], r["ok"]) for r in results] == [(total, total, True)] * 10
    assert all(r["version"] == "20250301000000" and r["error"] is None for r in results)
    assert all(any("hello from the api" in n for n in r["notices"]) for r in results)
    assert "hello from the api" in stderr  # through the grapevine_alembic logger
    for database in databases:
        assert project.version(database) == "20250301000000"
        assert [row[1] for row in project.ledger(database)] == ["migrate"] * total

    # the CLI finds them up to date, then applies a new file; the API then has nothing to do
    status = project.cli("status", "--all-tenants")
    assert status.returncode == 0, status.stdout + status.stderr
    project.write("tenant", "20250302000000_more.sql", "CREATE TABLE more_api (x int);\n")
    migrate = project.cli("migrate", "--tenant", tenants[0])
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    results, _ = run_program(project, urls, folder)
    assert [r["applied"] for r in results] == [0] + [1] * 9
    assert all(r["ok"] and r["version"] == "20250302000000" for r in results)
    for database in databases:
        assert "more_api" in project.tables(database)
        assert len(project.ledger(database)) == total + 1


def test_database_failures_are_results_not_exceptions(project, pg_server):
    from grapevine_alembic.api import migrate_database

    project.migrate_control()
    database = project.add_tenant("apibad")
    folder = project.migrations("tenant")
    wrong = migrate_database(pg.url_for(pg_server, database, password="not-the-password"), folder, retries=0)
    assert (wrong.applied, wrong.ok) == (0, False)
    assert "password authentication failed" in wrong.error and "not-the-password" not in wrong.error

    unreachable = migrate_database("postgresql://u:secret@127.0.0.1:1/x", folder, retries=0)
    assert not unreachable.ok and "secret" not in unreachable.error

    project.write("tenant", "20250301000000_broken.sql", "CREATE TABLE ok_table (x int);\nSELECT missing_column FROM ok_table;\n")
    broken = migrate_database(pg.url_for(pg_server, database), folder, retries=0)
    assert not broken.ok and broken.applied == len(list(folder.glob("2*.sql"))) - 1
    assert "20250301000000_broken.sql:2:" in broken.error
    assert "ok_table" not in project.tables(database)  # the failing file left nothing
    assert pg_server.password not in broken.error


def test_programming_errors_raise(tmp_path, pg_server):
    from grapevine_alembic.api import migrate_database

    with pytest.raises(FileNotFoundError):
        migrate_database(pg.url_for(pg_server, "postgres"), tmp_path / "nowhere")
    with pytest.raises(ValueError):
        migrate_database("mysql://x/y", tmp_path)
    (tmp_path / "20250101000000_a.sql").write_text("SELECT 1;")
    (tmp_path / "20250101000000_b.sql").write_text("SELECT 2;")
    with pytest.raises(ValueError, match="duplicate version"):
        migrate_database(pg.url_for(pg_server, "postgres"), tmp_path)


def test_dry_run_writes_nothing(project, pg_server):
    from grapevine_alembic.api import migrate_database

    project.migrate_control()
    database = project.add_tenant("apidry")
    result = migrate_database(pg.url_for(pg_server, database), project.migrations("tenant"), dry_run=True)
    assert result.ok and result.applied == 0 and result.version is None
    assert project.version(database) is None and project.tables(database) == set()


def test_lock_timeout_bounds_each_lock_wait_as_the_clis(project, pg_server):
    """``lock_timeout=`` is ``--lock-timeout``: with another session holding the table, 0.3 s per attempt, where
    the default (5 s) could not end two attempts in under 10 s."""
    import time

    from grapevine_alembic.api import migrate_database

    project.migrate_control()
    database = project.add_tenant("apilock")
    project.clear("tenant")
    project.write("tenant", "20250101000000_alter.sql", "ALTER TABLE held ADD COLUMN y int;\n")
    project.query(database, "CREATE TABLE held (x int)")
    holder = pg.connect(pg_server, database)
    try:
        holder.cursor().execute("BEGIN; LOCK TABLE held IN ACCESS SHARE MODE")
        started = time.monotonic()
        result = migrate_database(pg.url_for(pg_server, database), project.migrations("tenant"), lock_timeout=0.3,
                                  retries=1)
        took = time.monotonic() - started
    finally:
        holder.close()
    assert not result.ok and "lock timeout" in result.error and took < 10, (took, result.error)
    with pytest.raises(ValueError, match="must not be negative"):
        migrate_database(pg.url_for(pg_server, database), project.migrations("tenant"), lock_timeout=-1)
    assert project.version(database) is None


def test_migrations_dir_moves_the_folders_for_the_cli_and_alembic(project, tmp_path):
    """MIGRATIONS_DIR (the previous tool's variable) wins over alembic.ini, for both roads."""
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "control").mkdir(parents=True)
    (elsewhere / "tenant").mkdir()
    for path in project.migrations("control").glob("*.sql"):
        (elsewhere / "control" / path.name).write_bytes(path.read_bytes())
    (elsewhere / "tenant" / "20250101000000_moved.sql").write_text("CREATE TABLE moved_here (x int);\n")
    env = {"MIGRATIONS_DIR": str(elsewhere)}
    assert project.cli("migrate", "--control", env=env).returncode == 0
    listing = project.cli("list", "--tenant", env=env)
    assert "20250101000000" in listing.stdout and "moved" in listing.stdout, listing.stdout
    database = project.add_tenant("moved")
    result = project.cli("migrate", "--tenant", "moved", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "moved_here" in project.tables(database)
    history = project.alembic("-n", "tenant", "history", env=env)
    assert "20250101000000" in history.stdout and "20250201080000" not in history.stdout, history.stdout
    # from .env too, relative to the project root
    (project.root / ".env").write_text(f"MIGRATIONS_DIR={os.path.relpath(elsewhere, project.root)}\n")
    other = project.add_tenant("moved2")
    upgrade = project.alembic("-n", "tenant", "-x", "tenant=moved2", "upgrade", "head")
    assert upgrade.returncode == 0, upgrade.stderr
    assert "moved_here" in project.tables(other)


def test_the_api_takes_the_projects_own_lock_key_as_the_cli_does(project, pg_server):
    """alembic.ini's ``[grapevine] lock_key`` is the lock a CLI run of the project holds on each database: the API's
    migrate_database and provision_database (which find alembic.ini above their folder) wait for the same one."""
    from grapevine_alembic.api import migrate_database, provision_database
    from grapevine_alembic.database.jobs.cloning import lock_keys
    from grapevine_alembic.database.jobs.provisioning import template_name

    ini = project.root / "alembic.ini"
    ini.write_text(ini.read_text().replace("[grapevine]\n", "[grapevine]\nlock_key = 4242\n", 1))
    project.migrate_control()
    database = project.add_tenant("keyed")
    holders = [pg.connect(pg_server, name) for name in (database, "postgres")]  # as CLI runs of this project hold them
    try:
        holders[0].cursor().execute("SELECT pg_advisory_lock(4242)")  # migrate's, on the database
        holders[1].cursor().execute("SELECT pg_advisory_lock(%s, %s)", lock_keys(4242, template_name("tenant")))  # provision's
        waited = migrate_database(pg.url_for(pg_server, database), project.migrations("tenant"), timeout=1, retries=0)
        provisioned = provision_database(pg.url_for(pg_server, "db_keyed_new"), project.migrations("tenant"), timeout=1)
    finally:
        for holder in holders:
            holder.close()
    assert not waited.ok and "another migration run holds the lock" in waited.error, waited.error
    assert project.version(database) is None
    assert not provisioned.ok and "another run held the template lock" in provisioned.error, provisioned.error
    assert not pg.database_exists(pg_server, "db_keyed_new")
    assert migrate_database(pg.url_for(pg_server, database), project.migrations("tenant")).ok
