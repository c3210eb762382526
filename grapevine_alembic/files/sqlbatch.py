"""Runs of plain statements kept as byte ranges of the file, read back when they are sent.

A seed file of 362,000 INSERTs would need a parse tree and a string per statement (gigabytes);
an INSERT, UPDATE or DELETE needs neither: it is never transaction control, always
transactional, and no analysis (hazards, ``check``) looks inside it.  Consecutive ones become a
``Chunk`` of at most ``CHUNK_BYTES``: one round trip, its text read from the file when it is
sent, so memory stays flat in the file's size.  Statements that matter to the analyses (DDL,
transaction control, DO, SELECT, COPY...) are parsed one by one as before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .sqlstream import Piece, Source, split_text

__all__ = ["CHUNK_BYTES", "Chunk", "ChunkBuilder", "is_plain"]

CHUNK_BYTES = 512 * 1024

_PLAIN = re.compile(r"(?:INSERT|UPDATE|DELETE)\b", re.IGNORECASE | re.ASCII)


def is_plain(sql: str) -> bool:
    """INSERT, UPDATE or DELETE (a WITH query is parsed: it may be a SELECT)."""
    return _PLAIN.match(sql) is not None


@dataclass(frozen=True)
class Chunk:
    """Consecutive plain statements: bytes [start, end) of the file, from the first one's first token."""

    source: Source
    start: int
    end: int
    line: int  # the first statement's line
    last_line: int  # the last statement's last line (where its last token is)
    count: int

    # what the executor and the analyses read of a statement
    kind = "Chunk"
    transactional = True
    resets_session = False
    node = None
    copy = None

    @property
    def sql(self) -> str:
        """The statements as written, with the file's own separators and comments between them."""
        return self.source.text(self.start, self.end)

    @property
    def lines(self) -> str:
        return str(self.line) if self.line == self.last_line else f"{self.line}-{self.last_line}"

    def statements(self) -> list[tuple[str, int]]:
        """(text, line) of each statement, for finding the one that failed."""
        return split_text(self.sql, self.line)


class ChunkBuilder:
    """Folds plain pieces into chunks; ``single``: one statement per chunk (no-transaction files)."""

    def __init__(self, source: Source, *, single: bool):
        self.source, self.single = source, single
        self._open: list | None = None  # [start, end, line, last_line, count]

    def add(self, piece: Piece) -> Chunk | None:
        """Take a plain piece; returns the chunk it closed, if any."""
        done = None
        if self._open is not None and (self.single or piece.end - self._open[0] > CHUNK_BYTES):
            done = self.flush()
        last_line = piece.line + piece.text.rstrip().count("\n")  # a range ends on the statement, not after it
        if self._open is None:
            self._open = [piece.start, piece.end, piece.line, last_line, 1]
        else:
            self._open[1], self._open[3], self._open[4] = piece.end, last_line, self._open[4] + 1
        return done

    def flush(self) -> Chunk | None:
        if self._open is None:
            return None
        start, end, line, last_line, count = self._open
        self._open = None
        return Chunk(self.source, start, end, line, last_line, count)
