"""A migration file split into statements as it is read, one bounded block at a time.

PostgreSQL's own parser (``pgparser.split``) finds the statements of each block of about
1 MiB; the block's last statement may be cut, so it is carried into the next block.  A block
that fails to parse only because it was cut (an unterminated quote, "end of input", an error
on its last line) is grown with the next one; any other error is the file's error.  Memory
stays bounded by the block size whatever the file's size, and nothing is kept but what the
caller keeps.

``COPY ... FROM stdin;`` followed by inline data rows up to a line ``\\.`` (as pg_dump and psql
write it) yields the statement, then a ``CopyData`` with the data's byte range: the rows are
never parsed as SQL, nor held in memory.  pg_dump's ``\\restrict KEY`` / ``\\unrestrict KEY`` lines
are skipped.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MigrationFileError

__all__ = ["BLOCK_BYTES", "CopyData", "Piece", "Source", "pieces", "split_text"]

BLOCK_BYTES = 1 << 20

# A line that ends a COPY ... FROM STDIN command: the data starts on the next line.
_COPY_LINE = re.compile(r"^[ \t]*COPY\b[^\n]*\bFROM[ \t]+STDIN\b[^\n]*;[ \t]*\r?$", re.IGNORECASE | re.MULTILINE)
_COPY_END = re.compile(r"^\\\.\r?$", re.MULTILINE)


@dataclass(frozen=True)
class Source:
    """Where a file's bytes are: the file itself, or bytes held in memory (``parse_sql`` of a text)."""

    path: Path | None
    data: bytes | None = None

    def read(self, start: int, end: int) -> bytes:
        if self.data is not None:
            return self.data[start:end]
        with open(self.path, "rb") as handle:
            handle.seek(start)
            return handle.read(end - start)

    def text(self, start: int, end: int) -> str:
        return self.read(start, end).decode("utf-8")

    def open_range(self, start: int, end: int) -> _RangeReader:
        return _RangeReader(self, start, end)

    def blocks(self, size: int) -> Iterator[bytes]:
        if self.data is not None:
            for offset in range(0, len(self.data), size):
                yield self.data[offset:offset + size]
            return
        with open(self.path, "rb") as handle:
            while block := handle.read(size):
                yield block


class _RangeReader:
    """A file-like object over a byte range of a source, for psycopg2's ``copy_expert``."""

    def __init__(self, source: Source, start: int, end: int):
        self.source, self.position, self.end = source, start, end

    def read(self, size: int = -1) -> bytes:
        size = self.end - self.position if size is None or size < 0 else min(size, self.end - self.position)
        if size <= 0:
            return b""
        data = self.source.read(self.position, self.position + size)
        self.position += len(data)
        return data

    def readline(self, size: int = -1) -> bytes:  # copy_expert only calls read(); here for completeness
        return self.read(size)


@dataclass(frozen=True)
class Piece:
    """One statement: its text from its first token (no ``;``), first line and byte range."""

    text: str
    line: int
    start: int
    end: int


@dataclass(frozen=True)
class CopyData:
    """The inline rows after a ``COPY ... FROM stdin`` statement: bytes [start, end) of the source."""

    source: Source
    start: int
    end: int
    line: int  # the first data row's line

    def reader(self) -> _RangeReader:
        return self.source.open_range(self.start, self.end)


