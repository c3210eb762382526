"""Applies one parsed ``.sql`` file on an Alembic ``MigrationContext``.

Transactional files run statement by statement inside the per-migration
transaction Alembic opened, so the body, the version-table update and the ledger
row commit together or not at all.  Files with statements PostgreSQL refuses in a
transaction block run inside ``MigrationContext.autocommit_block()``: each
statement (or each of the file's own BEGIN/COMMIT blocks) commits on its own, and
the version is recorded only after the last one succeeded.

Statements go to the raw DBAPI cursor without parameters, so ``%``, ``:name``
and ``?`` are never read as bind parameters.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from . import pgerror
from .errors import MigrationFailed
from .sqlfile import MigrationFile, Statement

# SQLSTATEs (and classes) worth a retry: the database or the connection, not the migration, failed.
TRANSIENT_SQLSTATES = {
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "55P03",  # lock_not_available (lock_timeout)
    "57P01",  # admin_shutdown
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now
    "53300",  # too_many_connections
}
TRANSIENT_CLASSES = {"08"}  # connection exceptions


def is_transient_sqlstate(sqlstate: str | None) -> bool:
    return bool(sqlstate) and (sqlstate in TRANSIENT_SQLSTATES or sqlstate[:2] in TRANSIENT_CLASSES)


@dataclass
class Journal:
    """What happens on one database during a run, shared by migrations, the ledger and the notice printer."""

    database: str
    on_notice: Callable[[str, str | None, str], None] | None = None
    current: MigrationFile | None = None
    durations_ms: dict[str, int] = field(default_factory=dict)
    applied: list[str] = field(default_factory=list)
    # Set by the ledger once its table exists: SQL that records a version, to ride in the
    # migration's own batch (saves a round trip per migration); None = record afterwards.
    ledger_sql: Callable[[MigrationFile], str] | None = None
    recorded: set[str] = field(default_factory=set)

    def notice(self, message: str) -> None:
        if self.on_notice is not None:
            self.on_notice(self.database, self.current.version if self.current else None, message)


class NoticeSink:
    """Stands in for ``psycopg2.connection.notices``: psycopg2 calls ``append`` once per server notice."""

    def __init__(self, journal: Journal):
        self.journal = journal

    def append(self, message: str) -> None:
        # "NOTICE:  text\n" -> "NOTICE: text"
        severity, _, text = message.strip().partition(":")
        self.journal.notice(f"{severity}: {text.strip()}" if text else message.strip())


class StatementFailed(MigrationFailed):
    """A statement of a migration failed; carries the file, line and PostgreSQL's message."""

    def __init__(self, migration: MigrationFile, statement: Statement, error: Exception, already_committed: list[Statement]):
        self.migration = migration
        self.statement = statement
        self.sqlstate = getattr(error, "pgcode", None)
        self.pg_message = _first_line(getattr(error, "pgerror", None) or str(error))
        self.already_committed = already_committed
        where = pgerror.locate(statement.sql, statement.line, error, sent=pgerror.sent_text(error))
        self.line = where.line  # PostgreSQL's error position when it gave one, else the statement's start
        message = f"{pgerror.project_path(migration.path)}:{where.line}: {self.pg_message}"
        if already_committed:
            lines = ", ".join(str(s.line) for s in already_committed)
            message += (
                f" (non-transactional file: statements at line {lines} already ran and stay applied;"
                " the version was not recorded, so the next run starts this file again)"
            )
        super().__init__(message + pgerror.explain(where))

    @property
    def transient(self) -> bool:
        if self.sqlstate:
            return is_transient_sqlstate(self.sqlstate)
        from .connection import is_transient_text

        return is_transient_text(self.pg_message)  # a lost connection carries no SQLSTATE


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    first = lines[0] if lines else "unknown error"
    return first.removeprefix("ERROR:").strip()


def apply_migration(context, migration: MigrationFile, journal: Journal | None = None) -> None:
    """Run one migration file through ``context`` (a ``MigrationContext``), online or ``--sql``."""
    parsed = migration.parse()
    if context.as_sql:
        _emit_offline(context, migration, parsed)
        return
    journal = journal or Journal(database=context.connection.engine.url.database or "")
    journal.current = migration
    started = time.perf_counter()
    if parsed.transactional:
        record = journal.ledger_sql(migration) if journal.ledger_sql else None
        _run_transactional(_raw_connection(context), migration, parsed.statements, tail_sql=record)
        if record:
            journal.recorded.add(migration.version)
    else:
        with context.autocommit_block():
            _run_units(_raw_connection(context), migration, parsed.units, journal)
    journal.durations_ms[migration.version] = round((time.perf_counter() - started) * 1000)
    journal.applied.append(migration.version)


