"""PostgreSQL's own parser (libpg_query), and the one module that names its Python binding.

The binding is postgast (BSD-2-Clause; libpg_query is BSD-3-Clause): a permissive licence, so the
tool can ship inside a proprietary image.  Splitting and parsing call the libpg_query library that
postgast ships through ctypes, with its JSON output: importing postgast itself builds its protobuf
classes (about 60 ms), which only the rarer paths pay (deparsing, for the INVALID-index probe).
Nothing is loaded until a file is parsed: listing files and computing checksums never load it.

``Node`` shows the JSON tree as the rest of ``files/`` reads it: a node's class is named after
PostgreSQL's node type (``IndexStmt``; a field typed as one struct, such as ``relation``, gives a
node of class ``Node``), its fields carry PostgreSQL's names (``typeName``, ``def_`` for ``def``),
an unset field is ``None`` (so are false and 0: libpg_query leaves them out), a nested list is a
tuple, and an enum value is its name (a ``str`` with a ``.name``, as a Python enum member has).
"""

from __future__ import annotations

import json
import keyword
from collections.abc import Iterator
from typing import Any

__all__ = [
    "Node", "ParseError", "index_probe", "parse_one", "plpgsql_ends_transaction", "split", "walk",
]


class ParseError(Exception):
    """A syntax error: PostgreSQL's message, and its 0-based character index in the text (None: unknown)."""

    def __init__(self, message: str, location: int | None):
        super().__init__(message, location)
        self.message, self.location = message, location


class EnumName(str):
    """An enum value: compares equal to its name, and has a ``.name`` as a Python enum member does."""

    @property
    def name(self) -> str:
        return str(self)


class Node:
    """A parse-tree node over its JSON object, fields read on access."""

    __slots__ = ("_fields",)

    def __init__(self, fields: dict):
        self._fields = fields

    def __getattr__(self, name: str) -> Any:
        if name.endswith("_") and keyword.iskeyword(name[:-1]):
            name = name[:-1]
        return _value(self._fields.get(name))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._fields})"

    def children(self) -> Iterator[Any]:
        """The values of the fields that are set (nodes, tuples, scalars)."""
        return map(_value, self._fields.values())


_CLASSES: dict[str, type[Node]] = {}


def _value(value: Any) -> Any:
    if isinstance(value, dict):
        return _wrap(value)
    if isinstance(value, list):
        return tuple(map(_value, value))
    if isinstance(value, str):
        return EnumName(value)  # strings are node fields (sval, relname): a str all the same
    return value


def _wrap(fields: dict) -> Any:
    """``{"IndexStmt": {...}}`` as an IndexStmt node; a struct's own fields (lower case) as a Node."""
    if len(fields) == 1:
        (name, inner), = fields.items()
        if name[:1].isupper():
            if name == "List":
                return tuple(map(_value, inner.get("items", ())))
            cls = _CLASSES.get(name)
            if cls is None:
                cls = _CLASSES[name] = type(name, (Node,), {"__slots__": ()})
            return cls(inner)
    return Node(fields)


# --------------------------------------------------------------------------- libpg_query


class _Library:
    """libpg_query's C functions (its public API, pg_query.h), from the copy inside postgast's wheel."""

    def __init__(self):
        import ctypes
        import importlib.util
        import platform
        from pathlib import Path

        class Error(ctypes.Structure):
            _fields_ = [("message", ctypes.c_char_p), ("funcname", ctypes.c_char_p),
                        ("filename", ctypes.c_char_p), ("lineno", ctypes.c_int),
                        ("cursorpos", ctypes.c_int), ("context", ctypes.c_char_p)]

        class Parsed(ctypes.Structure):
            _fields_ = [("tree", ctypes.c_char_p), ("stderr_buffer", ctypes.c_char_p),
                        ("error", ctypes.POINTER(Error))]

        class Function(ctypes.Structure):
            _fields_ = [("tree", ctypes.c_char_p), ("error", ctypes.POINTER(Error))]

        class SplitStmt(ctypes.Structure):
            _fields_ = [("stmt_location", ctypes.c_int), ("stmt_len", ctypes.c_int)]

        class Split(ctypes.Structure):
            _fields_ = [("stmts", ctypes.POINTER(ctypes.POINTER(SplitStmt))), ("n_stmts", ctypes.c_int),
                        ("stderr_buffer", ctypes.c_char_p), ("error", ctypes.POINTER(Error))]

        # the package's folder without importing it: its __init__ builds every protobuf class
        folder = Path(importlib.util.find_spec("postgast").submodule_search_locations[0])
        name = {"Darwin": "libpg_query.dylib", "Windows": "pg_query.dll"}.get(platform.system(), "libpg_query.so")
        lib = ctypes.CDLL(str(folder / name))
        for function, result in (("pg_query_parse", Parsed), ("pg_query_parse_plpgsql", Function),
                                 ("pg_query_split_with_parser", Split)):
            getattr(lib, function).argtypes, getattr(lib, function).restype = [ctypes.c_char_p], result
        for function, argument in (("pg_query_free_parse_result", Parsed),
                                   ("pg_query_free_plpgsql_parse_result", Function),
                                   ("pg_query_free_split_result", Split)):
            getattr(lib, function).argtypes, getattr(lib, function).restype = [argument], None
        self.lib = lib

    def call(self, function: str, free: str, text: str, reader):
        """``reader(result, data)`` of ``function`` on ``text``; ParseError with the error's character index."""
        data = text.encode("utf-8")
        result = getattr(self.lib, function)(data)
        try:
            if result.error:
                error = result.error.contents
                index = error.cursorpos - 1  # 1-based character position; 0: none, past the end: none either
                raise ParseError(error.message.decode("utf-8", "replace"),
                                 index if 0 <= index < len(text) else None)
            return reader(result, data)
        finally:
            getattr(self.lib, free)(result)


