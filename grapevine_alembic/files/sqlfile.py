"""Migration ``.sql`` files as small immutable values: names, checksums and parsed statements.

Listing files and computing checksums must stay cheap, so pglast (a large C extension) is
imported only when a file is actually parsed.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from ..errors import DuplicateVersion, MigrationFileError
from .sqlbatch import ChunkBuilder, is_plain
from .sqlstream import CopyData, Piece, Source, pieces
from .txshape import Note, Unit, shape_units

__all__ = [
    "Discovery",
    "Note",
    "MigrationFile",
    "ParsedSql",
    "Statement",
    "Unit",
    "discover",
    "is_migration_name",
    "parse_sql",
]

SCHEMA_FILE_NAME = "schema.sql"
# The body line of `create`'s template: a file still holding it and no statement was never written.
TEMPLATE_MARKER = "-- your SQL here"

_T = TypeVar("_T")

# re.ASCII: \d and friends would otherwise accept non-ASCII digits such as "٢".
# The previous tool took every "*.sql" file and the version up to the first "_", so any
# description is accepted here too; `check` warns about characters beyond [A-Za-z0-9_-].
_MIGRATION_NAME = re.compile(r"([0-9]{14})_([^/\\]+)\.sql", re.ASCII)
_DESCRIPTION = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)
_LEADING_DIGITS = re.compile(r"[0-9]*", re.ASCII)
_DIRECTIVE = re.compile(r"\s*--\s*grapevine\s*:\s*no-transaction\s*", re.IGNORECASE)

_NAME_FORMAT = "YYYYMMDDHHMMSS_description.sql"


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
    # The pglast AST node, for analyses such as hazards; not part of the value's identity.
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


_CACHE_LOCK = threading.RLock()


@dataclass(frozen=True)
class MigrationFile:
    """A migration file named ``YYYYMMDDHHMMSS_description.sql``; content is read lazily."""

    version: str
    description: str
    path: Path

    @property
    def plain_description(self) -> bool:
        """Whether the description uses only letters, digits, _ and - (what `create` writes)."""
        return _DESCRIPTION.fullmatch(self.description) is not None

    @property
    def message(self) -> str:
        """The description in words, e.g. ``create users`` for ``create_users``."""
        return self.description.replace("_", " ").replace("-", " ")

    @property
    def checksum(self) -> str:
        """SHA-256 hex digest of the file's bytes, computed once."""
        return self._cached("_checksum", self._compute_checksum)

    def read_bytes(self) -> bytes:
        """Return the raw content of the file."""
        try:
            return self.path.read_bytes()
        except OSError as err:
            raise MigrationFileError(f"cannot read file: {err.strerror or err}", path=self.path) from err

    def read_text(self) -> str:
        """Return the content of the file decoded as UTF-8 (a leading BOM is dropped)."""
        try:
            return self.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as err:
            message = f"is not valid UTF-8 ({err.reason} at byte {err.start})"
            raise MigrationFileError(message, path=self.path) from err

    def parse(self) -> ParsedSql:
        """Parse the file once and return the cached result."""
        return self._cached("_parsed", self._parse)

    def _parse(self) -> ParsedSql:
        try:
            return parse_source(Source(self.path), path=self.path)
        except OSError as err:
            raise MigrationFileError(f"cannot read file: {err.strerror or err}", path=self.path) from err

    def _compute_checksum(self) -> str:
        """Hash the file in chunks (no need to hold it in memory twice)."""
        try:
            with self.path.open("rb") as handle:
                return hashlib.file_digest(handle, "sha256").hexdigest()
        except OSError as err:
            raise MigrationFileError(f"cannot read file: {err.strerror or err}", path=self.path) from err

    def _cached(self, key: str, compute: Callable[[], _T]) -> _T:
        """Return ``compute()``, computed on first use and remembered on the instance."""
        # Frozen dataclasses forbid setattr, but the instance __dict__ is still writable.  The
        # lock matters: a fan-out starts several threads at once, and without it each of them
        # parsed every file (measured: 165 parses of a 40-file chain with five threads).
        cache = self.__dict__
        if key not in cache:
            with _CACHE_LOCK:
                if key not in cache:
                    cache[key] = compute()
        return cache[key]


