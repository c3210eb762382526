"""Deploy-hazard lint: statements that lock or rewrite existing (possibly large, busy) tables.

Tables created by the same file are empty and unused while the migration runs, so statements
on them are never hazards.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pglast import ast
from pglast.enums import AlterTableType, ConstrType, ObjectType

from .sqlfile import ParsedSql

__all__ = ["Hazard", "VOLATILE_FUNCTIONS", "find_hazards"]

# Volatile functions commonly used as column defaults: PostgreSQL must evaluate them per row,
# so ADD COLUMN ... DEFAULT rewrites the table. now(), statement_timestamp() and
# txid_current() are STABLE (evaluated once) and therefore safe.
VOLATILE_FUNCTIONS = frozenset(
    {
        "random",
        "random_normal",
        "clock_timestamp",
        "timeofday",
        "gen_random_uuid",
        "uuidv4",
        "uuidv7",
        "uuid_generate_v1",
        "uuid_generate_v1mc",
        "uuid_generate_v4",
        "nextval",
    }
)

_SERIAL_TYPES = frozenset({"smallserial", "serial", "bigserial", "serial2", "serial4", "serial8"})

# (schema or None, name): a created table without schema matches the name in any schema.
_TableName = tuple[str | None, str]


@dataclass(frozen=True)
class Hazard:
    """One risky statement: where it is, a stable code, and a one-line explanation."""

    line: int
    code: str
    message: str


def find_hazards(parsed: ParsedSql, *, created_tables: set[str] | None = None) -> list[Hazard]:
    """Return the deploy hazards of ``parsed`` on tables that the file itself does not create."""
    created = _tables_created(parsed) | {_parse_table_name(name) for name in created_tables or ()}
    hazards: list[Hazard] = []
    for stmt in parsed.statements:
        for code, message in _statement_hazards(stmt.node, created):
            hazards.append(Hazard(stmt.line, code, message))
    return hazards


def _statement_hazards(node: object, created: set[_TableName]) -> Iterator[tuple[str, str]]:
    """Yield (code, message) pairs for one statement node."""
    if isinstance(node, ast.IndexStmt) and not node.concurrent:
        if not _is_created(node.relation, created):
            yield (
                "index-not-concurrent",
                f"CREATE INDEX on existing table {_display(node.relation)} blocks writes "
                "for the whole build; "
                "use CREATE INDEX CONCURRENTLY in a '-- grapevine: no-transaction' file",
            )
    elif isinstance(node, ast.AlterTableStmt) and node.objtype == ObjectType.OBJECT_TABLE:
        if not _is_created(node.relation, created):
            for cmd in node.cmds or ():
                yield from _alter_table_cmd_hazards(cmd, _display(node.relation))


def _alter_table_cmd_hazards(cmd: ast.AlterTableCmd, table: str) -> Iterator[tuple[str, str]]:
    """Yield hazards of one ALTER TABLE subcommand on an existing table."""
    if cmd.subtype == AlterTableType.AT_AddColumn and isinstance(cmd.def_, ast.ColumnDef):
        yield from _add_column_hazards(cmd.def_, table)
    elif cmd.subtype == AlterTableType.AT_AlterColumnType:
        yield (
            "alter-column-type",
            f"ALTER COLUMN {cmd.name} TYPE on existing table {table} takes an ACCESS EXCLUSIVE lock "
            "and usually rewrites the table",
        )
    elif cmd.subtype == AlterTableType.AT_SetNotNull:
        yield (
            "set-not-null",
            f"SET NOT NULL on {table}.{cmd.name} scans the whole table under an ACCESS EXCLUSIVE lock; "
            f"first add CHECK ({cmd.name} IS NOT NULL) NOT VALID and VALIDATE it",
        )


def _add_column_hazards(column: ast.ColumnDef, table: str) -> Iterator[tuple[str, str]]:
    """Yield hazards of ALTER TABLE ... ADD COLUMN on an existing table."""
    constraints = {c.contype: c for c in column.constraints or () if isinstance(c, ast.Constraint)}
    default = column.raw_default
    if ConstrType.CONSTR_DEFAULT in constraints:
        default = constraints[ConstrType.CONSTR_DEFAULT].raw_expr
    volatile = _volatile_call(default)
    if volatile is not None:
        yield (
            "volatile-default",
            f"ADD COLUMN {column.colname} DEFAULT {volatile}() rewrites existing table {table} "
            "under an ACCESS EXCLUSIVE lock; add the column without a default, then backfill",
        )
    elif _is_serial(column) or ConstrType.CONSTR_IDENTITY in constraints:
        # A sequence-filled column is a nextval() default: every existing row gets a value.
        yield (
            "volatile-default",
            f"ADD COLUMN {column.colname} filled from a sequence rewrites existing table {table} "
            "under an ACCESS EXCLUSIVE lock",
        )
    elif _is_not_null(column, constraints) and default is None and not _is_generated(constraints):
        yield (
            "add-column-not-null-no-default",
            f"ADD COLUMN {column.colname} NOT NULL without a DEFAULT fails if {table} has any rows",
        )


def _volatile_call(expression: object) -> str | None:
    """Name of the first volatile function called anywhere in ``expression``, if any."""
    for node in _walk(expression):
        if isinstance(node, ast.FuncCall) and node.funcname:
            name = node.funcname[-1].sval
            if name in VOLATILE_FUNCTIONS:
                return name
    return None


def _walk(value: object) -> Iterator[ast.Node]:
    """Yield every AST node inside ``value`` (depth first)."""
    if isinstance(value, ast.Node):
        yield value
        for attribute in type(value).__slots__:
            yield from _walk(getattr(value, attribute, None))
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _walk(item)


def _is_serial(column: ast.ColumnDef) -> bool:
    """True for serial pseudo-types, which mean "int DEFAULT nextval(...)"."""
    names = column.typeName.names if column.typeName is not None else ()
    return len(names) == 1 and names[0].sval in _SERIAL_TYPES


def _is_not_null(column: ast.ColumnDef, constraints: dict) -> bool:
    """True when the new column is declared NOT NULL."""
    return bool(column.is_not_null) or ConstrType.CONSTR_NOTNULL in constraints


def _is_generated(constraints: dict) -> bool:
    """True for GENERATED ... STORED columns, which fill themselves."""
    return ConstrType.CONSTR_GENERATED in constraints


# --------------------------------------------------------------------------- table names


def _tables_created(parsed: ParsedSql) -> set[_TableName]:
    """Tables (and materialized views) the file creates."""
    return {_range_var_name(rv) for rv in _created_range_vars(stmt.node for stmt in parsed.statements)}


def _created_range_vars(nodes: Iterable[object]) -> Iterator[ast.RangeVar]:
    """Yield the relation of every statement that creates a table-like relation."""
    for node in nodes:
        if isinstance(node, ast.CreateStmt):
            yield node.relation
        elif isinstance(node, ast.CreateTableAsStmt) and node.into is not None:
            yield node.into.rel
        elif isinstance(node, ast.SelectStmt) and node.intoClause is not None:
            yield node.intoClause.rel  # SELECT ... INTO new_table


def _range_var_name(rv: ast.RangeVar) -> _TableName:
    """The comparable (schema, name) of a relation reference."""
    # pglast already folds unquoted identifiers to lower case and keeps quoted ones as written.
    return (rv.schemaname or None, rv.relname)


def _parse_table_name(name: str) -> _TableName:
    """Parse a caller-supplied ``table`` or ``schema.table``, folding unquoted parts to lower case."""
    parts = [_fold_identifier(part) for part in name.strip().split(".")]
    return (parts[-2] if len(parts) > 1 else None, parts[-1])


def _fold_identifier(part: str) -> str:
    """Fold an identifier like PostgreSQL: quoted keeps its case, unquoted becomes lower case."""
    part = part.strip()
    if len(part) >= 2 and part[0] == part[-1] == '"':
        return part[1:-1].replace('""', '"')
    return part.lower()


def _is_created(rv: ast.RangeVar | None, created: set[_TableName]) -> bool:
    """True when ``rv`` names a created table; a missing schema on either side matches any schema."""
    if rv is None:
        return False
    schema, name = _range_var_name(rv)
    return any(
        name == created_name and (schema is None or created_schema is None or schema == created_schema)
        for created_schema, created_name in created
    )


def _display(rv: ast.RangeVar) -> str:
    """The table name as a user would write it in a message."""
    return f"{rv.schemaname}.{rv.relname}" if rv.schemaname else rv.relname
