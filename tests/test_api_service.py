"""The provisioning service's own call, unchanged but for its import line, in the previous tool's layout
(no alembic.ini): ``grapevine_alembic.service``, and every ``grapevine_alembic.api`` entry point."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pg

HEAD = "20250201080000"


# The service's code as it was, after the one changed import; a ticking task measures the event loop.
SERVICE = textwrap.dedent(
    """
    import asyncio, inspect, json, sys, time
    import grapevine_alembic.service as module
    from grapevine_alembic.service import get_tenant_migrations_dir, migrate_database

    async def main(url):
        gaps, last, running = [], time.monotonic(), True

        async def tick():
            nonlocal last
            while running:
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        ticker = asyncio.create_task(tick())
        started = time.monotonic()
        applied, total, success = await migrate_database(url, get_tenant_migrations_dir(), timeout=300, retries=1)
        took = time.monotonic() - started
        running = False
        await ticker
        print(json.dumps({
            "result": [applied, total, success], "took": took, "max_gap": max(gaps, default=took), "ticks": len(gaps),
            "names": sorted(n for n in vars(module) if not n.startswith("_")),
            "signature": str(inspect.signature(migrate_database)),
            "coroutine": inspect.iscoroutinefunction(migrate_database),
            "folder": str(get_tenant_migrations_dir()),
        }))

    asyncio.run(main(sys.argv[1]))
    """
)


def _run(project, program: str, *args: str) -> dict:
    run = subprocess.run([sys.executable, "-c", program, *args], capture_output=True, text=True, timeout=300,
                         cwd=project.root / "migrations")  # the service runs from a folder below the root
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_the_previous_tools_service_call_works_with_one_import_changed(project, pg_server):
    project.without_alembic_ini()
    project.write("tenant", "20250301000000_slow.sql", "DO $$ BEGIN PERFORM pg_sleep(2); END $$;\n")
    database = project.make_db()
    out = _run(project, SERVICE, pg.url_for(pg_server, database))
    assert out["result"] == [5, 5, True]
    assert out["names"] == ["get_tenant_migrations_dir", "migrate_database"]
    assert out["coroutine"] and out["signature"].startswith("(url: str, migrations_dir:")
    assert out["signature"].endswith("timeout: float = 300, retries: int = 1) -> tuple[int, int, bool]")
    assert out["folder"] == str(project.migrations("tenant").resolve())
    # the loop kept serving while the 2-second file ran: no pause near its length
    assert out["took"] >= 2 and out["max_gap"] < 1.0 and out["ticks"] > 20, out
    assert project.version(database) == "20250301000000" and len(project.ledger(database)) == 5


ENTRY_POINTS = textwrap.dedent(
    """
    import asyncio, json, sys
    from grapevine_alembic import api

    migrated, copied, folder = sys.argv[1:]
    blocking = api.migrate_database(migrated, folder)
    again = asyncio.run(api.migrate_database_async(migrated, folder))
    provisioned = api.provision_database(copied, folder)
    print(json.dumps([[blocking.ok, blocking.applied, blocking.version, blocking.error],
                      [again.ok, again.applied, again.version, again.error],
                      [provisioned.ok, provisioned.version, provisioned.error]]))
    """
)


def test_every_api_entry_point_works_without_alembic_ini(project, pg_server):
    project.without_alembic_ini()
    migrated, copied = project.make_db(), pg.unique_db_name()
    project.make_db.created.append(copied)  # created by provision_database, dropped after the test
    out = _run(project, ENTRY_POINTS, pg.url_for(pg_server, migrated), pg.url_for(pg_server, copied), "tenant")
    assert out == [[True, 4, HEAD, None], [True, 0, HEAD, None], [True, HEAD, None]]
    assert project.version(migrated) == HEAD and project.version(copied) == HEAD


FAILING = textwrap.dedent(
    """
    import sys
    from grapevine_alembic.api import migrate_database

    print(migrate_database(sys.argv[1], sys.argv[2], retries=0).error)
    """
)


def test_a_failing_file_is_named_from_the_project_root_without_alembic_ini(project, pg_server):
    project.without_alembic_ini()
    project.migrate_control()
    database = project.add_tenant("acme")
    project.write("tenant", "20250301000000_bad.sql", "CREATE TABLE fine (x int);\nSELECT 1 / 0;\n")
    shown = "migrations/tenant/20250301000000_bad.sql:2: division by zero"
    cli = project.cli("migrate", "--tenant", "acme", cwd=project.root / "migrations")
    assert cli.returncode == 1 and f"acme (db_acme): {shown}" in cli.stdout, cli.stdout + cli.stderr
    api = subprocess.run([sys.executable, "-c", FAILING, pg.url_for(pg_server, database), "migrations/tenant"],
                         capture_output=True, text=True, timeout=300, cwd=project.root)
    assert api.stdout.startswith(shown), api.stdout + api.stderr
    assert str(project.root) not in cli.stdout + api.stdout
    assert "fine" not in project.tables(database)
