"""A migration file as a small immutable value: its name's parts, its checksum, its parsed content.

The content is read lazily and parsed once (see ``parsing``); listing files and computing
checksums stay cheap.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import MigrationFileError

if TYPE_CHECKING:
    from .parsing import ParsedSql

__all__ = ["Chain", "MigrationFile"]

_T = TypeVar("_T")

_DESCRIPTION = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)

_CACHE_LOCK = threading.RLock()


@dataclass(frozen=True)
class MigrationFile:
    """A migration file named ``YYYYMMDDHHMMSS_description.sql``; content is read lazily."""

    version: str
    description: str
    path: Path
    # the folder's files in order (``Chain``), for what this file's CALLs reach; None: the file alone
    chain: Any = field(default=None, compare=False, repr=False)

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

    def refuse_unencodable(self, codec: str, encoding: str) -> None:
        """Raise one line naming ``file:line`` at the first character ``codec`` cannot encode.

        What the file sends (statements, COPY rows), checked before any of it runs: the driver
        would otherwise fail between two round trips of the file's transaction.  ``encoding`` is
        how the message names the database's encoding.
        """
        if self.read_bytes().isascii():
            return  # every encoding PostgreSQL offers a client holds ASCII
        for statement in self.parse().statements:
            pieces = [(statement.sql, statement.line)]
            if statement.copy is not None:
                pieces.append((statement.copy.reader().read().decode("utf-8"), statement.copy.line))
            for text, line in pieces:
                try:
                    text.encode(codec)
                except UnicodeEncodeError as err:
                    char = text[err.start]
                    raise MigrationFileError(
                        f"{char!r} (U+{ord(char):04X}) cannot be stored in this database's encoding ({encoding}):"
                        " nothing of the file ran",
                        path=self.path, line=line + text.count("\n", 0, err.start)) from None

    def _parse(self) -> ParsedSql:
        # lazy: a status or a no-op run only lists and checksums files, and never loads the parser
        from .parsing import parse_source
        from .sqlstream import Source

        try:
            earlier = None if self.chain is None else (lambda: self.chain.procedures_before(self.version))
            return parse_source(Source(self.path), path=self.path, earlier=earlier)
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


class Chain:
    """The files of one folder in version order, and which procedures the files before each one define.

    Learnt lazily: the files before one are parsed only when that file CALLs a procedure.
    """

    def __init__(self) -> None:
        self.files: tuple[MigrationFile, ...] = ()
        self._after: list[dict] = []  # procedures defined by files[0..i], for each i learnt so far

    def procedures_before(self, version: str) -> dict:
        """{procedure name: its body commits} as the files before ``version`` leave them."""
        index = next((i for i, migration in enumerate(self.files) if migration.version == version), 0)
        with _CACHE_LOCK:
            # in order, so that an earlier file's own CALLs find what is before it already learnt
            while len(self._after) < index:
                known = dict(self._after[-1]) if self._after else {}
                known.update(self.files[len(self._after)].parse().procedures)
                self._after.append(known)
        return self._after[index - 1] if index else {}