@dataclass(frozen=True)
class Discovery:
    """Migration files found in a directory, sorted by version, plus warnings about near misses."""

    files: tuple[MigrationFile, ...]
    warnings: tuple[str, ...]
    # the warnings that make a writing command refuse to run: a file a deploy would skip although
    # it was probably meant to run (a year-0000 name cannot be a real migration's date: it warns only)
    blocking: tuple[str, ...] = ()


# --------------------------------------------------------------------------- file names


def is_migration_name(name: str) -> bool:
    """Return True when ``name`` is a valid migration file name (including a real timestamp)."""
    return _split_migration_name(name) is not None


def _split_migration_name(name: str) -> tuple[str, str] | None:
    """Return (version, description) for a valid migration name, else None."""
    match = _MIGRATION_NAME.fullmatch(name)
    if match is None or not _is_valid_timestamp(match[1]):
        return None
    return match[1], match[2]


def _is_valid_timestamp(digits: str) -> bool:
    """Return True when 14 digits form a real YYYYMMDDHHMMSS date and time."""
    parts = (digits[0:4], digits[4:6], digits[6:8], digits[8:10], digits[10:12], digits[12:14])
    try:
        datetime.datetime(*(int(part) for part in parts))
    except ValueError:
        return False
    return True


def _near_miss_reason(name: str) -> str | None:
    """Explain why a file that is not a migration probably was meant to be one; None to stay quiet."""
    if name == SCHEMA_FILE_NAME or name.startswith("."):
        return None
    if not name.lower().endswith(".sql"):
        # Backups and renamed files of real migrations ("..._x.sql.bak") deserve a word.
        if len(_LEADING_DIGITS.match(name)[0]) >= 8:
            return f"only files ending in .sql are migrations ({_NAME_FORMAT})"
        return None
    stem, extension = name[:-4], name[-4:]
    digits = _LEADING_DIGITS.match(stem)[0]
    rest = stem[len(digits):]
    if len(digits) != 14:
        return f"a migration name needs a 14-digit timestamp ({_NAME_FORMAT})"
    if not _is_valid_timestamp(digits):
        return f"{digits} is not a valid UTC date and time (YYYYMMDDHHMMSS)"
    if rest in ("", "_"):
        return f"a migration name needs a description after the timestamp ({_NAME_FORMAT})"
    if not rest.startswith("_"):
        return f"the timestamp must be followed by _ and a description ({_NAME_FORMAT})"
    if extension != ".sql":
        return "the extension must be lower-case .sql"
    return None


def _year_zero(name: str) -> bool:
    """A 14-digit timestamp in year 0000: a placeholder (``00000000000000_baseline.sql``), never a date."""
    digits = _LEADING_DIGITS.match(name)[0]
    return len(digits) == 14 and digits.startswith("0000")


def discover(directory: Path) -> Discovery:
    """List the migration files directly inside ``directory``, sorted by version."""
    directory = Path(directory)
    if not directory.exists():
        raise MigrationFileError(f"migration directory {directory} does not exist")
    if not directory.is_dir():
        raise MigrationFileError(f"migration directory {directory} is not a directory")
    files: dict[str, MigrationFile] = {}
    warnings: list[str] = []
    blocking: list[str] = []
    for name, regular in _entries(directory):
        split = _split_migration_name(name)
        if split is not None and not regular:
            # skipping it would run the files around it and report it out of order once it appears
            raise MigrationFileError(f"is named like a migration but is {_what_it_is(directory / name)}",
                                     path=directory / name)
        if split is None:
            reason = _near_miss_reason(name) if regular else None
            if reason:
                warnings.append(f"ignoring {directory / name}: {reason}")
                if not _year_zero(name):
                    blocking.append(warnings[-1])
            continue
        version, description = split
        if version in files:
            other = files[version].path.name
            raise DuplicateVersion(f"duplicate version {version}: {other} and {name}", path=directory)
        files[version] = MigrationFile(version, description, directory / name)
    ordered = tuple(files[version] for version in sorted(files))
    return Discovery(ordered, tuple(warnings), tuple(blocking))


