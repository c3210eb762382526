"""Statements of a migration file that would create, alter, drop, truncate or write the tool's tables.

The version table and the ledger are the tool's bookkeeping: a file that creates
``alembic_version`` (as an Alembic or golang-migrate project's first file may) leaves two
heads behind, and one that alters ``schema_migrations`` changes the ledger under the tool.
In the control database the rollout record (``rollout_table`` and its ``_tenants`` table) and
drift's ``verified_table`` are the tool's too: a control file that writes them is refused the same way.
Such a file is refused before anything of it runs, on both roads; ``check`` reports the same
finding.  Read from PostgreSQL's own parse tree (``pgparser``), never by matching text, so writable
CTEs (``WITH x AS (INSERT INTO ...)``) count and comments or strings do not.  What the parser
cannot see (dynamic SQL in ``DO``/``EXECUTE``, functions) is not caught.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from ..errors import MigrationFileError
from ..tool_tables import ToolTables

CODE = "tool-table"

# statement node -> (what it does, the attribute(s) naming the relation)
_RELATION_OF = {
    "CreateStmt": ("creates", "relation"),
    "ViewStmt": ("creates", "view"),
    "CreateSeqStmt": ("creates", "sequence"),
    "AlterTableStmt": ("alters", "relation"),
    "AlterObjectSchemaStmt": ("alters", "relation"),
    "IndexStmt": ("alters", "relation"),
    "CreateTrigStmt": ("alters", "relation"),
    "RuleStmt": ("alters", "relation"),
    "CreatePolicyStmt": ("alters", "table"),
    "InsertStmt": ("writes", "relation"),
    "UpdateStmt": ("writes", "relation"),
    "DeleteStmt": ("writes", "relation"),
    "MergeStmt": ("writes", "relation"),
}
_WHAT = {"version_table": "version table", "ledger_table": "ledger", "rollout_table": "rollout record",
         "verified_table": "verified table"}
_DROPPED_KINDS = {"OBJECT_TABLE", "OBJECT_VIEW", "OBJECT_MATVIEW", "OBJECT_SEQUENCE", "OBJECT_FOREIGN_TABLE"}


@dataclass(frozen=True)
class ToolTableWrite:
    line: int
    verb: str  # creates, alters, renames, drops, truncates, writes
    option: str  # the alembic.ini option that names the table: version_table, ledger_table, rollout_table...
    table: str  # as configured, e.g. alembic_version
    statement: str  # the statement's first line, for the message

    @property
    def message(self) -> str:
        what = _WHAT[self.option]
        return f"`{self.statement}` {self.verb} the tool's {what} {self.table}"

    def fix(self, section: str = "") -> str:
        where = f"alembic.ini [{section}]" if section else "alembic.ini"
        return f"to keep a table of that name, set {self.option} = <another name> in {where}"


def find_tool_table_writes(statements, tables: ToolTables, *, control: bool = False) -> list[ToolTableWrite]:
    """Every statement among ``statements`` (``parsing.Statement``) that touches the tool's tables
    (``control``: a control file, which the rollout record's and drift's tables count for too)."""
    owned = _owned(tables, control)
    names = {name for name, _, _ in owned}
    found = []
    for statement in statements:
        if not any(name in statement.sql.lower() for name in names):
            continue  # cheap: a statement that never spells a name cannot touch the table
        # a run of plain INSERT/UPDATE/DELETE (sqlbatch.Chunk) carries no tree: look at each of its statements
        pieces = statement.statements() if hasattr(statement, "statements") else [(statement.sql, statement.line)]
        for sql, line in pieces:
            if statement.node is None and not any(name in sql.lower() for name in names):
                continue
            node = statement.node if statement.node is not None else _parse_one(sql)
            for verb, schema, name in _touched(node):
                hit = _which(owned, schema, name)
                if hit is not None:
                    found.append(ToolTableWrite(line, verb, hit[0], hit[1], _first_line(sql)))
                    break
    return found


def refuse_tool_table_writes(migration, tables: ToolTables, *, control: bool = False) -> None:
    """Raise one line naming ``file:line``, the statement and the setting to change."""
    found = find_tool_table_writes(migration.parse().statements, tables, control=control)
    if found:
        first = found[0]
        section = migration.path.parent.name  # the environment's folder names its alembic.ini section
        section = section if section in ("control", "tenant") else ""
        raise MigrationFileError(f"refused: {first.message}; {first.fix(section)}", path=migration.path, line=first.line)


def _owned(tables: ToolTables, control: bool) -> list[tuple[str, str, str | None]]:
    """(name, option naming it, configured schema) of each of the tool's tables a file may not touch."""
    owned = [(tables.version_table, "version_table", tables.version_schema),
             (tables.ledger_table, "ledger_table", tables.ledger_schema)]
    if control:  # created on the control connection's search_path, as the record and drift name them
        owned += [(tables.rollout_table, "rollout_table", None), (tables.rollout_table + "_tenants", "rollout_table", None),
                  (tables.verified_table, "verified_table", None)]
    return owned


def _which(owned, schema: str | None, name: str) -> tuple[str, str] | None:
    """(option, table) of the tool's table that ``schema.name`` refers to (None: not one of them).

    A table configured without a schema lives on the default search_path: an unqualified name
    counts (wherever the file's search_path sends it), and so does ``public.name``.  A table
    configured in a schema of its own is reached only by naming that schema.
    """
    for table, option, configured in owned:
        home = configured or "public"
        if name == table and (schema == home or (schema is None and home == "public")):
            return option, table
    return None


def _touched(node: Any) -> Iterator[tuple[str, str | None, str]]:
    """(verb, schema, name) for each relation a statement creates, alters, drops or writes."""
    for child in _walk(node):
        kind = type(child).__name__
        if kind in _RELATION_OF:
            verb, attribute = _RELATION_OF[kind]
            yield from _range_var(verb, getattr(child, attribute, None))
        elif kind == "CreateTableAsStmt":
            into = getattr(child, "into", None)
            yield from _range_var("creates", getattr(into, "rel", None))
        elif kind == "RenameStmt":
            relation = getattr(child, "relation", None)
            yield from _range_var("renames", relation)
            if child.newname and _kind_name(child.renameType) in _DROPPED_KINDS:
                yield "creates", getattr(relation, "schemaname", None), child.newname
        elif kind == "DropStmt" and _kind_name(child.removeType) in _DROPPED_KINDS:
            for parts in child.objects or ():
                names = [getattr(part, "sval", None) for part in parts]
                if names and names[-1]:
                    yield "drops", names[-2] if len(names) > 1 else None, names[-1]
        elif kind == "TruncateStmt":
            for relation in child.relations or ():
                yield from _range_var("truncates", relation)
        elif kind == "CopyStmt" and child.is_from:
            yield from _range_var("writes", child.relation)


def _range_var(verb: str, relation: Any) -> Iterator[tuple[str, str | None, str]]:
    if relation is not None and getattr(relation, "relname", None):
        yield verb, relation.schemaname, relation.relname


def _walk(node: Any) -> Iterator[Any]:
    """Every AST node below ``node`` (itself included), depth first."""
    from . import pgparser

    return pgparser.walk(node)


def _kind_name(value: Any) -> str:
    return getattr(value, "name", str(value))


def _parse_one(sql: str) -> Any:
    from . import pgparser

    return pgparser.parse_one(sql)


def _first_line(sql: str) -> str:
    line = sql.strip().splitlines()[0] if sql.strip() else ""
    return line if len(line) <= 100 else line[:97] + "..."
