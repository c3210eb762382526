"""Parsing a migration file into statements, and grouping them into units to execute.

PostgreSQL's own parser (``pgparser``) is loaded only when a file is actually parsed, so listing
files and computing checksums stay cheap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from ..errors import MigrationFileError
from .nontransactional import ProcedureName, non_transactional_reason, procedure_definition, runs_commit
from .prechecks import Precheck, directive_lines, take_prechecks
from .sqlbatch import ChunkBuilder, is_plain
from .sqlstream import CopyData, Piece, Source, pieces
from .txshape import Note, Unit, shape_units

__all__ = ["TEMPLATE_MARKER", "ParsedSql", "Statement", "parse_source", "parse_sql"]

# The body line of `create`'s template: a file still holding it and no statement was never written.
TEMPLATE_MARKER = "-- your SQL here"

_DIRECTIVE = re.compile(r"\s*--\s*grapevine\s*:\s*no-transaction\s*", re.IGNORECASE)


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Statement:
    """One top-level SQL statement of a migration file, verbatim."""

    sql: str
    line: int
    kind: str
    transactional: bool
    # RESET ALL / DISCARD ALL: the session's settings return to the server's defaults, so the
    # runner puts its own (timeouts) back right after.
    resets_session: bool = False
    # The parse tree's node (pgparser.Node), for analyses such as hazards; not part of the value's identity.
    node: Any = field(default=None, compare=False, repr=False)
    copy: CopyData | None = field(default=None, compare=False, repr=False)  # COPY ... FROM stdin's inline rows


@dataclass(frozen=True)
class ParsedSql:
    """A parsed migration file: its statements and how they are grouped into units to execute."""

    statements: tuple[Statement, ...]
    units: tuple[Unit, ...]
    transactional: bool  # no statement needs to run outside a transaction block
    wrapped: bool  # the file has transaction control of its own
    no_transaction_directive: bool
    notes: tuple[Note, ...] = ()  # shapes worth a warning in `check` (see txshape)
    # `-- grapevine: precheck` SELECTs, taken out of the statements: they run first, read-only
    prechecks: tuple[Precheck, ...] = ()
    # the file's CREATE PROCEDUREs in order: (name, its body runs COMMIT or ROLLBACK), for the files after it
    procedures: tuple[tuple[ProcedureName, bool], ...] = ()


# The procedures the files before this one define (name -> commits), asked for only when a file CALLs one.
Earlier = Callable[[], dict[ProcedureName, bool]]


class _Procedures:
    """What a file learns of procedures as its statements are read: the chain's, then its own so far."""

    def __init__(self, earlier: Earlier | None) -> None:
        self._earlier = earlier
        self.defined: list[tuple[ProcedureName, bool]] = []

    def learn(self, node: Any) -> None:
        definition = procedure_definition(node)
        if definition is not None:
            self.defined.append(definition)

    def commits(self, name: ProcedureName) -> bool:
        known = dict(self._earlier()) if self._earlier is not None else {}
        known.update(self.defined)  # a later CREATE OR REPLACE wins
        return runs_commit(name, known)


# --------------------------------------------------------------------------- parsing


def parse_sql(text: str, *, path: Any = None, batch: bool = False) -> ParsedSql:
    """Split ``text`` into statements with the PostgreSQL parser and group them into units.

    ``batch``: runs of plain statements become one chunk each, as a file's do (else one per statement).
    """
    return parse_source(Source(None, text.encode("utf-8")), path=path, batch=batch)


def parse_source(source: Source, *, path: Any = None, batch: bool = True, earlier: Earlier | None = None) -> ParsedSql:
    """Parse a file as it is read (see ``sqlstream``); plain statements stay in the file (``sqlbatch``).

    ``earlier``: the procedures the chain's earlier files define, so that a CALL of one that commits
    runs outside a transaction (a file's own CREATE PROCEDURE before the CALL counts too).
    """
    directive = _has_directive(source)
    procedures = _Procedures(earlier)
    written = _statements(source, path, procedures, single=directive or not batch)
    autocommit_file = directive or not all(stmt.transactional for stmt in written)
    if autocommit_file and any(getattr(stmt, "count", 1) > 1 for stmt in written):
        procedures = _Procedures(earlier)
        written = _statements(source, path, procedures, single=True)  # each statement runs on its own: one per chunk
    prechecks, written = take_prechecks(written, directive_lines(source), path)
    kept, units, notes = shape_units(
        written,
        autocommit_file=autocommit_file,
        path=path,
        control=lambda stmt: _transaction_control(stmt, path),
        check_outside=lambda stmt: _check_outside_block(stmt, path),
        check_inside=lambda stmt, line: _check_inside_block(stmt, line, path),
    )
    if not kept and _has_template_marker(source):
        # an empty file from the previous tool is recorded as it was; our own untouched template is a mistake
        raise MigrationFileError(
            "is the untouched template from `create`: write the migration, or delete the file", path=path
        )
    wrapped = any(stmt.kind == "TransactionStmt" and _transaction_control(stmt, path) for stmt in written)
    return ParsedSql(tuple(kept), units, not autocommit_file, wrapped, directive, notes, prechecks,
                     tuple(procedures.defined))