def _raw_connection(context):
    # The psycopg2 connection under SQLAlchemy: executes text verbatim, no parameter parsing.
    return context.connection.connection.dbapi_connection


def _execute(cursor, migration, statement, committed: list[Statement]) -> None:
    import psycopg2

    try:
        cursor.execute(statement.sql)
    except psycopg2.Error as err:
        raise StatementFailed(migration, statement, err, list(committed)) from err


# Statements whose notices are worth seeing as they happen (backfills, progress reports) get a
# round trip of their own; runs of other statements go to the server as one batch.
_OWN_ROUND_TRIP = {"DoStmt", "CallStmt", "SelectStmt"}
_SAVEPOINT = "grapevine_batch"


def _batches(statements) -> list[list[Statement]]:
    batches: list[list[Statement]] = []
    for statement in statements:
        alone = statement.kind in _OWN_ROUND_TRIP
        if alone or not batches or batches[-1][-1].kind in _OWN_ROUND_TRIP:
            batches.append([statement])
        else:
            batches[-1].append(statement)
    return batches


def _run_transactional(raw, migration, statements, *, head_sql: str = "", tail_sql: str | None = None) -> None:
    """Batches of statements, each one round trip.

    ``head_sql`` rides in front of the first batch (``BEGIN``), ``tail_sql`` behind the last
    (the ledger row and version update), so a small file costs a single round trip.  Each
    batch starts with a savepoint; if it fails, we roll back to it and replay its statements
    one by one, so the error still names the exact statement and line.  (PostgreSQL 13+
    applies statement_timeout to each statement of a batch separately.)
    """
    with raw.cursor() as cursor:
        batches = _batches(statements)
        for number, batch in enumerate(batches):
            prefix = head_sql if number == 0 else ""
            suffix = tail_sql if number == len(batches) - 1 else None
            if len(batch) == 1 and not (prefix or suffix):
                _execute(cursor, migration, batch[0], [])
                continue
            text = "\n;\n".join(s.sql for s in batch)  # newline first: ends a trailing -- comment
            if suffix:
                text += "\n;\n" + suffix
            _execute_batch(cursor, migration, batch, text, prefix)


def apply_direct(raw, migration: MigrationFile, record_sql: str, journal: Journal, setup_sql: str = "") -> None:
    """Apply one migration on an autocommit connection, recorded by ``record_sql`` in the same transaction.

    The lean path of ``migrate``: ``BEGIN; SAVEPOINT; body; ledger row; version update; COMMIT``
    in as few round trips as the file allows (one for most files); the version update fails
    the transaction unless exactly the expected head moved.  Non-transactional files run unit
    by unit first, then record.
    ``setup_sql`` (creating the version table and ledger) rides in the same transaction, so a
    first migration that fails leaves nothing at all behind.
    """
    import psycopg2.extensions

    parsed = migration.parse()
    journal.current = migration
    started = time.perf_counter()
    try:
        begin = "BEGIN;\n" + (setup_sql + "\n;\n" if setup_sql else "")
        record = record_sql + "\n;\nCOMMIT"
        if parsed.transactional:
            _run_transactional(raw, migration, parsed.statements, head_sql=begin, tail_sql=record)
        else:
            _run_units(raw, migration, parsed.units, journal)
            with raw.cursor() as cursor:
                try:
                    cursor.execute(begin + record)
                except psycopg2.Error as err:
                    _raise_if_version_check(migration, err)
                    raise StatementFailed(migration, parsed.statements[-1], err, list(parsed.statements)) from err
    except BaseException:
        if not raw.closed and raw.info.transaction_status != psycopg2.extensions.TRANSACTION_STATUS_IDLE:
            with raw.cursor() as cursor:
                cursor.execute("ROLLBACK")
        raise
    journal.durations_ms[migration.version] = round((time.perf_counter() - started) * 1000)
    journal.applied.append(migration.version)


