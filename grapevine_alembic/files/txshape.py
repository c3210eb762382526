"""How a migration file's statements group into transactions.

The rule matches what the previous tool did, which sent a file's whole text inside
one transaction that the driver had opened, then recorded the version:

* a file's own ``BEGIN`` / ``START TRANSACTION`` opens nothing new (PostgreSQL only
  warned); ``BEGIN`` with options (``ISOLATION LEVEL ...``) sets them for the
  transaction it starts;
* ``COMMIT`` / ``END`` ends a transaction early, with or without a ``BEGIN``; what
  follows runs in the next one, and the file's last transaction also records the
  version;
* ``ROLLBACK`` / ``ABORT`` undoes the transaction it ends;
* a file without any ``COMMIT`` is one transaction; a file with no statement at all
  records its version and runs nothing.

Statements that PostgreSQL refuses inside a transaction block (``CREATE INDEX
CONCURRENTLY`` and friends, or a ``-- grapevine: no-transaction`` directive) make
the file *non-transactional*: each such statement runs on its own, and each of the
file's own ``BEGIN ... COMMIT`` blocks is one transaction.

Shapes that work but deserve a word (a ``BEGIN`` left open, a ``COMMIT`` without
``BEGIN``, several transactions in one file...) are returned as ``Note`` values,
which ``check`` reports as warnings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..errors import MigrationFileError

__all__ = ["Note", "Unit", "shape_units", "split_final"]


@dataclass(frozen=True)
class Unit:
    """Statements that run together: one transaction (transactional=True) or one autocommit statement.

    ``begin`` is the statement that opens the transaction (the file's own, when it carries
    options); ``rollback`` means the file ends this transaction with ROLLBACK.
    """

    statements: tuple[Any, ...]
    transactional: bool
    begin: str = "BEGIN"
    rollback: bool = False
    end_line: int | None = None  # line of the file's COMMIT/ROLLBACK that ends it (None: end of file)

    @property
    def transaction_modes(self) -> str | None:
        """``SET TRANSACTION ...`` for a file's ``BEGIN ISOLATION LEVEL ...`` (None without options)."""
        if self.begin == "BEGIN":
            return None
        return _BEGIN_KEYWORDS.sub("SET TRANSACTION", self.begin, count=1)


# "BEGIN [WORK|TRANSACTION]" or "START TRANSACTION": what precedes the transaction modes.
_BEGIN_KEYWORDS = re.compile(r"^\s*(?:BEGIN(?:\s+(?:WORK|TRANSACTION)\b)?|START\s+TRANSACTION\b)", re.IGNORECASE)


@dataclass(frozen=True)
class Note:
    """A shape that runs as the previous tool ran it, but that a reviewer should know about."""

    code: str
    line: int
    message: str
    fix: str


