"""Errors that point the way: file:line from PostgreSQL's error position, a path relative to the
project root, DETAIL and HINT, never cut off in a narrow table, retries shown and counted, and a
next step for statement and lock timeouts."""

from __future__ import annotations

import json

import pytest
from terminal import on_terminal

from grapevine_alembic.database.apply.pgerror import explanation, line_of_position, next_step, timeout_hint
from grapevine_alembic.errors import RAISE_LOCK_TIMEOUT, UNAPPLY, Fix


class FakeDiag:  # the shape of psycopg2's Diagnostics: plain attributes, no database behind it
    def __init__(self, position=None, detail=None, hint=None):
        self.statement_position, self.message_detail, self.message_hint = position, detail, hint


class FakeError(Exception):
    def __init__(self, diag, pgcode=None):
        super().__init__("boom")
        self.diag, self.pgcode, self.pgerror = diag, pgcode, "ERROR:  boom"


@pytest.mark.parametrize("sql, start, position, expected", [
    ("SELECT 1", 7, 1, 7),
    ("SELECT a,\n  b,\n  nope FROM t", 10, 16, 12),  # 'nope' sits on the third line of the statement
    ("SELECT 'é',\n nope", 1, 13, 2),  # positions count characters, not bytes
    ("SELECT 1", 4, None, 4),  # no position: the statement's start
    ("SELECT 1", 4, 999, 4),  # a position outside the statement: ignore it
])
def test_line_of_position(sql, start, position, expected):
    assert line_of_position(sql, start, position) == expected


def test_explanation_carries_detail_and_hint_and_a_lock_timeout_its_fix_for_the_way_in_to_word():
    explained = explanation(FakeError(FakeDiag("14", detail="d", hint="h")))
    assert (explained.detail, explained.hint) == ("d", "h")
    assert explanation(FakeError(FakeDiag(), pgcode="55P03")).hint is None  # no knob named below the ways in
    assert next_step(FakeError(FakeDiag(), pgcode="55P03")) == Fix(RAISE_LOCK_TIMEOUT)
    assert explanation(FakeError(FakeDiag(hint="theirs"), pgcode="55P03")).hint == "theirs"
    assert next_step(FakeError(FakeDiag(), pgcode="23505")) is None
    assert timeout_hint(Fix(RAISE_LOCK_TIMEOUT), "KNOB") == ("\n  HINT: another session held a lock this statement"
                                                              " needed: raise KNOB, or run when that transaction has ended")
    assert timeout_hint(Fix(UNAPPLY, "1"), "KNOB") == ""


BAD_COLUMN = (
    "BEGIN;\n"
    "CREATE TABLE people (id int PRIMARY KEY, full_name text);\n"
    "INSERT INTO people (id, full_name)\n"
    "SELECT 1,\n"
    "       fullname\n"  # line 5: where PostgreSQL points
    "  FROM people;\n"
    "COMMIT;\n"
)
DUPLICATE = "BEGIN;\nCREATE TABLE t (id int PRIMARY KEY);\nINSERT INTO t VALUES (1);\nINSERT INTO t\nVALUES (1);\nCOMMIT;\n"


def _setup(project, sql: str) -> None:
    project.migrate_control()
    project.add_tenant("acme")
    project.clear("tenant")
    project.write("tenant", "20240101000000_bad.sql", sql)


@pytest.mark.parametrize("sql, where, explained", [
    (BAD_COLUMN, '5: column "fullname" does not exist', 'HINT: Perhaps you meant to reference the column "people.full_name"'),
    (DUPLICATE, "4: duplicate key value", "DETAIL: Key (id)=(1) already exists."),
], ids=["position and HINT", "DETAIL"])
def test_error_names_the_line_postgres_points_at_and_explains(project, sql, where, explained):
    _setup(project, sql)
    result = project.cli("migrate", "--tenant", "acme")
    assert result.returncode == 1
    assert f"migrations/tenant/20240101000000_bad.sql:{where}" in result.stdout
    assert explained in result.stdout
    doc = json.loads(project.cli("migrate", "--tenant", "acme", "--json").stdout)
    assert doc["databases"][0]["error"].startswith(f"migrations/tenant/20240101000000_bad.sql:{where}")


def test_parse_errors_show_the_path_from_the_project_root(project):
    _setup(project, "BEGIN;\nCREATE TABLE (;\nCOMMIT;\n")
    result = project.cli("migrate", "--tenant", "acme")
    assert result.returncode != 0
    assert "migrations/tenant/20240101000000_bad.sql:2:" in result.stdout + result.stderr
    assert str(project.root) not in result.stdout + result.stderr


def test_error_is_whole_on_an_80_column_terminal(project):
    _setup(project, BAD_COLUMN)
    screen = on_terminal(project, "migrate --tenant acme", cols=80).screen
    assert "migrations/tenant/20240101000000_bad.sql:5:" in screen, screen
    assert 'Perhaps you meant to reference the column "people.full_name"' in " ".join(screen.split()), screen


