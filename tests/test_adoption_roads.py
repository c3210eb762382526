"""The previous tool's shapes on every road: check, migrate --dry-run and offline --sql."""

from __future__ import annotations

import pytest
import json

from pg import connect
from reference_applier import apply_like_previous_tool, dump

SHAPES = {
    "20300101000000_open_begin.sql": "BEGIN;\nCREATE TABLE a (id int);\nINSERT INTO a VALUES (1);\n",
    "20300102000000_lone_commit.sql": "CREATE TABLE b (id int);\nCOMMIT;\n",
    "20300103000000_only_comments.sql": "-- reserved for a later change\n",
    "20300104000000_two_transactions.sql": (
        "BEGIN;\nCREATE TYPE mood AS ENUM ('calm');\nCOMMIT;\nBEGIN;\nALTER TYPE mood ADD VALUE 'busy';\nCOMMIT;\n"
        "BEGIN;\nCREATE TABLE m (x mood DEFAULT 'busy');\nINSERT INTO m DEFAULT VALUES;\nCOMMIT;\n"
    ),
}


def _write_shapes(project):
    project.clear("tenant")
    for name, sql in SHAPES.items():
        project.write("tenant", name, sql)


@pytest.mark.files_only
def test_check_warns_about_each_shape_and_strict_fails(project):
    _write_shapes(project)
    result = project.cli("check", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    findings = json.loads(result.stdout)["findings"]
    codes = {(f["file"].rsplit("/", 1)[-1], f["code"]) for f in findings if f["level"] == "warning"}
    assert {
        ("20300101000000_open_begin.sql", "begin-without-commit"),
        ("20300102000000_lone_commit.sql", "commit-without-begin"),
        ("20300103000000_only_comments.sql", "empty-file"),
        ("20300104000000_two_transactions.sql", "several-transactions"),
    } <= codes
    assert not [f for f in findings if f["level"] == "error"]
    open_begin = next(f for f in findings if f["code"] == "begin-without-commit")
    assert open_begin["line"] == 1 and open_begin["fix"] == "add COMMIT; at the end of the file"
    strict = project.cli("check", "--strict")
    assert strict.returncode == 1


def test_dry_run_lists_the_shapes_and_writes_nothing(project):
    project.migrate_control()
    _write_shapes(project)
    database = project.add_tenant("dry")
    result = project.cli("migrate", "--tenant", "dry", "--dry-run", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    [db] = json.loads(result.stdout)["databases"]
    assert db["pending"] == [name[:14] for name in SHAPES]
    assert project.tables(database) == set()


def test_offline_sql_applies_like_the_previous_tool(project, pg_server):
    _write_shapes(project)
    offline = project.alembic("-n", "tenant", "upgrade", "head", "--sql")
    assert offline.returncode == 0, offline.stderr
    reference, replayed = project.make_db(), project.make_db()
    for name, sql in SHAPES.items():
        apply_like_previous_tool(pg_server, reference, sql, name[:14])
    connection = connect(pg_server, replayed)
    try:
        connection.cursor().execute(offline.stdout)  # what a DBA would feed to psql
    finally:
        connection.close()
    assert dump(pg_server, replayed, data=False) == dump(pg_server, reference, data=False)
    assert dump(pg_server, replayed, data=True) == dump(pg_server, reference, data=True)
    assert project.version(replayed) == "20300104000000"
    assert [v for v, _ in project.ledger(replayed)] == [name[:14] for name in SHAPES]