@dataclass
class _Shaper:
    """Walks the statements once, closing a unit at every COMMIT/ROLLBACK (or, in a
    non-transactional file, around every statement outside the file's own blocks)."""

    autocommit_file: bool
    path: Any
    units: list[Unit]
    notes: list[Note]
    current: list[Any]
    begin: str = "BEGIN"
    open_line: int | None = None  # line of the file's BEGIN that opened the current transaction
    commits: int = 0

    def note(self, code: str, line: int, message: str, fix: str) -> None:
        if not any(n.code == code for n in self.notes):  # one note per shape and file is enough
            self.notes.append(Note(code, line, message, fix))

    def close(self, *, rollback: bool = False, end_line: int | None = None) -> None:
        if self.current:
            self.units.append(Unit(tuple(self.current), True, self.begin, rollback, end_line))
        self.current, self.open_line = [], None

    def on_begin(self, stmt: Any, has_options: bool) -> None:
        if self.open_line is not None or (self.current and not self.autocommit_file):
            where = self.open_line if self.open_line is not None else self.current[0].line
            if has_options:
                raise MigrationFileError(
                    f"BEGIN with transaction options inside the transaction that starts on line {where};"
                    " PostgreSQL only accepts them before the transaction's first statement",
                    path=self.path,
                    line=stmt.line,
                )
            self.note(
                "nested-begin", stmt.line,
                f"BEGIN inside the transaction that starts on line {where} does nothing",
                "remove this BEGIN",
            )
            return
        self.begin = stmt.sql if has_options else "BEGIN"
        self.open_line = stmt.line

    def on_end(self, stmt: Any, *, rollback: bool, chain: bool) -> None:
        keyword = stmt.sql.split(None, 1)[0].upper()
        if self.open_line is None:
            if self.autocommit_file:
                self.note(
                    f"{'rollback' if rollback else 'commit'}-without-begin", stmt.line,
                    f"{keyword} outside a BEGIN block does nothing in a no-transaction file",
                    f"remove this {keyword}",
                )
                return
            if not rollback:
                self.note(
                    "commit-without-begin", stmt.line,
                    f"{keyword} has no matching BEGIN; the statements before it form one transaction",
                    "add BEGIN; at the start of the transaction",
                )
        if rollback and self.current:
            self.note(
                "rollback-in-file", stmt.line,
                f"{keyword} undoes the statements of its transaction: they run, then are rolled back",
                "remove the statements and the ROLLBACK, or use COMMIT",
            )
        begin, had_statements = self.begin, bool(self.current)
        self.close(rollback=rollback, end_line=stmt.line)
        self.commits += had_statements and not rollback
        if self.commits == 2 and not self.autocommit_file:
            self.note(
                "several-transactions", stmt.line,
                f"this is the file's second {keyword}: if a later statement fails, the transactions before"
                " it stay committed and the file is not recorded",
                "put each transaction in a migration file of its own",
            )
        self.begin = begin if chain else "BEGIN"
        if chain:
            self.open_line = stmt.line

    def on_statement(self, stmt: Any, check_outside: Callable[[Any], None], check_inside: Callable[[Any, int], None]) -> None:
        if not self.autocommit_file:
            self.current.append(stmt)
        elif self.open_line is None:
            check_outside(stmt)
            self.units.append(Unit((stmt,), False))
        else:
            check_inside(stmt, self.open_line)
            self.current.append(stmt)

    def finish(self) -> None:
        if self.open_line is not None:
            self.note(
                "begin-without-commit", self.open_line,
                f"BEGIN on line {self.open_line} has no matching COMMIT; its transaction ends at the end of the file",
                "add COMMIT; at the end of the file",
            )
        if self.current:
            if not self.autocommit_file and self.commits:
                self.note(
                    "statements-after-commit", self.current[0].line,
                    "statements after the file's last COMMIT run in a transaction of their own",
                    "move them before the COMMIT, or into a migration file of their own",
                )
            self.close()


def split_final(units: Sequence[Unit]) -> tuple[tuple[Unit, ...], Unit | None]:
    """(the units before, the file's last transaction) when the file ends with a transaction that
    commits: that one carries the version record.  Otherwise (None): the record goes on its own."""
    if units and units[-1].transactional and not units[-1].rollback:
        return tuple(units[:-1]), units[-1]
    return tuple(units), None


def shape_units(
    statements: Sequence[Any],
    *,
    autocommit_file: bool,
    path: Any,
    control: Callable[[Any], tuple[str, bool, bool] | None],
    check_outside: Callable[[Any], None],
    check_inside: Callable[[Any, int], None],
) -> tuple[list[Any], tuple[Unit, ...], tuple[Note, ...]]:
    """Group ``statements`` into units; returns (statements without transaction control, units, notes).

    ``control(stmt)`` classifies the file's own transaction control as
    ``("begin", has_options, False)`` or ``("end", rollback, chain)``, else None.
    """
    shaper = _Shaper(autocommit_file, path, [], [], [])
    kept: list[Any] = []
    for stmt in statements:
        kind = control(stmt)
        if kind is None:
            kept.append(stmt)
            shaper.on_statement(stmt, check_outside, check_inside)
        elif kind[0] == "begin":
            shaper.on_begin(stmt, kind[1])
        else:
            shaper.on_end(stmt, rollback=kind[1], chain=kind[2])
    shaper.finish()
    if not kept:
        shaper.notes.append(Note(
            "empty-file", 1, "has no SQL statements: it is recorded as applied and runs nothing",
            "add the migration's SQL, or delete the file before it is merged",
        ))
    return kept, tuple(shaper.units), tuple(shaper.notes)
