"""Which step of a failed round trip failed, and on which file line.

PostgreSQL's error position names the statement and line.  Without a position, the transaction
is rolled back and replayed statement by statement (notices muted) to find it.  Nothing of a
failed transaction is kept, and the replay never uses savepoints, so a file's own
``SAVEPOINT``/``ROLLBACK TO`` cannot be confused with the tool's.
"""

from __future__ import annotations

from ...files.parsing import Statement
from . import copyrows
from .failures import TIMING_SQLSTATES
from .journal import Journal
from .steps import Step, line_at, span

__all__ = ["abandon", "error_position", "locate", "rollback"]


def locate(raw, journal: Journal, trip, starts, steps, err) -> tuple[Step | tuple[Step, Step], int | None]:
    """The step that failed and the file line: from PostgreSQL's error position, else by replaying."""
    position = error_position(err)
    if position is not None:
        for step, start in zip(reversed(trip), reversed(starts)):
            if position > start:
                return step, line_at(step, position - 1 - start)
    if raw.closed or getattr(err, "pgcode", None) in TIMING_SQLSTATES:
        return span(trip), None
    suspects = [s for s in trip if s.statement is not None or s.what]
    if len(suspects) == 1 and getattr(suspects[0].statement, "count", 1) == 1:
        return suspects[0], None
    return (_replay(raw, journal, steps) or span(trip)), None


def _replay(raw, journal: Journal, steps: list[Step]) -> Step | None:
    """Roll back, then run the same transaction one step at a time to see which step fails."""
    import psycopg2

    rollback(raw)
    journal.muted = True
    try:
        with raw.cursor() as cursor:
            if not steps or steps[0].statement is not None or steps[0].what:
                cursor.execute("BEGIN")  # Alembic's transaction is gone: replay in one of ours
            for index, step in enumerate(steps):
                if step.statement is None and step.sql == "ROLLBACK":
                    return None
                # The replay never commits: checking deferred constraints is what COMMIT would fail on.
                sql = "SET CONSTRAINTS ALL IMMEDIATE" if step.statement is None and step.sql == "COMMIT" else None
                try:
                    copyrows.send(cursor, step.statement) if step.copy is not None else cursor.execute(sql or step.text)
                except psycopg2.Error:
                    if step.statement is not None and step.statement.kind == "Chunk":
                        return _replay_chunk(raw, steps, index) or step
                    return step
    except psycopg2.Error:
        return None
    finally:
        rollback(raw)
        journal.muted = False
    return None


def _replay_chunk(raw, steps: list[Step], index: int) -> Step | None:
    """Replay up to a failed chunk, then its statements one at a time: the one that fails."""
    import psycopg2

    rollback(raw)
    with raw.cursor() as cursor:
        if steps[0].statement is not None or steps[0].what:
            cursor.execute("BEGIN")
        for step in steps[:index]:
            copyrows.send(cursor, step.statement) if step.copy is not None else cursor.execute(
                "SET CONSTRAINTS ALL IMMEDIATE" if step.statement is None and step.sql == "COMMIT" else step.text)
        for sql, line in steps[index].statement.statements():
            try:
                cursor.execute(sql)
            except psycopg2.Error:
                return Step(None, Statement(sql, line, "Plain", True))
    return None


def rollback(raw) -> None:
    """Roll back the transaction open on ``raw``, if any."""
    import psycopg2.extensions

    if not raw.closed and raw.info.transaction_status != psycopg2.extensions.TRANSACTION_STATUS_IDLE:
        with raw.cursor() as cursor:
            cursor.execute("ROLLBACK")


def abandon(raw) -> None:
    """After anything but a driver error inside a transaction: roll it back, or close the connection.

    Never commit it: the interruption (a signal handler's exception, Ctrl-C, text the client
    encoding cannot hold) may have come between two round trips of one file.  When the
    connection cannot even roll back, closing it makes the server roll back instead.
    """
    import psycopg2

    try:
        rollback(raw)
    except (psycopg2.Error, OSError):
        raw.close()


def error_position(err) -> int | None:
    """PostgreSQL's error position (1-based, in characters of the whole query string)."""
    diag = getattr(err, "diag", None)
    value = getattr(diag, "statement_position", None) if diag is not None else None
    try:
        return int(value) if value else None
    except ValueError:
        return None
