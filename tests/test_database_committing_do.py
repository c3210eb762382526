"""A DO block whose PL/pgSQL body runs COMMIT or ROLLBACK runs outside a transaction, as psql runs it."""

from __future__ import annotations

import pytest

BATCHED = (
    "DO $$\nBEGIN\n  FOR i IN 1..3 LOOP\n    INSERT INTO t VALUES (i);\n    COMMIT;  -- one batch at a time\n"
    "  END LOOP;\n  INSERT INTO t VALUES (99);\n  ROLLBACK;\nEND\n$$;\n"
)


def _migrated(project, road: str, files: dict[str, str]) -> str:
    """The tenant chain made of ``files``, migrated on ``road`` without an error; the tenant's database."""
    project.migrate_control()
    database = project.add_tenant("acme")
    project.clear("tenant")
    for name, sql in files.items():
        project.write("tenant", name, sql)
    if road == "cli":
        result = project.cli("migrate", "--tenant", "acme")
    else:
        result = project.alembic("-n", "tenant", "-x", "tenant=acme", "upgrade", "head")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "invalid transaction termination" not in result.stdout + result.stderr
    return database


@pytest.mark.parametrize("road", ["cli", "alembic"])
def test_do_block_that_commits_runs_outside_a_transaction(project, road):
    database = _migrated(project, road, {"20240101000000_t.sql": "CREATE TABLE t (a int);\n",
                                         "20240102000000_batches.sql": BATCHED})
    assert project.version(database) == "20240102000000"
    assert project.query(database, "SELECT a FROM t ORDER BY a") == [(1,), (2,), (3,)]  # 99 rolled back
    recorded = project.query(database, "SELECT version FROM schema_migrations ORDER BY version")
    assert recorded == [("20240101000000",), ("20240102000000",)]


@pytest.mark.files_only
def test_check_says_the_committing_do_file_runs_outside_a_transaction(project):
    project.clear("tenant")
    project.write("tenant", "20240102000000_batches.sql", BATCHED)
    result = project.cli("check")
    assert "runs outside a transaction, statement by statement (DoStmt)" in result.stdout + result.stderr


PROCEDURE = (
    "CREATE PROCEDURE fill(n int) LANGUAGE plpgsql AS $$\nBEGIN\n  FOR i IN 1..n LOOP\n"
    "    INSERT INTO t VALUES (i);\n    COMMIT;  -- one batch at a time\n  END LOOP;\nEND\n$$;\n"
)


@pytest.mark.parametrize("road", ["cli", "alembic"])
def test_call_of_a_committing_procedure_from_an_earlier_file_runs_outside_a_transaction(project, road):
    database = _migrated(project, road, {"20240101000000_t.sql": "CREATE TABLE t (a int);\n" + PROCEDURE,
                                         "20240102000000_other.sql": "CREATE TABLE u (b int);\n",
                                         "20240103000000_backfill.sql": "CALL public.fill(3);\n"})
    assert project.version(database) == "20240103000000"
    assert project.query(database, "SELECT a FROM t ORDER BY a") == [(1,), (2,), (3,)]
    assert project.query(database, "SELECT count(*) FROM schema_migrations") == [(3,)]


@pytest.mark.parametrize("road", ["cli", "alembic"])
def test_call_of_a_committing_procedure_created_in_the_same_file_runs_outside_a_transaction(project, road):
    database = _migrated(project, road, {"20240101000000_t.sql": "CREATE TABLE t (a int);\n",
                                         "20240102000000_fill.sql": PROCEDURE + "CALL fill(2);\n"})
    assert project.version(database) == "20240102000000"
    assert project.query(database, "SELECT a FROM t ORDER BY a") == [(1,), (2,)]


@pytest.mark.files_only
def test_check_says_the_file_calling_a_committing_procedure_runs_outside_a_transaction(project):
    project.clear("tenant")
    project.write("tenant", "20240101000000_t.sql", "CREATE TABLE t (a int);\n" + PROCEDURE)
    project.write("tenant", "20240102000000_backfill.sql", "CALL fill(3);\n")
    project.write("tenant", "20240103000000_plain.sql",
                  "CREATE PROCEDURE quiet() LANGUAGE plpgsql AS $$ BEGIN PERFORM 1; END $$;\nCALL quiet();\n")
    result = project.cli("check")
    output = result.stdout + result.stderr
    line = [text for text in output.splitlines() if "20240102000000_backfill.sql" in text and "outside a transaction" in text]
    assert line and "(CallStmt)" in line[0], output
    assert not [text for text in output.splitlines() if "20240103000000_plain.sql" in text and "outside a transaction" in text], output
