"""Deploy hazards Squawk cannot see: tables the file itself creates, and serial columns.

Squawk judges one statement at a time (within a transaction it can see).  We parse the whole
file, so we know that a table the file creates is empty and unused while the migration runs:
statements on it never lock or rewrite anything the application uses.  Squawk's lock and
rewrite findings on such statements are dropped (``RULES_MOOT_ON_NEW_TABLES``).

One rule stays hand-written because Squawk misses the case: ``ADD COLUMN ... serial`` on an
existing table fills every row from a sequence (a ``nextval()`` default), which rewrites the
table; Squawk only suggests an identity column there.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from typing import Any

from .parsing import ParsedSql

__all__ = ["Hazard", "RULES_MOOT_ON_NEW_TABLES", "find_hazards", "new_table_spans"]

# Squawk rules about locking, rewriting or breaking a table that is in use: on a table the same
# file created they are moot.  Style rules (prefer-*, ban-char-field, ...) still apply to it.
RULES_MOOT_ON_NEW_TABLES = frozenset(
    {
        "require-concurrent-index-creation",
        "adding-field-with-default",
        "adding-foreign-key-constraint",
        "adding-not-nullable-field",
        "adding-required-field",
        "adding-serial-primary-key-field",
        "changing-column-type",
        "constraint-missing-not-valid",
        "disallowed-unique-constraint",
        "renaming-column",
        "ban-drop-column",
        "ban-drop-not-null",
    }
)

_SERIAL_TYPES = frozenset({"smallserial", "serial", "bigserial", "serial2", "serial4", "serial8"})

# (schema or None, name): a created table without schema matches the name in any schema.
_TableName = tuple[str | None, str]


@dataclass(frozen=True)
class Hazard:
    """One risky statement: where it is, a stable code, a one-line explanation and the fix."""

    line: int
    code: str
    message: str
    fix: str


def find_hazards(parsed: ParsedSql) -> list[Hazard]:
    """The hand-written hazards of ``parsed`` on tables that the file itself does not create."""
    created = _tables_created(parsed)
    hazards: list[Hazard] = []
    for stmt in parsed.statements:
        node = stmt.node
        if _kind(node) == "AlterTableStmt" and node.objtype == "OBJECT_TABLE":
            if not _is_created(node.relation, created):
                for column in _added_columns(node):
                    if _is_serial(column):
                        hazards.append(_serial_hazard(stmt.line, column, _display(node.relation)))
    return hazards


def new_table_spans(parsed: ParsedSql) -> list[tuple[int, int]]:
    """(first line, last line) of every statement that works on a table the file creates."""
    created = _tables_created(parsed)
    spans = []
    for stmt in parsed.statements:
        relation = _target_relation(stmt.node)
        if relation is not None and _is_created(relation, created):
            spans.append((stmt.line, stmt.line + stmt.sql.count("\n")))
    return spans


def _kind(node: Any) -> str:
    return type(node).__name__  # pgparser.Node: PostgreSQL's node type


def _serial_hazard(line: int, column: Any, table: str) -> Hazard:
    return Hazard(
        line,
        "adding-serial-column",
        f"ADD COLUMN {column.colname} filled from a sequence rewrites existing table {table} "
        "under an ACCESS EXCLUSIVE lock",
        "add a nullable column, backfill it in batches, then set its default",
    )


def _added_columns(node: Any) -> Iterator[Any]:
    for cmd in node.cmds or ():
        if cmd.subtype == "AT_AddColumn" and _kind(cmd.def_) == "ColumnDef":
            yield cmd.def_


def _is_serial(column: Any) -> bool:
    """True for serial pseudo-types, which mean "int DEFAULT nextval(...)"."""
    names = column.typeName.names if column.typeName is not None else ()
    return len(names) == 1 and names[0].sval in _SERIAL_TYPES


def _target_relation(node: Any) -> Any:
    """The table (a RangeVar) an index, ALTER TABLE or RENAME statement works on."""
    if _kind(node) in ("IndexStmt", "AlterTableStmt", "RenameStmt"):
        return node.relation
    return None


# --------------------------------------------------------------------------- table names


def _tables_created(parsed: ParsedSql) -> set[_TableName]:
    """Tables (and materialized views) the file creates."""
    return {_range_var_name(rv) for rv in _created_range_vars(stmt.node for stmt in parsed.statements)}


def _created_range_vars(nodes: Iterable[Any]) -> Iterator[Any]:
    """Yield the relation of every statement that creates a table-like relation."""
    for node in nodes:
        kind = _kind(node)
        if kind == "CreateStmt":
            yield node.relation
        elif kind == "CreateTableAsStmt" and node.into is not None:
            yield node.into.rel
        elif kind == "SelectStmt" and node.intoClause is not None:
            yield node.intoClause.rel  # SELECT ... INTO new_table


def _range_var_name(rv: Any) -> _TableName:
    """The comparable (schema, name) of a relation reference."""
    # the parser already folds unquoted identifiers to lower case and keeps quoted ones as written.
    return (rv.schemaname or None, rv.relname)


def _is_created(rv: Any, created: set[_TableName]) -> bool:
    """True when ``rv`` names a created table; a missing schema on either side matches any schema."""
    if rv is None:
        return False
    schema, name = _range_var_name(rv)
    return any(
        name == created_name and (schema is None or created_schema is None or schema == created_schema)
        for created_schema, created_name in created
    )


def _display(rv: Any) -> str:
    """The table name as a user would write it in a message."""
    return f"{rv.schemaname}.{rv.relname}" if rv.schemaname else rv.relname