def test_statement_timeout_hints_at_the_flag(project):
    _setup(project, "SELECT pg_sleep(5);\n")
    result = project.cli("migrate", "--tenant", "acme", "--timeout", "0.5", "--json")
    [db] = json.loads(result.stdout)["databases"]
    assert "statement timeout" in db["error"] and "HINT: raise --timeout" in db["error"]
    assert json.loads(result.stdout)["summary"]["retries"] == 0


# A statement timeout is blamed on the round trip; its range ends on the last statement's last line,
# not on the COMMIT (or the line) after it. (file text, the range)
TIMED_OUT = {
    "a multi-line statement, then COMMIT": (
        "BEGIN;\nCREATE TABLE s (id int);\nSELECT pg_sleep(3),\n  1\n  ;\n\n-- done\nCOMMIT;\n", "3-4"),
    "plain statements folded into a chunk": (
        "BEGIN;\nCREATE TABLE s (id int);\nINSERT INTO s\n VALUES (1);\nINSERT INTO s SELECT 1 FROM pg_sleep(3)\n  ;\n\nCOMMIT;\n",
        "3-5"),
}


@pytest.mark.parametrize("sql, lines", TIMED_OUT.values(), ids=TIMED_OUT.keys())
def test_an_error_range_ends_on_the_statements_last_line(project, sql, lines):
    _setup(project, sql)
    where = f"migrations/tenant/20240101000000_bad.sql:{lines}: canceling statement due to statement timeout"
    cli = project.cli("migrate", "--tenant", "acme", "--timeout", "1", "--retries", "0")
    assert cli.returncode == 1 and where in cli.stdout, cli.stdout + cli.stderr
    via_alembic = project.alembic("-n", "tenant", "-x", "tenant=acme", "-x", "timeout=1", "upgrade", "head")
    assert via_alembic.returncode != 0 and f"FAILED: {where}" in via_alembic.stdout, via_alembic.stdout + via_alembic.stderr


def _migrate_beside(project, road: str, session: tuple[str, str, bool], timeout: tuple[str, str]):
    """``migrate --tenant acme`` or ``alembic upgrade head`` with ``timeout`` (name, seconds) set, while a real
    second session (application_name, sql, stays in its transaction) holds what it took; (result, its pid)."""
    import psycopg2

    application_name, sql, in_transaction = session
    server = project.server
    holder = psycopg2.connect(host=server.host, port=server.port, user=server.superuser, password=server.password,
                              dbname="db_acme", application_name=application_name)
    holder.autocommit = not in_transaction
    pid = holder.info.backend_pid
    try:
        with holder.cursor() as cursor:
            cursor.execute(sql)
        name, seconds = timeout
        if road == "alembic":
            return project.alembic("-n", "tenant", "-x", "tenant=acme", "-x", f"{name}={seconds}", "upgrade", "head"), pid
        return project.cli("migrate", "--tenant", "acme", "--" + name.replace("_", "-"), seconds, "--retries", "0"), pid
    finally:
        holder.close()


@pytest.mark.parametrize("road", ["grapevine-migrations", "alembic"])
def test_a_lock_timeout_names_the_session_that_blocked_it(project, road):
    database = project.tenant_chain({"20250101000000_accounts.sql": "CREATE TABLE accounts (id int);\n"})
    assert project.cli("migrate", "--tenant", "acme").returncode == 0
    project.write("tenant", "20250102000000_nickname.sql", "ALTER TABLE accounts ADD COLUMN nickname text;\n")
    # idle in transaction, holding ACCESS SHARE on accounts
    reader = ("reporting-job", "SELECT count(*) FROM accounts\n  WHERE id > 0", True)
    result, pid = _migrate_beside(project, road, reader, ("lock_timeout", "1"))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "canceling statement due to lock timeout" in output, output
    assert f"blocked by pid {pid} (reporting-job, idle in transaction): SELECT count(*) FROM accounts\n" in output, output
    assert project.version(database) == "20250101000000"


@pytest.mark.parametrize("road", ["grapevine-migrations", "alembic"])
def test_waiting_too_long_for_the_migration_lock_names_the_session_holding_it(project, road):
    from grapevine_alembic.settings import DEFAULT_LOCK_KEY

    database = project.tenant_chain({"20250101000000_accounts.sql": "CREATE TABLE accounts (id int);\n"})
    stuck = ("stuck-deploy", f"SELECT pg_advisory_lock({DEFAULT_LOCK_KEY})", False)
    result, pid = _migrate_beside(project, road, stuck, ("timeout", "1"))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert (f"another migration run holds the lock on {database} for more than 1s (held by pid {pid}"
            f" (stuck-deploy, idle): SELECT pg_advisory_lock({DEFAULT_LOCK_KEY}))") in output, output
    assert project.version(database) is None
