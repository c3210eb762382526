"""Applies one parsed ``.sql`` file on an open psycopg2 connection.

A file is a sequence of units (see ``txshape``): transactions, and statements that
must run outside one.  The file's last transaction also carries the tool's own
statements (the ledger row, the version move, the lock check), so the body and its
record commit together or not at all; when the file ends with a statement that
cannot run in a transaction, the record follows in a transaction of its own.

Two roads share this code: ``migrate`` (``apply_direct``: an autocommit connection,
the tool sends BEGIN/COMMIT itself) and ``alembic upgrade`` (``apply_migration``:
Alembic opened the per-migration transaction and commits it after the version
update).  Statements go to the raw DBAPI cursor without parameters, so ``%``,
``:name`` and ``?`` are never read as bind parameters.

Each transaction goes to the server in as few round trips as the file allows
(``DO``, ``CALL`` and ``SELECT`` get their own, so their notices show as they
finish).  When a round trip fails, PostgreSQL's error position names the
statement and line; without a position, the transaction is rolled back and
replayed statement by statement (notices muted) to find it.  Nothing of a failed
transaction is kept, and the replay never uses savepoints, so a file's own
``SAVEPOINT``/``ROLLBACK TO`` cannot be confused with the tool's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from . import copyrows, pgerror
from .connection import LOCK_LOST_MARKER, TOOL_SCOPE_SQL, SessionPolicy
from .durability import ASYNC_COMMIT_SQL, DURABLE_COMMIT_SQL
from ..errors import MigrationFailed
from ..files.sqlfile import MigrationFile, Statement
from ..files.txshape import Unit, split_final
from ..tool_tables import DEFAULT_TABLES, ToolTables

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
# Failures that depend on timing: replaying the transaction would take as long again and
# might not fail the same way, so they are blamed on the round trip as a whole.
_TIMING_SQLSTATES = {"57014", "55P03", "40P01", "40001"}


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
    # The tool's session state, put back before every file (None: leave the session alone).
    policy: SessionPolicy | None = None
    muted: bool = False  # while a failed transaction is replayed: its notices were shown once
    marked_ahead: set[str] = field(default_factory=set)  # versions `mark --apply` recorded above the head
    ledger_setup_sql: str = ""  # the alembic road: the ledger to create in the first file's transaction
    session_used: bool = False  # a file's body ran on this session since the tool last reset it
    tables: ToolTables = DEFAULT_TABLES  # the names of the tool's version table and ledger

    def notice(self, message: str) -> None:
        if self.on_notice is not None and not self.muted:
            self.on_notice(self.database, self.current.version if self.current else None, message)


class NoticeSink:
    """Stands in for ``psycopg2.connection.notices``: psycopg2 calls ``append`` once per server notice."""

    def __init__(self, journal: Journal):
        self.journal = journal

    def append(self, message: str) -> None:
        if "there is no transaction in progress" in message:
            return  # Alembic's rollback after a transaction the tool already rolled back: noise
        # "NOTICE:  text\n" -> "NOTICE: text"
        severity, _, text = message.strip().partition(":")
        self.journal.notice(f"{severity}: {text.strip()}" if text else message.strip())


class StatementFailed(MigrationFailed):
    """A statement of a migration (or the tool's own SQL around it) failed; carries file, line and message."""

    def __init__(
        self,
        migration: MigrationFile,
        line: int | str | None,
        error: Exception,
        already_committed: list[Statement],
        *,
        what: str = "",
    ):
        self.migration = migration
        self.line = line
        self.sqlstate = getattr(error, "pgcode", None)
        self.pg_message = _first_line(getattr(error, "pgerror", None) or str(error))
        self.already_committed = already_committed
        path = pgerror.project_path(migration.path)
        where = f"{path}:{line}" if line is not None else path
        message = f"{where}: {what}{self.pg_message}"
        if already_committed:
            message += (
                f" ({_line_list(already_committed)} of this file already ran and stayed committed;"
                " the version was not recorded, so the next run starts this file again)"
            )
        # PostgreSQL's DETAIL and HINT (or ours, for timeouts) on lines of their own
        super().__init__(message + pgerror.explain(pgerror.explanation(error)))

    @property
    def transient(self) -> bool:
        if self.already_committed:
            return False  # a retry would run committed statements again: never
        if self.sqlstate:
            return is_transient_sqlstate(self.sqlstate)
        from .connection import is_transient_text

        return is_transient_text(self.pg_message)  # a lost connection carries no SQLSTATE


def _line_list(statements: list[Statement]) -> str:
    """"line 3" or "lines 1, 2, 5" (a chunk of plain statements: "lines 7-9000")."""
    lines = ", ".join(getattr(s, "lines", None) or str(s.line) for s in statements)
    return f"line {lines}" if len(statements) == 1 and "-" not in lines else f"lines {lines}"


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    first = lines[0] if lines else "unknown error"
    return first.removeprefix("ERROR:").strip()


# --------------------------------------------------------------------------- steps


@dataclass(frozen=True)
class _Step:
    """One piece of a transaction's SQL: a file statement, or the tool's own SQL (``what`` says which)."""

    sql: str | None  # None: the statement's text, read when sent (a chunk's comes from the file)
    statement: Statement | None = None
    what: str = ""
    line: int | None = None  # the file line a tool step stands for (the file's COMMIT)

    @property
    def text(self) -> str:
        return self.sql if self.sql is not None else self.statement.sql

    @property
    def own_round_trip(self) -> bool:
        return self.statement is not None and self.statement.kind in _OWN_ROUND_TRIP

    @property
    def copy(self):
        """COPY ... FROM stdin's inline rows: sent with the COPY protocol, alone in its round trip."""
        return self.statement.copy if self.statement is not None else None


# Statements whose notices are worth seeing as they happen (backfills, progress reports) get a
# round trip of their own, as does each chunk of plain statements (so a round trip stays bounded);
# runs of other statements go to the server as one batch.
_OWN_ROUND_TRIP = {"DoStmt", "CallStmt", "SelectStmt", "Chunk"}


def _statement_steps(statements, policy: SessionPolicy | None) -> list[_Step]:
    steps = []
    for statement in statements:
        steps.append(_Step(None, statement))
        if statement.resets_session and policy is not None:
            steps.append(_Step(policy.restore_sql(), what="restoring the tool's session settings: "))
    return steps


def _round_trips(steps: list[_Step]) -> list[list[_Step]]:
    """Group steps into round trips; a DO/CALL/SELECT never shares one with another statement."""
    trips: list[list[_Step]] = [[]]
    last: _Step | None = None  # the current trip's last file statement
    for step in steps:
        if step.copy is not None or (trips[-1] and trips[-1][-1].copy is not None):
            trips.append([])  # a COPY is a protocol exchange of its own: nothing shares it
            last = None
        elif step.statement is not None and last is not None and (step.own_round_trip or last.own_round_trip):
            trips.append([])
            last = None
        trips[-1].append(step)
        if step.statement is not None:
            last = step
    return [trip for trip in trips if trip]


# --------------------------------------------------------------------------- one file


class FileRun:
    """Runs the units of one migration file and records it, on one connection."""

    def __init__(self, raw, migration: MigrationFile, journal: Journal, *, run_body: bool = True,
                 durable: bool | None = None):
        # None: commits as the session does; False: none waits for the WAL flush; True: the record's does
        self.durable = durable
        self.units = migration.parse().units if run_body else ()  # no body: only the record
        self.raw = raw
        self.migration = migration
        self.journal = journal
        self.committed: list[Statement] = []  # statements of units that already committed
        # An earlier file ran on this session: undo what it left before this file's first transaction
        self._reset_pending = journal.policy is not None and journal.session_used
        journal.session_used = journal.session_used or bool(self.units)
        self._setup: list[_Step] = []  # creating the version tables, in the first transaction

    # ---- the direct road: autocommit connection, our own BEGIN/COMMIT ----
    def run_direct(self, record_sql: str, setup_sql: str = "") -> None:
        units = self.units
        _, final = split_final(units)
        self._reset_session()
        if setup_sql:
            # The tables exist before the file runs, in its first transaction, so a failure
            # leaves nothing.
            self._setup = [_Step(setup_sql, what="creating the version tables: ")]
            first = units[0] if units else None
            if first is not None and (not first.transactional or first.rollback or _wants_fresh_transaction(first)):
                # DDL takes a snapshot (SET TRANSACTION must come first), and a ROLLBACK would
                # undo it: then the tables get a transaction of their own
                self.transaction(None, tail=self._commit_steps(record=False), explicit=True)
        for unit in units:
            if unit is final:
                self.transaction(unit, tail=self._record_steps(record_sql), explicit=True)
            else:
                self.unit(unit)
        if final is None:  # nothing to ride on: the record is a transaction of its own
            self.transaction(None, tail=self._record_steps(record_sql), explicit=True)

    # ---- the alembic road: Alembic's transaction is open and commits after the version update ----
    def run_in_open_transaction(self, context, record_sql: str | None, setup_sql: str = "") -> None:
        earlier, final = split_final(self.units)
        setup = [_Step(setup_sql, what="creating the version tables: ")] if setup_sql else []
        reopened = False
        if earlier:
            with context.autocommit_block():
                self._reset_session()
                for unit in earlier:
                    self.unit(unit)
        elif self._reset_pending:
            self._reset_session(end_open=True)  # Alembic's transaction is open: BEGIN fixed its modes
            reopened = True
        tail = []
        if final is not None:
            # Alembic commits later: check deferred constraints now, so a failure names the file's COMMIT
            line = final.end_line or final.statements[-1].line
            tail.append(_Step("SET CONSTRAINTS ALL IMMEDIATE", what="at COMMIT: ", line=line))
        tail.append(_Step(TOOL_SCOPE_SQL, what=""))  # Alembic's version update follows, unqualified
        fresh = final is not None and _wants_fresh_transaction(final)
        if fresh or earlier:
            tail += setup  # DDL would take the snapshot SET TRANSACTION needs first
        else:
            self._setup = setup
        if record_sql:
            tail.append(_Step(record_sql, what="recording the version: "))
        tail += self._lock_check_steps()
        if fresh and not reopened:
            # SET TRANSACTION must come before any query, and Alembic already read the version
            # table in the transaction it opened: end that one, and open the file's own.
            with self.raw.cursor() as cursor:
                cursor.execute("COMMIT")
        if fresh or reopened:
            self.transaction(final, tail=tail, explicit=False, open_sql=final.begin if final else "BEGIN")
        else:
            self.transaction(final, tail=tail, explicit=False)

    def unit(self, unit: Unit) -> None:
        """A unit before the file's last transaction: commits (or rolls back) on its own."""
        if unit.transactional:
            self.transaction(unit, tail=self._lock_check_steps() + self._commit_steps(record=False), explicit=True)
        else:
            self.autocommit_statement(unit.statements[0])

    def _record_steps(self, record_sql: str) -> list[_Step]:
        return [_Step(TOOL_SCOPE_SQL), _Step(record_sql, what="recording the version: "), *self._lock_check_steps(),
                *self._commit_steps(record=True)]

    def _commit_steps(self, *, record: bool) -> list[_Step]:
        """``synchronous_commit`` for this transaction's COMMIT (see ``durability``)."""
        if self.durable is None:
            return []
        return [_Step(DURABLE_COMMIT_SQL if record and self.durable else ASYNC_COMMIT_SQL)]

    def _lock_check_steps(self) -> list[_Step]:
        check = self.journal.policy.lock_check_sql() if self.journal.policy else None
        return [_Step(check, what="checking the migration lock: ")] if check else []

    def _reset_session(self, *, end_open: bool = False) -> None:
        """Undo what an earlier file left on the session, before this file's first transaction opens.

        BEGIN fixes a transaction's read-only mode and isolation level from the defaults then in
        force, so the reset is a round trip of its own on the autocommit connection; ``end_open``
        (the alembic road) first ends the transaction Alembic opened, which has run nothing yet.
        """
        import psycopg2

        if self._reset_pending:
            self._reset_pending = False
            sql = ("COMMIT;\n" if end_open else "") + self.journal.policy.reset_sql()
            with self.raw.cursor() as cursor:
                try:
                    cursor.execute(sql)
                except psycopg2.Error as err:
                    self._rollback()
                    raise StatementFailed(self.migration, None, err, [], what="resetting the session: ") from err

    # ---- a transaction ----
    def transaction(self, unit: Unit | None, *, tail: list[_Step], explicit: bool, open_sql: str | None = None) -> None:
        """One transaction: [BEGIN [modes]] [setup] statements tail [COMMIT|ROLLBACK].

        ``explicit``: the tool opens and ends it; otherwise Alembic does (``open_sql`` then
        opens it when the file's transaction modes need a fresh one).
        """
        if explicit:
            open_sql = unit.begin if unit else "BEGIN"
        steps: list[_Step] = [_Step(open_sql, line=_first_line_of(unit))] if open_sql else []
        steps += self._setup
        self._setup = []
        statements = unit.statements if unit else ()
        steps += _statement_steps(statements, self.journal.policy)
        if unit is not None and unit.rollback:
            steps.append(_Step("ROLLBACK", line=unit.end_line))
        else:
            steps += tail
            if explicit:
                line = unit.end_line if unit and unit.end_line else (statements[-1].line if statements else None)
                steps.append(_Step("COMMIT", what="at COMMIT: ", line=line))
        with self.raw.cursor() as cursor:
            for trip in _round_trips(steps):
                self._send(cursor, trip, steps)
        if explicit and not (unit is not None and unit.rollback):
            self.committed.extend(statements)

    def _send(self, cursor, trip: list[_Step], steps: list[_Step]) -> None:
        import psycopg2

        if trip[0].copy is not None:
            try:
                _copy(cursor, trip[0])
            except psycopg2.Error as err:
                self._rollback()
                raise self._failure(trip[0], copyrows.failed_line(trip[0].statement, err), err) from err
            return
        text, starts = _join(trip)
        try:
            cursor.execute(text)
        except psycopg2.Error as err:
            failed, line = self._locate(trip, starts, steps, err)
            self._rollback()
            raise self._failure(failed, line, err) from err

    def _locate(self, trip, starts, steps, err) -> tuple[_Step | tuple[_Step, _Step], int | None]:
        """The step that failed and the file line: from PostgreSQL's error position, else by replaying."""
        position = _error_position(err)
        if position is not None:
            for step, start in zip(reversed(trip), reversed(starts)):
                if position > start:
                    return step, _line_at(step, position - 1 - start)
        if self.raw.closed or getattr(err, "pgcode", None) in _TIMING_SQLSTATES:
            return _span(trip), None
        suspects = [s for s in trip if s.statement is not None or s.what]
        if len(suspects) == 1 and getattr(suspects[0].statement, "count", 1) == 1:
            return suspects[0], None
        return (self._replay(steps) or _span(trip)), None

    def _replay(self, steps: list[_Step]) -> _Step | None:
        """Roll back, then run the same transaction one step at a time to see which step fails."""
        import psycopg2

        self._rollback()
        self.journal.muted = True
        try:
            with self.raw.cursor() as cursor:
                if not steps or steps[0].statement is not None or steps[0].what:
                    cursor.execute("BEGIN")  # Alembic's transaction is gone: replay in one of ours
                for index, step in enumerate(steps):
                    if step.statement is None and step.sql == "ROLLBACK":
                        return None
                    # The replay never commits: checking deferred constraints is what COMMIT would fail on.
                    sql = "SET CONSTRAINTS ALL IMMEDIATE" if step.statement is None and step.sql == "COMMIT" else None
                    try:
                        _copy(cursor, step) if step.copy is not None else cursor.execute(sql or step.text)
                    except psycopg2.Error:
                        if step.statement is not None and step.statement.kind == "Chunk":
                            return self._replay_chunk(steps, index) or step
                        return step
        except psycopg2.Error:
            return None
        finally:
            self._rollback()
            self.journal.muted = False
        return None

    def _replay_chunk(self, steps: list[_Step], index: int) -> _Step | None:
        """Replay up to a failed chunk, then its statements one at a time: the one that fails."""
        import psycopg2

        self._rollback()
        with self.raw.cursor() as cursor:
            if steps[0].statement is not None or steps[0].what:
                cursor.execute("BEGIN")
            for step in steps[:index]:
                _copy(cursor, step) if step.copy is not None else cursor.execute(
                    "SET CONSTRAINTS ALL IMMEDIATE" if step.statement is None and step.sql == "COMMIT" else step.text)
            for sql, line in steps[index].statement.statements():
                try:
                    cursor.execute(sql)
                except psycopg2.Error:
                    return _Step(None, Statement(sql, line, "Plain", True))
        return None

    def _rollback(self) -> None:
        import psycopg2.extensions

        if not self.raw.closed and self.raw.info.transaction_status != psycopg2.extensions.TRANSACTION_STATUS_IDLE:
            with self.raw.cursor() as cursor:
                cursor.execute("ROLLBACK")

    def _failure(self, failed, line: int | None, err) -> Exception:
        from .ledger import VERSION_CHECK_MARKER

        text = str(err)
        name = pgerror.project_path(self.migration.path)
        if VERSION_CHECK_MARKER in text:
            return MigrationFailed(
                f"{name}: recording version {self.migration.version} did not move exactly the expected head"
                f" (was {self.journal.tables.version_table} changed by someone else?); nothing of this file's last"
                " transaction was"
                " committed" + _already(self.committed)
            )
        if LOCK_LOST_MARKER in text:
            return MigrationFailed(
                f"{name}: this run lost its migration lock on {self.journal.database} (the file released it,"
                " e.g. with DISCARD ALL or pg_advisory_unlock_all(), and another run took it); nothing of this"
                " file's last transaction was committed" + _already(self.committed)
            )
        if isinstance(failed, tuple):
            first, last = _line_of(failed[0]), _line_of(failed[1])
            where = f"{first}-{last}" if first is not None and last is not None and first != last else first
            return StatementFailed(self.migration, where, err, list(self.committed))
        return StatementFailed(self.migration, line or _line_of(failed), err, list(self.committed), what=failed.what)

    # ---- a statement outside any transaction ----
    def autocommit_statement(self, statement: Statement) -> None:
        import psycopg2

        from . import invalid_indexes as invalid_index

        with self.raw.cursor() as cursor:
            index = invalid_index.concurrent_index(statement)
            if index:
                invalid_index.drop_invalid_index(cursor, index, self.journal)
            step = _Step(None, statement)
            try:
                _copy(cursor, step) if step.copy is not None else cursor.execute(statement.sql)
            except psycopg2.Error as err:
                position = _error_position(err)
                line = _line_at(step, position - 1) if position else statement.line
                if step.copy is not None:
                    line = copyrows.failed_line(statement, err)
                raise StatementFailed(self.migration, line, err, list(self.committed)) from err
            if index:
                invalid_index.require_valid_index(cursor, self.migration, statement, index, self.committed)
            after = [self.journal.policy.restore_sql()] if statement.resets_session and self.journal.policy else []
            self.committed.append(statement)
            if self.journal.policy and self.journal.policy.lock_key is not None:
                after.append(f"SELECT pg_catalog.pg_try_advisory_lock({int(self.journal.policy.lock_key)})")
            if after:
                self._autocommit(cursor, ";\n".join(after), statement, "")
                if self.journal.policy.lock_key is not None and not cursor.fetchone()[0]:
                    raise MigrationFailed(
                        f"{self.migration.path.name}:{statement.line}: this run lost its migration lock on"
                        f" {self.journal.database} (the file released it, e.g. with DISCARD ALL) and another run"
                        " holds it now; stopping" + _already(self.committed)
                    )

    def _autocommit(self, cursor, sql: str, statement: Statement, what: str) -> None:
        import psycopg2

        try:
            cursor.execute(sql)
        except psycopg2.Error as err:
            raise StatementFailed(self.migration, statement.line, err, list(self.committed), what=what) from err


def _already(committed: list[Statement]) -> str:
    if not committed:
        return ""
    return f"; {_line_list(committed)} of this file already ran and stayed committed"


def _first_line_of(unit: Unit | None) -> int | None:
    return unit.statements[0].line if unit and unit.statements else None


def _wants_fresh_transaction(unit: Unit) -> bool:
    """The file sets its transaction's modes (BEGIN ISOLATION LEVEL ..., or SET TRANSACTION first)."""
    first = unit.statements[0] if unit.statements else None
    set_transaction = first is not None and first.kind == "VariableSetStmt" and getattr(first.node, "name", "") == "TRANSACTION"
    return unit.begin != "BEGIN" or set_transaction


def _span(trip: list[_Step]) -> tuple[_Step, _Step]:
    """A failure that cannot be pinned to one step: the round trip's first and last file lines."""
    placed = [s for s in trip if s.statement is not None or s.line is not None] or trip
    return (placed[0], placed[-1])


def _line_of(step: _Step) -> int | None:
    return step.statement.line if step.statement is not None else step.line


def _line_at(step: _Step, offset: int) -> int | None:
    """The file line at character ``offset`` of a step's text (a tool step: the line it stands for)."""
    if step.statement is None:
        return step.line
    return pgerror.line_of_position(step.text, step.statement.line, offset + 1)


def _join(trip: list[_Step]) -> tuple[str, list[int]]:
    """The round trip's text and where each step starts in it (0-based)."""
    parts, starts, offset = [], [], 0
    for step in trip:
        starts.append(offset)
        parts.append(step.text)
        offset += len(parts[-1]) + 3
    return "\n;\n".join(parts), starts  # newline first: ends a trailing -- comment


def _copy(cursor, step: _Step) -> None:
    """COPY ... FROM stdin with the file's inline rows, streamed from the file."""
    cursor.copy_expert(step.statement.sql, step.copy.reader(), size=copyrows.READ_BYTES)


def _error_position(err) -> int | None:
    """PostgreSQL's error position (1-based, in characters of the whole query string)."""
    diag = getattr(err, "diag", None)
    value = getattr(diag, "statement_position", None) if diag is not None else None
    try:
        return int(value) if value else None
    except ValueError:
        return None


# --------------------------------------------------------------------------- entry points


def apply_direct(
    raw, migration: MigrationFile, record_sql: str, journal: Journal, setup_sql: str = "", *, run_body: bool = True,
    durable: bool | None = None,
) -> None:
    """Apply one migration on an autocommit connection, recorded by ``record_sql`` in its last transaction.

    ``setup_sql`` (creating the version table and ledger) rides in the file's first
    transaction, so a first migration that fails leaves nothing at all behind.
    """
    journal.current = migration
    started = time.perf_counter()
    FileRun(raw, migration, journal, run_body=run_body, durable=durable).run_direct(record_sql, setup_sql)
    journal.durations_ms[migration.version] = round((time.perf_counter() - started) * 1000)
    journal.applied.append(migration.version)


def apply_migration(context, migration: MigrationFile, journal: Journal | None = None) -> None:
    """Run one migration file through ``context`` (a ``MigrationContext``), online or ``--sql``."""
    parsed = migration.parse()
    if context.as_sql:
        _emit_offline(context, migration, parsed)
        return
    journal = journal or Journal(database=context.connection.engine.url.database or "")
    journal.current = migration
    started = time.perf_counter()
    marked = migration.version in journal.marked_ahead  # `mark --apply`: the head moves, nothing runs
    record = journal.ledger_sql(migration) if journal.ledger_sql and not marked else None
    raw = context.connection.connection.dbapi_connection  # executes text verbatim, no parameter parsing
    setup, journal.ledger_setup_sql = journal.ledger_setup_sql, ""
    FileRun(raw, migration, journal, run_body=not marked).run_in_open_transaction(context, record, setup)
    if record or marked:
        journal.recorded.add(migration.version)
    journal.durations_ms[migration.version] = round((time.perf_counter() - started) * 1000)
    journal.applied.append(migration.version)


def _emit_offline(context, migration, parsed) -> None:
    """``--sql`` mode: the statements, with COMMIT/BEGIN around what runs outside Alembic's transaction."""
    out = context.impl.static_output
    out(f"-- {migration.path.name}")
    earlier, final = split_final(parsed.units)
    if earlier:
        with context.autocommit_block():
            for unit in earlier:
                if unit.transactional:
                    out("BEGIN;")
                    if unit.transaction_modes:
                        out(unit.transaction_modes + ";")
                for statement in unit.statements:
                    out(copyrows.offline_text(statement))
                if unit.transactional:
                    out("ROLLBACK;" if unit.rollback else "COMMIT;")
    if final is not None:
        if final.transaction_modes:
            out(final.transaction_modes + ";")
        for statement in final.statements:
            out(copyrows.offline_text(statement))
    out(TOOL_SCOPE_SQL.replace("\n", " ") + ";")