class _Blocks:
    """Decoded text in blocks that end at a line end (a BOM and invalid UTF-8 handled)."""

    def __init__(self, source: Source, path: Any, size: int):
        self._raw = source.blocks(size)
        self._path = path
        self._rest = b""
        self._byte = 0  # source offset of the next text returned
        self._line = 1
        self.eof = False
        self.bom = 0

    def next(self) -> str:
        data = self._rest
        while not self.eof:
            block = next(self._raw, b"")
            if not block:
                self.eof = True
                break
            data += block
            cut = data.rfind(b";\n", len(data) // 2)  # a statement's end is the likeliest clean cut
            cut = cut + 2 if cut >= 0 else data.rfind(b"\n") + 1
            if cut > 0:
                data, self._rest = data[:cut], data[cut:]
                break
        else:
            self._rest = b""
        if self.eof:
            self._rest = b""
        if self._byte == 0 and data.startswith(b"\xef\xbb\xbf"):
            data, self.bom, self._byte = data[3:], 3, 3
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            message = f"is not valid UTF-8 ({err.reason} at byte {self._byte + err.start})"
            raise MigrationFileError(message, path=self._path) from err
        if "\x00" in text:  # the C parser would silently stop at the NUL byte and drop the rest
            line = self._line + text.count("\n", 0, text.index("\x00"))
            raise MigrationFileError("contains a NUL character", path=self._path, line=line)
        self._byte += len(data)
        self._line += text.count("\n")
        return text


class _Cursor:
    """Walks forward through the buffer, keeping the line and byte offset of a character index."""

    def __init__(self, text: str, line: int, byte: int):
        self.text, self.index, self.line, self.byte = text, 0, line, byte
        self.ascii = text.isascii()

    def to(self, index: int) -> None:
        part = self.text[self.index:index]
        self.line += part.count("\n")
        self.byte += len(part) if self.ascii else len(part.encode("utf-8"))
        self.index = index


def pieces(source: Source, path: Any = None, *, block_size: int = BLOCK_BYTES) -> Iterator[Piece | CopyData]:
    """The statements of ``source`` in order, each followed by its ``CopyData`` when it is COPY FROM STDIN."""
    from . import pgparser  # lazy: not needed to list files

    blocks = _Blocks(source, path, block_size)
    buf, line, byte = blocks.next(), 1, blocks.bom
    grow, search = False, 0
    while True:
        if (grow or len(buf) < block_size) and not blocks.eof:
            buf += blocks.next()
            grow = False
            continue
        copy = _COPY_LINE.search(buf, search)
        text = buf[:copy.end()] if copy else buf
        final = blocks.eof and copy is None
        try:
            slices = pgparser.split(_parseable(text))
        except pgparser.ParseError as err:
            location = err.location
            if copy is not None and _maybe_cut(err, text, location):
                search = copy.end()  # that COPY line sits inside a string, comment or body: not a command
                continue
            if copy is None and not blocks.eof and _maybe_cut(err, text, location):
                grow = True
                continue
            raise _file_error(text, line, path) from err
        cursor = _Cursor(buf, line, byte)
        if copy is not None:
            if not slices or not _is_copy_from_stdin(text[slices[-1]]):
                search = copy.end()
                continue
            yield from _emit(slices, cursor)
            cursor.to(min(copy.end() + 1, len(buf)))
            data = yield from _copy_data(source, path, blocks, buf[cursor.index:], cursor.line, cursor.byte)
            buf, line, byte = data
            search = 0
            continue
        if final:
            yield from _emit(slices, cursor)
            return
        if len(slices) <= 1 and slices:
            grow = True  # one statement, perhaps cut: read on
            if blocks.eof:
                yield from _emit(slices, cursor)
                return
            continue
        keep = slices[-1].start if slices else len(buf)
        yield from _emit(slices[:-1], cursor)
        cursor.to(keep)
        buf, line, byte, search = buf[keep:], cursor.line, cursor.byte, 0


def _emit(slices, cursor: _Cursor) -> Iterator[Piece]:
    for piece in slices:
        cursor.to(piece.start)
        start_line, start_byte = cursor.line, cursor.byte
        cursor.to(piece.stop)
        yield Piece(cursor.text[piece], start_line, start_byte, cursor.byte)


def _copy_data(source: Source, path: Any, blocks: _Blocks, buf: str, line: int, byte: int):
    """Skip the rows up to the ``\\.`` line; returns (the text after it, its line, its byte offset)."""
    first_line, start = line, byte
    while True:
        end = _COPY_END.search(buf)
        if end is not None:
            cursor = _Cursor(buf, line, byte)
            cursor.to(end.start())
            data_end = cursor.byte
            cursor.to(min(end.end() + 1, len(buf)))
            yield CopyData(source, start, data_end, first_line)
            return buf[cursor.index:], cursor.line, cursor.byte
        if blocks.eof:
            raise MigrationFileError(
                f"the COPY data that starts on line {first_line} has no end marker (a line holding only \\.)",
                path=path, line=first_line - 1,
            )
        cursor = _Cursor(buf, line, byte)
        cursor.to(len(buf))  # every block ends at a line end: no marker can straddle two
        buf, line, byte = blocks.next(), cursor.line, cursor.byte


def _is_copy_from_stdin(sql: str) -> bool:
    from . import pgparser

    try:
        node = pgparser.parse_one(sql)
    except pgparser.ParseError:
        return False
    return type(node).__name__ == "CopyStmt" and node.is_from and node.filename is None and not node.query


def _maybe_cut(err: Any, text: str, location: int | None) -> bool:
    """Whether a parse error may come from where the block was cut rather than from the file."""
    message = err.message
    if "unterminated" in message or "end of input" in message or location is None:
        return True
    return location >= text.rfind("\n", 0, len(text.rstrip()))  # on the block's last line


# pg_dump's (15.14+, 16.10+, 17.6+, 18) psql meta-commands around its output: no SQL, nothing to
# send; the parser sees them as line comments of the same length.
_PSQL_RESTRICT = re.compile(r"^\\[ur](?=(?:nrestrict|estrict)[ \t]+\S+[ \t]*\r?$)", re.MULTILINE)


def _parseable(text: str) -> str:
    return _ascii(_PSQL_RESTRICT.sub("--", text) if "restrict" in text else text)


def _ascii(text: str) -> str:
    """``text`` with every non-ASCII character as ``x``: the same statements at the same indexes.

    The parser reports byte offsets; turning them into character indexes costs O(characters before
    each statement), quadratic on a block of non-ASCII text; outside strings and comments a non-ASCII
    character can only be part of an identifier, as ``x`` is.
    """
    return text if text.isascii() else text.encode("ascii", "grapevine-ascii").decode("ascii")


codecs.register_error("grapevine-ascii", lambda err: ("x" * (err.end - err.start), err.end))


def _file_error(text: str, first_line: int, path: Any) -> MigrationFileError:
    """The parse error of the text as written (the message quotes it, non-ASCII characters included)."""
    from . import pgparser

    try:
        pgparser.split(_PSQL_RESTRICT.sub("--", text))
        message, location = "syntax error", None  # not reached: the text failed as ASCII too
    except pgparser.ParseError as err:
        message, location = err.message, err.location
    return MigrationFileError(message, path=path, line=_error_line(text, location, first_line))


def _error_line(text: str, location: int | None, first_line: int) -> int | None:
    """Line of a pgparser.ParseError (its location is a 0-based character index)."""
    if location is not None:
        return first_line + text.count("\n", 0, location)
    # the parser reports no index for errors past the last character: blame the last line.
    return first_line + text.rstrip().count("\n")


def split_text(text: str, first_line: int) -> list[tuple[str, int]]:
    """(statement, line) of a chunk's text, already known to parse: for finding a failing statement."""
    source = Source(None, text.encode("utf-8"))
    return [(p.text, first_line - 1 + p.line) for p in pieces(source) if isinstance(p, Piece)]