_LIBRARY: _Library | None = None


def _library() -> _Library:
    global _LIBRARY
    if _LIBRARY is None:
        _LIBRARY = _Library()
    return _LIBRARY


def split(text: str) -> tuple[slice, ...]:
    """Each statement of ``text`` as a character slice, from its first token to its end (no ``;``).

    The text must parse; else ``ParseError``.
    """
    return _library().call("pg_query_split_with_parser", "pg_query_free_split_result", text,
                           lambda result, data: _slices(text, data, result))


def _slices(text: str, data: bytes, result: Any) -> tuple[slice, ...]:
    ascii_text = len(data) == len(text)
    slices = []
    for i in range(result.n_stmts):
        stmt = result.stmts[i].contents
        start, end = stmt.stmt_location, stmt.stmt_location + stmt.stmt_len
        if not ascii_text:  # callers pass ASCII text where speed matters (sqlstream._ascii)
            start, end = len(data[:start].decode("utf-8")), len(data[:end].decode("utf-8"))
        piece = text[start:end]
        stripped = piece.lstrip()
        start += len(piece) - len(stripped)
        slices.append(slice(start, start + len(stripped.rstrip())))
    return tuple(slices)


def parse_one(sql: str) -> Any:
    """The first statement of ``sql`` as a Node, None for no statement (``ParseError`` if it does not parse)."""
    tree = _library().call("pg_query_parse", "pg_query_free_parse_result", sql,
                           lambda result, data: json.loads(result.tree))
    stmts = tree.get("stmts") or ()
    return _value(stmts[0]["stmt"]) if stmts else None


def walk(node: Any) -> Iterator[Node]:
    """Every node below ``node`` (itself included), depth first."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, tuple):
            stack.extend(item)
        elif isinstance(item, Node):
            yield item
            stack.extend(item.children())


def plpgsql_ends_transaction(body: str) -> bool | None:
    """Whether a PL/pgSQL body runs COMMIT or ROLLBACK (not ROLLBACK TO); None when it does not parse."""
    tag = "$grapevine$"
    while tag in body:
        tag = tag[:-1] + "_$"
    sql = f"CREATE FUNCTION pg_temp.grapevine_probe() RETURNS void LANGUAGE plpgsql AS {tag}{body}{tag}"
    try:
        text = _library().call("pg_query_parse_plpgsql", "pg_query_free_plpgsql_parse_result", sql,
                               lambda result, data: result.tree.decode("utf-8"))
    except ParseError:
        return None
    return '"PLpgSQL_stmt_commit"' in text or '"PLpgSQL_stmt_rollback"' in text


# --------------------------------------------------------------------------- deparsing (postgast itself)


def index_probe(sql: str, *, schema: str, table: str) -> tuple[str, str]:
    """For a CREATE INDEX statement: its table as SQL (without ONLY), and the statement without
    CONCURRENTLY or TABLESPACE, on the temporary table ``schema.table``."""
    import postgast  # lazy: its protobuf classes, for deparsing

    pb = postgast.pg_query_pb2
    index = postgast.parse(sql).stmts[0].stmt.index_stmt
    relation = pb.RangeVar(catalogname=index.relation.catalogname, schemaname=index.relation.schemaname,
                           relname=index.relation.relname, inh=True, relpersistence="p")
    select = pb.SelectStmt(from_clause=[pb.Node(range_var=relation)], limit_option=pb.LIMIT_OPTION_DEFAULT,
                           op=pb.SETOP_NONE)
    index.concurrent = False
    index.table_space = ""
    index.relation.CopyFrom(pb.RangeVar(schemaname=schema, relname=table, inh=True, relpersistence="t"))

    def deparse(stmt: Any) -> str:
        return postgast.deparse(pb.ParseResult(stmts=[pb.RawStmt(stmt=stmt)]))

    return deparse(pb.Node(select_stmt=select)).removeprefix("SELECT FROM ").strip(), deparse(pb.Node(index_stmt=index))