def _entries(directory: Path) -> list[tuple[str, bool]]:
    """(name, is a regular file or a symlink to one) of every entry directly inside ``directory``, sorted."""
    try:
        with os.scandir(directory) as entries:
            return sorted((entry.name, entry.is_file()) for entry in entries)
    except OSError as err:
        message = f"cannot list migration directory {directory}: {err.strerror or err}"
        raise MigrationFileError(message) from err


def _what_it_is(path: Path) -> str:
    """What a non-file entry is, in words, for the error naming it."""
    if path.is_symlink() and not path.exists():
        return f"a symbolic link to {os.readlink(path)}, which does not exist"
    if path.is_dir():
        return "a directory"
    return "not a regular file (a socket, a pipe or a device)"


# --------------------------------------------------------------------------- parsing


def parse_sql(text: str, *, path: Any = None, batch: bool = False) -> ParsedSql:
    """Split ``text`` into statements with the PostgreSQL parser and group them into units.

    ``batch``: runs of plain statements become one chunk each, as a file's do (else one per statement).
    """
    return parse_source(Source(None, text.encode("utf-8")), path=path, batch=batch)


def parse_source(source: Source, *, path: Any = None, batch: bool = True) -> ParsedSql:
    """Parse a file as it is read (see ``sqlstream``); plain statements stay in the file (``sqlbatch``)."""
    directive = _has_directive(source)
    written = _statements(source, path, single=directive or not batch)
    autocommit_file = directive or not all(stmt.transactional for stmt in written)
    if autocommit_file and any(getattr(stmt, "count", 1) > 1 for stmt in written):
        written = _statements(source, path, single=True)  # each statement runs on its own: one per chunk
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
    return ParsedSql(tuple(kept), units, not autocommit_file, wrapped, directive, notes)


def _statements(source: Source, path: Any, *, single: bool) -> list:
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
        written.append(_make_statement(piece, path))
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


def _make_statement(piece: Piece, path: Any) -> Statement:
    """A statement parsed on its own (pglast's offsets cost O(non-ASCII characters) per node on a whole file)."""
    from pglast import parser  # lazy: see the module docstring

    try:
        node = parser.parse_sql(piece.text)[0].stmt
    except parser.ParseError as err:  # the block parsed as a whole: only a pglast oddity gets here
        raise MigrationFileError(str(err.args[0]) if err.args else "syntax error", path=path, line=piece.line) from err
    reason = _non_transactional_reason(node)
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
    from pglast.enums import TransactionStmtKind as Kind

    node = stmt.node
    if node.kind in (Kind.TRANS_STMT_BEGIN, Kind.TRANS_STMT_START):
        return ("begin", bool(node.options), False)
    if node.kind == Kind.TRANS_STMT_COMMIT:
        return ("end", False, bool(node.chain))
    if node.kind == Kind.TRANS_STMT_ROLLBACK:
        return ("end", True, bool(node.chain))
    label = _TWO_PHASE.get(node.kind.name)
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
        reason = _non_transactional_reason(stmt.node)
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


# --------------------------------------------------------------------------- transactional?


def _non_transactional_reason(node: Any) -> str | None:
    """Name the statement if PostgreSQL refuses to run it inside a transaction block, else None."""
    kind = type(node).__name__
    if kind in _ALWAYS_NON_TRANSACTIONAL:
        return _ALWAYS_NON_TRANSACTIONAL[kind]
    check = _CONDITIONALLY_NON_TRANSACTIONAL.get(kind)
    return check(node) if check else None


