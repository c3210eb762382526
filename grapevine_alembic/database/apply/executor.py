"""Applies one parsed ``.sql`` file on an open psycopg2 connection.

A file is a sequence of units (see ``txshape``): transactions, and statements that
must run outside one (``autocommit``).  The file's last transaction also carries the
tool's own statements (the ledger row, the version move, the lock check), so the body
and its record commit together or not at all; when the file ends with a statement that
cannot run in a transaction, the record follows in a transaction of its own.

Every way in (``migrate``, the Python API and ``alembic upgrade``) applies a file with
``apply_direct``: an autocommit connection, the tool sends BEGIN/COMMIT itself
(``alembic upgrade --sql`` writes a script instead, see ``offline``).  Statements go to
the raw DBAPI cursor without parameters, so ``%``, ``:name`` and ``?`` are never read
as bind parameters.

Each transaction goes to the server in as few round trips as the file allows (see
``steps``).  Before anything of a file runs, its prechecks do, read-only (``prechecks``).
When a round trip fails, ``locate`` names the statement and line, from
PostgreSQL's error position or by replaying the transaction.
"""

from __future__ import annotations

import time

from . import copyrows
from .autocommit import autocommit_statement
from ..session.connection import TOOL_SCOPE_SQL
from .durability import ASYNC_COMMIT_SQL, DURABLE_COMMIT_SQL
from .failures import StatementFailed, transaction_failure
from .journal import Journal
from .locate import abandon, locate, rollback
from .prechecks import run_prechecks
from .steps import Step, join, round_trips, statement_steps
from ...files.migration import MigrationFile
from ...files.parsing import Statement
from ...files.txshape import Unit, split_final

__all__ = ["FileRun", "apply_direct", "refuse_unencodable"]


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
        self._setup: list[Step] = []  # creating the version tables, in the first transaction
        self._prefix: list[Step] = []  # the session reset, sent ahead of the first transaction's BEGIN

    # ---- the direct road: autocommit connection, our own BEGIN/COMMIT ----
    def run_direct(self, record_sql: str, setup_sql: str = "") -> None:
        units = self.units
        _, final = split_final(units)
        if units and not units[0].transactional:
            self._reset_session()  # a statement that runs outside a transaction travels alone
        else:
            self._prefix = self._reset_steps()  # rides in the first transaction's round trip
        if setup_sql:
            # The tables exist before the file runs, in its first transaction, so a failure
            # leaves nothing.
            self._setup = [Step(setup_sql, what="creating the version tables: ")]
            first = units[0] if units else None
            if first is not None and (not first.transactional or first.rollback or _wants_fresh_transaction(first)):
                # DDL takes a snapshot (SET TRANSACTION must come first), and a ROLLBACK would
                # undo it: then the tables get a transaction of their own
                self.transaction(None, tail=self._commit_steps(record=False))
        for unit in units:
            if unit is final:
                self.transaction(unit, tail=self._record_steps(record_sql))
            else:
                self.unit(unit)
        if final is None:  # nothing to ride on: the record is a transaction of its own
            self.transaction(None, tail=self._record_steps(record_sql))

    def unit(self, unit: Unit) -> None:
        """A unit before the file's last transaction: commits (or rolls back) on its own."""
        if unit.transactional:
            self.transaction(unit, tail=self._lock_check_steps() + self._commit_steps(record=False))
        else:
            autocommit_statement(self.raw, self.migration, self.journal, self.committed, unit.statements[0],
                                 async_commit=self.durable is not None)

    def _record_steps(self, record_sql: str) -> list[Step]:
        return [Step(TOOL_SCOPE_SQL), Step(record_sql, what="recording the version: "), *self._lock_check_steps(),
                *self._commit_steps(record=True)]

    def _commit_steps(self, *, record: bool) -> list[Step]:
        """``synchronous_commit`` for this transaction's COMMIT (see ``durability``)."""
        if self.durable is None:
            return []
        return [Step(DURABLE_COMMIT_SQL if record and self.durable else ASYNC_COMMIT_SQL)]

    def _lock_check_steps(self) -> list[Step]:
        check = self.journal.policy.lock_check_sql() if self.journal.policy else None
        return [Step(check, what="checking the migration lock: ")] if check else []

    def _reset_steps(self) -> list[Step]:
        """The session reset as a transaction of its own, committed before the file's first BEGIN.

        Sent in the same round trip as that BEGIN: the reset's COMMIT ends before BEGIN starts the
        file's transaction, which then takes its modes from the defaults the reset put back.  It
        writes nothing, so its commit waits for no WAL flush.
        """
        if not self._reset_pending:
            return []
        self._reset_pending = False
        return [Step("BEGIN"), Step(self.journal.policy.reset_sql(), what="resetting the session: "), Step("COMMIT")]

    def _reset_session(self) -> None:
        """Undo what an earlier file left on the session, before this file's first transaction opens.

        BEGIN fixes a transaction's read-only mode and isolation level from the defaults then in
        force, so the reset commits before the file's first BEGIN; here it is a round trip of its own
        (before a statement that must run alone; ``_reset_steps`` otherwise).
        """
        import psycopg2

        if self._reset_pending:
            self._reset_pending = False
            sql = self.journal.policy.reset_sql()
            with self.raw.cursor() as cursor:
                try:
                    cursor.execute(sql)
                except psycopg2.Error as err:
                    rollback(self.raw)
                    raise StatementFailed(self.migration, None, err, [], what="resetting the session: ") from err

    # ---- a transaction ----
    def transaction(self, unit: Unit | None, *, tail: list[Step]) -> None:
        """One transaction: BEGIN [modes] [setup] statements tail COMMIT (or the file's ROLLBACK)."""
        open_sql = unit.begin if unit else "BEGIN"
        steps: list[Step] = [*self._prefix, Step(open_sql, line=_first_line_of(unit))]
        self._prefix = []
        steps += self._setup
        self._setup = []
        statements = unit.statements if unit else ()
        steps += statement_steps(statements, self.journal.policy)
        if unit is not None and unit.rollback:
            steps.append(Step("ROLLBACK", line=unit.end_line))
        else:
            steps += tail
            line = unit.end_line if unit and unit.end_line else (statements[-1].line if statements else None)
            steps.append(Step("COMMIT", what="at COMMIT: ", line=line))
        try:
            with self.raw.cursor() as cursor:
                for trip in round_trips(steps):
                    self._send(cursor, trip, steps)
        except BaseException:
            # a driver error was rolled back in _send; anything else (a signal handler's exception,
            # Ctrl-C) may have come between two round trips: nothing of the file may commit later
            abandon(self.raw)
            raise
        if not (unit is not None and unit.rollback):
            self.committed.extend(statements)

    def _send(self, cursor, trip: list[Step], steps: list[Step]) -> None:
        import psycopg2

        if trip[0].copy is not None:
            try:
                copyrows.send(cursor, trip[0].statement)
            except psycopg2.Error as err:
                rollback(self.raw)
                line = copyrows.failed_line(trip[0].statement, err)
                raise transaction_failure(self.migration, self.journal, self.committed, trip[0], line, err) from err
            return
        text, starts = join(trip)
        try:
            cursor.execute(text)
        except psycopg2.Error as err:
            blocked_by = getattr(getattr(self.raw, "watch", None), "blockers", None)  # before the next round trip
            failed, line = locate(self.raw, self.journal, trip, starts, steps, err)
            rollback(self.raw)
            raise transaction_failure(self.migration, self.journal, self.committed, failed, line, err,
                                      blocked_by if err.pgcode == "55P03" else None) from err


