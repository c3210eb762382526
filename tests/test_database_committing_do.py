"""A DO block whose PL/pgSQL body runs COMMIT or ROLLBACK runs outside a transaction, as psql runs it."""

from __future__ import annotations

import pytest

BATCHED = (
    "DO $$\nBEGIN\n  FOR i IN 1..3 LOOP\n    INSERT INTO t VALUES (i);\n    COMMIT;  -- one batch at a time\n"
    "  END LOOP;\n  INSERT INTO t VALUES (99);\n  ROLLBACK;\nEND\n$$;\n"
)


@pytest.mark.parametrize("road", ["cli", "alembic"])
def test_do_block_that_commits_runs_outside_a_transaction(project, road):
    project.migrate_control()
    database = project.add_tenant("acme")
    project.clear("tenant")
    project.write("tenant", "20240101000000_t.sql", "CREATE TABLE t (a int);\n")
    project.write("tenant", "20240102000000_batches.sql", BATCHED)
    if road == "cli":
        result = project.cli("migrate", "--tenant", "acme")
    else:
        result = project.alembic("-n", "tenant", "-x", "tenant=acme", "upgrade", "head")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "invalid transaction termination" not in result.stdout + result.stderr
    assert project.version(database) == "20240102000000"
    assert project.query(database, "SELECT a FROM t ORDER BY a") == [(1,), (2,), (3,)]  # 99 rolled back
    recorded = project.query(database, "SELECT version FROM schema_migrations ORDER BY version")
    assert recorded == [("20240101000000",), ("20240102000000",)]


def test_check_says_the_committing_do_file_runs_outside_a_transaction(project):
    project.clear("tenant")
    project.write("tenant", "20240102000000_batches.sql", BATCHED)
    result = project.cli("check")
    assert "runs outside a transaction, statement by statement (DoStmt)" in result.stdout + result.stderr
