"""A statement that cannot run in a transaction (``CREATE INDEX CONCURRENTLY``, ``VACUUM``, ...), run on its own.

It commits as it runs, so it joins the file's ``committed`` statements.  An INVALID index that
an earlier failed build left is dropped first and the new one checked after (``invalid_indexes``);
after it the tool's session settings are put back if it reset them, and the migration lock is
checked, since the file may have released it.  On ``migrate``'s road its commits do not wait for
the WAL flush (``durability``).
"""

from __future__ import annotations

from ...errors import MigrationFailed
from ...files.migration import MigrationFile
from ...files.parsing import Statement
from . import copyrows, durability
from . import invalid_indexes as invalid_index
from .failures import StatementFailed, already
from .journal import Journal
from .locate import error_position
from .steps import Step, line_at

__all__ = ["autocommit_statement"]

# SET, RESET, DISCARD: they commit nothing, and putting the setting back after one of them would
# undo what the file set
_SESSION_STATEMENTS = {"VariableSetStmt", "DiscardStmt"}


def autocommit_statement(
    raw, migration: MigrationFile, journal: Journal, committed: list[Statement], statement: Statement,
    *, async_commit: bool = False,
) -> None:
    """Run ``statement`` outside any transaction; on success it is appended to ``committed``.

    ``async_commit``: its commits do not wait for the WAL flush (``durability``: the run's last
    commit makes them durable); the session's own ``synchronous_commit`` is put back after it.
    """
    with raw.cursor() as cursor:
        index = invalid_index.concurrent_index(statement)
        if index:
            invalid_index.drop_invalid_index(cursor, index, journal)
        restore = None
        if async_commit and statement.kind not in _SESSION_STATEMENTS:
            _execute(cursor, durability.LOWER_SESSION_SQL, migration, statement, committed)
            restore = durability.restore_sql(cursor.fetchone()[0])
        try:
            _run(cursor, migration, committed, statement, index)
        except BaseException:
            if restore:
                _put_back(cursor, restore)
            raise
        after = [journal.policy.restore_sql()] if statement.resets_session and journal.policy else []
        if restore:
            after.append(restore)
        committed.append(statement)
        if journal.policy and journal.policy.lock_key is not None:
            after.append(f"SELECT pg_catalog.pg_try_advisory_lock({int(journal.policy.lock_key)})")
        if after:
            _execute(cursor, ";\n".join(after), migration, statement, committed)
            if journal.policy.lock_key is not None and not cursor.fetchone()[0]:
                raise MigrationFailed(
                    f"{migration.path.name}:{statement.line}: this run lost its migration lock on"
                    f" {journal.database} (the file released it, e.g. with DISCARD ALL) and another run"
                    " holds it now; stopping" + already(committed)
                )


def _run(cursor, migration: MigrationFile, committed: list[Statement], statement: Statement, index) -> None:
    import psycopg2

    step = Step(None, statement)
    try:
        copyrows.send(cursor, statement) if step.copy is not None else cursor.execute(statement.sql)
    except psycopg2.Error as err:
        position = error_position(err)
        line = line_at(step, position - 1) if position else statement.line
        if step.copy is not None:
            line = copyrows.failed_line(statement, err)
        raise StatementFailed(migration, line, err, list(committed)) from err
    if index:
        invalid_index.require_valid_index(cursor, migration, statement, index, committed)


def _put_back(cursor, sql: str) -> None:
    """After a failure: the session's own setting again, for what runs next (best effort)."""
    import psycopg2

    try:
        cursor.execute(sql)
    except psycopg2.Error:
        pass


def _execute(cursor, sql: str, migration: MigrationFile, statement: Statement, committed: list[Statement]) -> None:
    """The tool's own SQL after the statement; a failure names the statement's line."""
    import psycopg2

    try:
        cursor.execute(sql)
    except psycopg2.Error as err:
        raise StatementFailed(migration, statement.line, err, list(committed), what="") from err