def _first_line_of(unit: Unit | None) -> int | None:
    return unit.statements[0].line if unit and unit.statements else None


def _wants_fresh_transaction(unit: Unit) -> bool:
    """The file sets its transaction's modes (BEGIN ISOLATION LEVEL ..., or SET TRANSACTION first)."""
    first = unit.statements[0] if unit.statements else None
    set_transaction = first is not None and first.kind == "VariableSetStmt" and getattr(first.node, "name", "") == "TRANSACTION"
    return unit.begin != "BEGIN" or set_transaction


# --------------------------------------------------------------------------- entry points


def refuse_unencodable(raw, migrations) -> None:
    """Text the connection's encoding cannot carry fails before anything of its file runs.

    psycopg2 encodes each round trip as it sends it: a ``€`` bound for a LATIN1 or SQL_ASCII
    database would otherwise raise in the middle of the file's transaction.
    """
    import psycopg2.extensions

    codec = psycopg2.extensions.encodings.get(raw.encoding)
    if codec is None or codec == "utf_8":
        return
    for migration in migrations:
        migration.refuse_unencodable(codec, raw.info.parameter_status("client_encoding") or raw.encoding)



def _precheck_reset(journal: Journal) -> str | None:
    """An earlier file ran on this session: its prechecks see the tool's session state, not what that file left."""
    return journal.policy.reset_sql() if journal.policy is not None and journal.session_used else None


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
    if run_body:
        refuse_unencodable(raw, [migration])
        run_prechecks(raw, migration, reset_sql=_precheck_reset(journal))
    FileRun(raw, migration, journal, run_body=run_body, durable=durable).run_direct(record_sql, setup_sql)
    journal.durations_ms[migration.version] = round((time.perf_counter() - started) * 1000)
    journal.applied.append(migration.version)
