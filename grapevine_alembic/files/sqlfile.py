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
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..errors import DuplicateVersion, MigrationFileError
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
        return self._cached("_parsed", lambda: parse_sql(self.read_text(), path=self.path))

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


def discover(directory: Path) -> Discovery:
    """List the migration files directly inside ``directory``, sorted by version."""
    directory = Path(directory)
    if not directory.exists():
        raise MigrationFileError(f"migration directory {directory} does not exist")
    if not directory.is_dir():
        raise MigrationFileError(f"migration directory {directory} is not a directory")
    files: dict[str, MigrationFile] = {}
    warnings: list[str] = []
    for name in _regular_file_names(directory):
        split = _split_migration_name(name)
        if split is None:
            reason = _near_miss_reason(name)
            if reason:
                warnings.append(f"ignoring {directory / name}: {reason}")
            continue
        version, description = split
        if version in files:
            other = files[version].path.name
            raise DuplicateVersion(f"duplicate version {version}: {other} and {name}", path=directory)
        files[version] = MigrationFile(version, description, directory / name)
    ordered = tuple(files[version] for version in sorted(files))
    return Discovery(ordered, tuple(warnings))


def _regular_file_names(directory: Path) -> list[str]:
    """Names of the regular files directly inside ``directory``, sorted for stable output."""
    try:
        with os.scandir(directory) as entries:
            return sorted(entry.name for entry in entries if entry.is_file())
    except OSError as err:
        message = f"cannot list migration directory {directory}: {err.strerror or err}"
        raise MigrationFileError(message) from err


# --------------------------------------------------------------------------- parsing


def parse_sql(text: str, *, path: Any = None) -> ParsedSql:
    """Split ``text`` into statements with the PostgreSQL parser and group them into units."""
    text = text.removeprefix("\ufeff")
    if "\x00" in text:
        # The C parser would silently stop at the NUL byte and drop the rest of the file.
        line = _LineIndex(text).line_of(text.index("\x00"))
        raise MigrationFileError("contains a NUL character", path=path, line=line)
    lines = _LineIndex(text)
    written = [_make_statement(located, lines) for located in _split(text, path)]
    directive = _has_directive(text)
    autocommit_file = directive or not all(stmt.transactional for stmt in written)
    kept, units, notes = shape_units(
        written,
        autocommit_file=autocommit_file,
        path=path,
        control=lambda stmt: _transaction_control(stmt, path),
        check_outside=lambda stmt: _check_outside_block(stmt, path),
        check_inside=lambda stmt, line: _check_inside_block(stmt, line, path),
    )
    if not kept and TEMPLATE_MARKER in text.splitlines():
        # an empty file from the previous tool is recorded as it was; our own untouched template is a mistake
        raise MigrationFileError(
            "is the untouched template from `create`: write the migration, or delete the file", path=path
        )
    wrapped = any(stmt.kind == "TransactionStmt" and _transaction_control(stmt, path) for stmt in written)
    return ParsedSql(tuple(kept), units, not autocommit_file, wrapped, directive, notes)


def _split(text: str, path: Any) -> list[tuple[str, int, Any]]:
    """Split ``text`` with the real PostgreSQL parser into (text, offset, AST node) per statement.

    The file is split first and each statement parsed on its own: pglast's conversion of byte
    offsets to str indexes costs O(non-ASCII characters) per AST node, which makes parsing a
    whole file with much non-ASCII text quadratic (minutes for a large seed file).
    """
    from pglast import parser  # lazy: see the module docstring

    try:
        pieces = parser.split(text, with_parser=True)
    except parser.ParseError as err:
        message = str(err.args[0]) if err.args else "syntax error"
        raise MigrationFileError(message, path=path, line=_error_line(text, err)) from err
    located, position = [], 0
    for piece in pieces:
        offset = _locate(text, piece, position)
        position = offset + len(piece)
        located.append((piece, offset, parser.parse_sql(piece)[0].stmt))
    return located


def _locate(text: str, piece: str, position: int) -> int:
    """Offset of statement text ``piece``, the next statement at or after ``position``.

    Only whitespace, comments and semicolons separate statements, so skipping them finds the
    statement without the risk of matching a copy of it inside a comment.
    """
    first_token = _skip_trivia(text, position)
    if text.startswith(piece, first_token):
        return first_token
    # Some parser versions start a statement at the comments that precede it.
    first_non_blank = _skip_blanks(text, position)
    if text.startswith(piece, first_non_blank):
        return first_non_blank
    offset = text.find(piece, position)
    if offset < 0:  # the pieces are slices of text, so this means a pglast bug
        raise RuntimeError(f"cannot locate statement {piece[:40]!r} in the file")
    return offset


def _error_line(text: str, err: Exception) -> int | None:
    """Line of a pglast ParseError (its second argument is a 0-based character index)."""
    location = err.args[1] if len(err.args) > 1 else None
    if location is not None:
        return _LineIndex(text).line_of(location)
    if "end of input" in str(err.args[0]):
        # pglast reports no index for errors past the last character: blame the last line.
        return text.rstrip().count("\n") + 1
    return None


def _has_directive(text: str) -> bool:
    """True when the first line is ``-- grapevine: no-transaction``."""
    first_line = text.split("\n", 1)[0]
    return _DIRECTIVE.fullmatch(first_line) is not None


class _LineIndex:
    """Maps character offsets to 1-based line numbers in O(log n)."""

    def __init__(self, text: str):
        self._starts = [0] + [match.end() for match in re.finditer("\n", text)]

    def line_of(self, offset: int) -> int:
        """Return the 1-based line containing ``offset``."""
        return bisect_right(self._starts, offset)


def _skip_blanks(text: str, index: int) -> int:
    """Index of the first character at or after ``index`` that is not whitespace or ``;``."""
    while index < len(text) and (text[index].isspace() or text[index] == ";"):
        index += 1
    return index


def _skip_trivia(text: str, index: int) -> int:
    """Index of the first token at or after ``index``, skipping whitespace, comments and ``;``."""
    while True:
        index = _skip_blanks(text, index)
        if text.startswith("--", index):
            newline = text.find("\n", index)
            index = len(text) if newline < 0 else newline + 1
        elif text.startswith("/*", index):
            index = _block_comment_end(text, index)
        else:
            return index


def _block_comment_end(sql: str, start: int) -> int:
    """Offset just after the block comment opening at ``start`` (PostgreSQL nests them)."""
    depth, index = 0, start
    while index < len(sql):
        if sql.startswith("/*", index):
            depth, index = depth + 1, index + 2
        elif sql.startswith("*/", index):
            depth, index = depth - 1, index + 2
            if depth == 0:
                return index
        else:
            index += 1
    return len(sql)


def _make_statement(located: tuple[str, int, Any], lines: _LineIndex) -> Statement:
    """Build a Statement whose text starts at its first token (leading comments dropped)."""
    piece, offset, node = located
    skip = _skip_trivia(piece, 0)
    sql = piece[skip:].rstrip()
    reason = _non_transactional_reason(node)
    kind = type(node).__name__
    return Statement(sql, lines.line_of(offset + skip), kind, reason is None, _resets_session(node), node)


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
