"""The Python API prints nothing: a provisioning service's stdout and stderr stay its own."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pg

FAILING_CALL = textwrap.dedent(
    """
    import json, sys
    from grapevine_alembic.api import migrate_database

    result = migrate_database(sys.argv[1], sys.argv[2], retries=0)
    sys.stdout.write(json.dumps({"ok": result.ok, "error": result.error}))
    """
)


def test_a_failing_migrate_database_call_writes_nothing_on_stderr_or_stdout(project, pg_server):
    project.migrate_control()
    database = project.add_tenant("quiet")
    project.write("tenant", "20250301000000_broken.sql", "SELECT missing_column FROM nowhere;\n")
    url = pg.url_for(pg_server, database)
    run = subprocess.run([sys.executable, "-c", FAILING_CALL, url, str(project.migrations("tenant"))],
                         capture_output=True, text=True, timeout=120, cwd=project.root)
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""  # no "migrating db_quiet failed: ..." from logging's last-resort handler
    result = json.loads(run.stdout)  # stdout holds exactly the program's own document
    assert result["ok"] is False and "20250301000000_broken.sql:1:" in result["error"]


def test_the_failure_reaches_a_configured_logger(project, pg_server):
    """Nothing is lost: a service that configures logging sees the failure on the package logger."""
    project.migrate_control()
    database = project.add_tenant("logged")
    project.write("tenant", "20250301000000_broken.sql", "SELECT missing_column FROM nowhere;\n")
    program = "import logging, sys\nlogging.basicConfig(level=logging.WARNING, stream=sys.stderr)\n" + FAILING_CALL
    run = subprocess.run([sys.executable, "-c", program, pg.url_for(pg_server, database),
                          str(project.migrations("tenant"))], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "WARNING:grapevine_alembic:migrating db_logged failed:" in run.stderr


def test_adopting_a_legacy_database_beside_a_near_miss_file_prints_nothing(project, pg_server):
    """Adoption builds Alembic's revision map, whose loader warns about near-miss names: logged, not printed."""
    project.migrate_control()
    database = project.add_tenant("legacy")
    project.query(database, "CREATE TABLE schema_migrations (version varchar PRIMARY KEY, applied_at timestamptz)")
    project.query(database, "INSERT INTO schema_migrations VALUES ('20250101090000', now())")
    [first] = project.migrations("tenant").glob("20250101090000_*.sql")
    project.query(database, first.read_text())
    project.write("tenant", "2025010109_short.sql", "SELECT 1;\n")  # looks like a migration, is not one
    program = FAILING_CALL.replace('"error": result.error', '"error": result.error, "version": result.version')
    run = subprocess.run([sys.executable, "-c", program, pg.url_for(pg_server, database),
                          str(project.migrations("tenant"))], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    result = json.loads(run.stdout)
    assert result["ok"] and result["version"] == "20250201080000", result