def _raise_if_version_check(migration: MigrationFile, err) -> None:
    from .ledger import VERSION_CHECK_MARKER

    if VERSION_CHECK_MARKER in str(err):
        raise MigrationFailed(
            f"{migration.path.name}: recording version {migration.version} did not move exactly the expected"
            " head (was alembic_version changed by someone else?); nothing of this file was committed"
        ) from err


def _execute_batch(cursor, migration, batch, text: str, prefix: str = "") -> None:
    import psycopg2
    import psycopg2.extensions

    try:
        cursor.execute(f"{prefix}SAVEPOINT {_SAVEPOINT};\n{text}")
    except psycopg2.Error as err:
        _raise_if_version_check(migration, err)
        if cursor.connection.closed:
            raise StatementFailed(migration, batch[0], err, []) from err
        if _cancelled_by_user(err):  # a second Ctrl-C: replaying would only run the statements again
            raise StatementFailed(migration, batch[0], err, []) from err
        if cursor.connection.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_IDLE:
            # the batch's own COMMIT failed (a deferred constraint, say): everything was rolled back
            raise StatementFailed(migration, batch[-1], err, []) from err
        cursor.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
        for statement in batch:
            _execute(cursor, migration, statement, [])
        raise StatementFailed(migration, batch[-1], err, []) from err  # replay passed: blame the batch's end


def _cancelled_by_user(err) -> bool:
    from . import interrupts

    return getattr(err, "pgcode", None) == "57014" and interrupts.cancelling()


def _run_units(raw, migration, units, journal: Journal) -> None:
    """Autocommit mode: each unit is one statement, or one of the file's own BEGIN/COMMIT blocks."""
    committed: list[Statement] = []
    with raw.cursor() as cursor:
        for unit in units:
            if unit.transactional:
                cursor.execute("BEGIN")
            try:
                for statement in unit.statements:
                    index = _concurrent_index(statement)
                    if index:
                        _drop_invalid_index(cursor, index, journal)
                    _execute(cursor, migration, statement, committed)
                    if index:
                        _require_valid_index(cursor, migration, statement, index, committed)
            except StatementFailed:
                if unit.transactional and not raw.closed:
                    cursor.execute("ROLLBACK")
                raise
            if unit.transactional:
                cursor.execute("COMMIT")
            committed.extend(unit.statements)


# A failed CREATE INDEX CONCURRENTLY leaves an INVALID index behind, which a re-run's
# IF NOT EXISTS would then skip: queries stay slow while every run reports success.
_INDEX_STATE = (
    "SELECT c.oid::regclass::text, i.indisvalid FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid"
    " WHERE c.relname = %s AND c.relnamespace = coalesce(to_regnamespace(%s),"
    " (SELECT oid FROM pg_namespace WHERE nspname = current_schema()))"
)


def _concurrent_index(statement: Statement) -> tuple[str | None, str] | None:
    """(schema, name) of a named CREATE INDEX CONCURRENTLY, else None."""
    node = statement.node
    if statement.kind != "IndexStmt" or node is None or not getattr(node, "concurrent", False) or not node.idxname:
        return None
    return (node.relation.schemaname or None, node.idxname)


def _drop_invalid_index(cursor, index, journal: Journal) -> None:
    cursor.execute(_INDEX_STATE, (index[1], index[0]))
    row = cursor.fetchone()
    if row and not row[1]:
        journal.notice(f"NOTICE: dropping INVALID index {row[0]} left by an earlier failed build; building it again")
        cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {row[0]}")


def _require_valid_index(cursor, migration, statement, index, committed) -> None:
    cursor.execute(_INDEX_STATE, (index[1], index[0]))
    row = cursor.fetchone()
    if row and not row[1]:
        raise MigrationFailed(
            f"{migration.path.name}:{statement.line}: index {row[0]} is INVALID after CREATE INDEX CONCURRENTLY;"
            " the version was not recorded (drop the index and run migrate again)"
        )


def _emit_offline(context, migration, parsed) -> None:
    """``--sql`` mode: print the statements, with COMMIT/BEGIN around non-transactional files."""
    out = context.impl.static_output
    out(f"-- {migration.path.name}")
    if parsed.transactional:
        for statement in parsed.statements:
            out(statement.sql + ";")
        return
    with context.autocommit_block():
        for unit in parsed.units:
            if unit.transactional:
                out("BEGIN;")
            for statement in unit.statements:
                out(statement.sql + ";")
            if unit.transactional:
                out("COMMIT;")
