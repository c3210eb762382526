"""The tool's bookkeeping runs as the tool, and each file starts from a session reset before its
first transaction opens, on both roads and in the Python API.
"""

from __future__ import annotations

import json
import secrets

import pytest

from grapevine_alembic.api import migrate_database
from pg import connect, url_for

ROADS = ["migrate", "alembic"]


def _run(project, road: str, database: str, tenant: str = "acme"):
    """(exit code, output, versions applied by this run or None when the road does not say)."""
    if road == "migrate":
        result = project.cli("migrate", "--tenant", tenant, "--json", "--retries", "0")
        applied = json.loads(result.stdout)["databases"][0]["applied"] if result.stdout.strip() else None
        return result.returncode, result.stdout + result.stderr, applied
    if road == "alembic":
        result = project.alembic("-n", "tenant", "-x", f"tenant={tenant}", "upgrade", "head")
        return result.returncode, result.stdout + result.stderr, None
    outcome = migrate_database(url_for(project.server, database), project.migrations("tenant"), retries=0)
    return (0 if outcome.ok else 1), outcome.error or "", list(outcome.applied_versions)


# ---- 3. pg_dump's SET SESSION AUTHORIZATION ------------------------------------------------------


@pytest.fixture
def dump_role(project):
    """A role without rights on the tool's tables, as pg_dump --use-set-session-authorization names."""
    holder = {"role": f"dump_owner_{secrets.token_hex(4)}", "databases": []}
    project.query("postgres", f'CREATE ROLE "{holder["role"]}" NOLOGIN')
    yield holder
    for database in holder["databases"]:
        project.query(database, f'REASSIGN OWNED BY "{holder["role"]}" TO CURRENT_USER; DROP OWNED BY "{holder["role"]}"')
    project.query("postgres", f'DROP ROLE "{holder["role"]}"')


_DUMPED = {
    "transaction": "SET SESSION AUTHORIZATION '{role}';\nCREATE TABLE dumped (x int);\n",
    "no-transaction": (
        "-- grapevine: no-transaction\nSET SESSION AUTHORIZATION '{role}';\nCREATE TABLE dumped (x int);\n"
        "CREATE INDEX CONCURRENTLY dumped_x ON dumped (x);\n"
    ),
}


@pytest.mark.parametrize("road", [*ROADS, "api"])
@pytest.mark.parametrize("shape", sorted(_DUMPED))
def test_set_session_authorization_in_a_file_is_applied_and_recorded(project, dump_role, road, shape):
    role = dump_role["role"]
    database = project.tenant_chain({
        "20250101000000_dump.sql": _DUMPED[shape].format(role=role),
        "20250102000000_after.sql": "CREATE TABLE after_dump (x int);\n",
    })
    dump_role["databases"].append(database)
    project.query(database, f'GRANT CREATE ON SCHEMA public TO "{role}"')  # what the dump's owner needs

    code, output, _ = _run(project, road, database)
    assert code == 0, output
    owners = dict(project.query(database, "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'"))
    assert owners["dumped"] == role  # the file ran as the dump's owner
    assert owners["after_dump"] == project.server.superuser  # the next file as the tool
    assert owners["schema_migrations"] == project.server.superuser
    # the ledger row was written as the tool: the dump's owner could not have
    assert not project.query(database, "SELECT has_table_privilege(%s, 'schema_migrations', 'INSERT')", (role,))[0][0]
    assert project.version(database) == "20250102000000"
    assert [row[0] for row in project.ledger(database)] == ["20250101000000", "20250102000000"]

    again, output, applied = _run(project, road, database)  # a second run has nothing to do
    assert again == 0, output
    assert applied in (None, [])
    assert project.version(database) == "20250102000000"
    assert len(project.ledger(database)) == 2


# ---- 4. transaction characteristics never leak into the next file --------------------------------

_LEAKS = {
    "read-only": "SET default_transaction_read_only = on;",
    "characteristics": "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY;",
    "serializable": "SET default_transaction_isolation = 'serializable';",
    "all-three": "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY, DEFERRABLE;",
}

_CAPTURE = (
    "CREATE TABLE modes AS SELECT current_setting('transaction_isolation') AS isolation,"
    " current_setting('transaction_read_only') AS read_only, current_setting('transaction_deferrable') AS is_deferrable;\n"
)


def _defaults(project, database: str) -> tuple[str, str, str]:
    """What a fresh session of this database runs at."""
    conn = connect(project.server, database)
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT current_setting('default_transaction_isolation'), current_setting('default_transaction_read_only'),"
                " current_setting('default_transaction_deferrable')"
            )
            return cursor.fetchone()
    finally:
        conn.close()


@pytest.mark.parametrize("road", [*ROADS, "api"])
@pytest.mark.parametrize("leak", sorted(_LEAKS))
def test_transaction_characteristics_end_with_the_file_that_set_them(project, road, leak):
    database = project.tenant_chain({
        "20250101000000_leak.sql": f"CREATE TABLE first_t (x int);\n{_LEAKS[leak]}\n",
        "20250102000000_capture.sql": _CAPTURE,
        "20250103000000_empty.sql": "-- records its version only\n",
    })
    code, output, _ = _run(project, road, database)
    assert code == 0, output
    assert project.query(database, "SELECT isolation, read_only, is_deferrable FROM modes") == [_defaults(project, database)]
    assert project.version(database) == "20250103000000"


@pytest.mark.parametrize("road", ROADS)
def test_a_file_with_several_transactions_starts_read_write_after_a_read_only_file(project, road):
    """The next file's earlier units (its own COMMITs) and its last transaction start from the reset too."""
    database = project.tenant_chain({
        "20250101000000_leak.sql": "SET default_transaction_read_only = on;\n",
        "20250102000000_blocks.sql": f"CREATE TABLE one (x int);\nCOMMIT;\n{_CAPTURE}",
    })
    code, output, _ = _run(project, road, database)
    assert code == 0, output
    assert "one" in project.tables(database)
    assert project.query(database, "SELECT read_only FROM modes") == [("off",)]


# ---- the reset shares the next file's first round trip: a failure there names the file's line ----

_FAILS_AFTER_RESET = {
    "replayed": ("CREATE TABLE second_t (x int);\n\nINSERT INTO second_t VALUES (1 / 0);\n", 3, "division by zero"),
    "error-position": ("CREATE TABLE second_t (x int);\nINSERT INTO second_t (nosuch)\n  VALUES (1);\n", 2, 'nosuch'),
}


@pytest.mark.parametrize("road", [*ROADS, "api"])
@pytest.mark.parametrize("case", sorted(_FAILS_AFTER_RESET))
def test_a_file_failing_after_a_reset_names_its_line_and_leaves_nothing(project, road, case):
    """The first file leaves a search_path without a schema and read-only defaults: the second file's
    CREATE TABLE only works after the reset, and its failure is named by its own line."""
    sql, line, message = _FAILS_AFTER_RESET[case]
    database = project.tenant_chain({
        "20250101000000_leak.sql": "CREATE TABLE first_t (x int);\nSET search_path = nowhere;\n"
                                   "SET default_transaction_read_only = on;\n",
        "20250102000000_fails.sql": sql,
    })
    code, output, _ = _run(project, road, database)
    assert code != 0, output
    assert f"20250102000000_fails.sql:{line}:" in output, output
    assert message in output, output
    assert "read-only" not in output and "no schema" not in output, output
    tables = project.tables(database)
    assert "first_t" in tables and "second_t" not in tables
    assert project.version(database) == "20250101000000"