# Statements that call PreventInTransactionBlock() unconditionally (or in their usual form:
# CREATE/DROP SUBSCRIPTION with a replication slot, ALTER SUBSCRIPTION ... REFRESH).
# Running them in autocommit is always safe, so being conservative costs nothing.
_ALWAYS_NON_TRANSACTIONAL = {
    "CreatedbStmt": "CREATE DATABASE",
    "DropdbStmt": "DROP DATABASE",
    "AlterSystemStmt": "ALTER SYSTEM",
    "CreateTableSpaceStmt": "CREATE TABLESPACE",
    "DropTableSpaceStmt": "DROP TABLESPACE",
    "CreateSubscriptionStmt": "CREATE SUBSCRIPTION",
    "DropSubscriptionStmt": "DROP SUBSCRIPTION",
    "AlterSubscriptionStmt": "ALTER SUBSCRIPTION",
}


def _index_reason(node: Any) -> str | None:
    """CREATE INDEX CONCURRENTLY."""
    return "CREATE INDEX CONCURRENTLY" if node.concurrent else None


def _drop_reason(node: Any) -> str | None:
    """DROP INDEX CONCURRENTLY (only indexes accept CONCURRENTLY)."""
    return "DROP INDEX CONCURRENTLY" if node.concurrent else None


def _reindex_reason(node: Any) -> str | None:
    """REINDEX CONCURRENTLY, or REINDEX of a whole schema, database or system catalog."""
    if any(param.defname == "concurrently" and _defelem_is_true(param) for param in node.params or ()):
        return "REINDEX CONCURRENTLY"
    # REINDEX SCHEMA/DATABASE/SYSTEM commit once per table, so they refuse a transaction block.
    kind = node.kind.name
    if kind in ("REINDEX_OBJECT_SCHEMA", "REINDEX_OBJECT_DATABASE", "REINDEX_OBJECT_SYSTEM"):
        return "REINDEX " + kind.removeprefix("REINDEX_OBJECT_")
    return None


def _vacuum_reason(node: Any) -> str | None:
    """VACUUM, but not a plain ANALYZE (same node)."""
    return "VACUUM" if node.is_vacuumcmd else None


def _cluster_reason(node: Any) -> str | None:
    """CLUSTER of every previously clustered table."""
    return "CLUSTER without a table name" if node.relation is None else None


def _alter_database_reason(node: Any) -> str | None:
    """ALTER DATABASE ... SET TABLESPACE (other ALTER DATABASE forms are transactional)."""
    if any(option.defname == "tablespace" for option in node.options or ()):
        return "ALTER DATABASE ... SET TABLESPACE"
    return None


def _alter_table_reason(node: Any) -> str | None:
    """ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY."""
    for cmd in node.cmds or ():
        partition = cmd.def_
        if type(partition).__name__ == "PartitionCmd" and partition.concurrent:
            return "DETACH PARTITION CONCURRENTLY"
    return None


def _discard_reason(node: Any) -> str | None:
    """DISCARD ALL (DISCARD PLANS/SEQUENCES/TEMP are transactional)."""
    return "DISCARD ALL" if node.target.name == "DISCARD_ALL" else None


_CONDITIONALLY_NON_TRANSACTIONAL: dict[str, Callable[[Any], str | None]] = {
    "IndexStmt": _index_reason,
    "DropStmt": _drop_reason,
    "ReindexStmt": _reindex_reason,
    "VacuumStmt": _vacuum_reason,
    "ClusterStmt": _cluster_reason,
    "AlterDatabaseStmt": _alter_database_reason,
    "AlterTableStmt": _alter_table_reason,
    "DiscardStmt": _discard_reason,
}


def _defelem_is_true(option: Any) -> bool:
    """Evaluate a boolean option the way PostgreSQL's defGetBoolean does (no value = true)."""
    value = option.arg
    if value is None:
        return True
    kind = type(value).__name__
    if kind == "Integer":
        return value.ival != 0
    if kind == "Boolean":
        return bool(value.boolval)
    if kind == "String":
        return value.sval.lower() in ("true", "on")
    return True