def _statements(source: Source, path: Any, procedures: _Procedures, *, single: bool) -> list:
    """The file's statements in order: parsed ones, and chunks of plain ones; COPY data attached."""
    written: list = []
    chunks = ChunkBuilder(source, single=single)
    for piece in pieces(source, path):
        if isinstance(piece, CopyData):
            written[-1] = replace(written[-1], copy=piece)
            continue
        if is_plain(piece.text):
            closed = chunks.add(piece)
            if closed is not None:
                written.append(closed)
            continue
        closed = chunks.flush()
        if closed is not None:
            written.append(closed)
        if written and _needs_copy_data(written[-1]):
            raise _copy_without_data(written[-1], path)
        written.append(_make_statement(piece, path, procedures))
    closed = chunks.flush()
    if closed is not None:
        written.append(closed)
    if written and _needs_copy_data(written[-1]):
        raise _copy_without_data(written[-1], path)
    return written


def _needs_copy_data(stmt: Any) -> bool:
    node = stmt.node
    return stmt.kind == "CopyStmt" and node.is_from and node.filename is None and stmt.copy is None


def _copy_without_data(stmt: Statement, path: Any) -> MigrationFileError:
    return MigrationFileError(
        "COPY ... FROM stdin needs its rows on the lines after it, ended by a line holding only \\."
        " (write the command on one line ending with ;, as pg_dump does)",
        path=path, line=stmt.line,
    )


def _has_directive(source: Source) -> bool:
    """True when the first line is ``-- grapevine: no-transaction``."""
    head = next(source.blocks(4096), b"").decode("utf-8", "replace").removeprefix("\ufeff")
    return _DIRECTIVE.fullmatch(head.split("\n", 1)[0]) is not None


def _has_template_marker(source: Source) -> bool:
    """A file without statements (so: only comments) still holding the body line of `create`'s template."""
    text = b"".join(source.blocks(1 << 20)).decode("utf-8", "replace")
    return TEMPLATE_MARKER in text.splitlines()


def _make_statement(piece: Piece, path: Any, procedures: _Procedures) -> Statement:
    """A statement parsed on its own (its tree only: parsing a whole file at once would hold every tree)."""
    from . import pgparser  # lazy: see the module docstring

    try:
        node = pgparser.parse_one(piece.text)
    except pgparser.ParseError as err:  # the block parsed as a whole: only a parser oddity gets here
        raise MigrationFileError(err.message, path=path, line=piece.line) from err
    reason = non_transactional_reason(node, procedures.commits)
    procedures.learn(node)
    return Statement(piece.text, piece.line, type(node).__name__, reason is None, _resets_session(node), node)


def _resets_session(node: Any) -> bool:
    kind = type(node).__name__
    if kind == "DiscardStmt":
        return node.target.name == "DISCARD_ALL"
    return kind == "VariableSetStmt" and node.kind.name == "VAR_RESET_ALL"


def _transaction_control(stmt: Statement, path: Any) -> tuple[str, bool, bool] | None:
    """The file's own transaction control as ("begin", has_options, False) or ("end", rollback, chain).

    SAVEPOINT, RELEASE and ROLLBACK TO are ordinary statements inside a transaction (None).
    Two-phase commands are refused: PostgreSQL refuses them too, inside a transaction block
    or without ``max_prepared_transactions``, and the tool could not track them.
    """
    if stmt.kind != "TransactionStmt":
        return None
    node = stmt.node
    if node.kind in ("TRANS_STMT_BEGIN", "TRANS_STMT_START"):
        return ("begin", bool(node.options), False)
    if node.kind == "TRANS_STMT_COMMIT":
        return ("end", False, bool(node.chain))
    if node.kind == "TRANS_STMT_ROLLBACK":
        return ("end", True, bool(node.chain))
    label = _TWO_PHASE.get(node.kind)
    if label is not None:
        message = f"{label} is not allowed in a migration; two-phase transactions cannot be tracked by the migration tool"
        raise MigrationFileError(message, path=path, line=stmt.line)
    return None


_TWO_PHASE = {
    "TRANS_STMT_PREPARE": "PREPARE TRANSACTION",
    "TRANS_STMT_COMMIT_PREPARED": "COMMIT PREPARED",
    "TRANS_STMT_ROLLBACK_PREPARED": "ROLLBACK PREPARED",
}


def _check_inside_block(stmt: Statement, block_line: int, path: Any) -> None:
    """PostgreSQL refuses non-transactional statements inside BEGIN/COMMIT: fail early."""
    if not stmt.transactional:
        reason = non_transactional_reason(stmt.node, lambda name: True)  # known not transactional: a CALL's reason too
        raise MigrationFileError(
            f"{reason} cannot run inside the BEGIN/COMMIT block that starts on line {block_line}",
            path=path,
            line=stmt.line,
        )


def _check_outside_block(stmt: Statement, path: Any) -> None:
    """Savepoints need a transaction, which autocommit statements do not have."""
    if stmt.kind == "TransactionStmt":
        keyword = stmt.sql.split(None, 1)[0].upper()
        raise MigrationFileError(
            f"{keyword} only works inside a transaction; in a no-transaction file put it "
            "inside a BEGIN/COMMIT block",
            path=path,
            line=stmt.line,
        )
