"""INVALID indexes left by a failed ``CREATE INDEX CONCURRENTLY``.

A failed concurrent build leaves its index behind, marked INVALID; a re-run's
``IF NOT EXISTS`` would then skip it, and queries stay slow while every run
reports success.  So before a named concurrent build, an INVALID index of that
name is dropped (and said so), and after the build the index must be valid.
"""

from __future__ import annotations

from .errors import MigrationFailed

_INDEX_STATE = (
    "SELECT c.oid::regclass::text, i.indisvalid FROM pg_catalog.pg_class c"
    " JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid"
    " WHERE c.relname = %s AND c.relnamespace = coalesce(pg_catalog.to_regnamespace(%s),"
    " (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = pg_catalog.current_schema()))"
)


def concurrent_index(statement) -> tuple[str | None, str] | None:
    """(schema, name) of a named CREATE INDEX CONCURRENTLY, else None."""
    node = statement.node
    if statement.kind != "IndexStmt" or node is None or not getattr(node, "concurrent", False) or not node.idxname:
        return None
    return (node.relation.schemaname or None, node.idxname)


def drop_invalid(cursor, index, journal) -> None:
    cursor.execute(_INDEX_STATE, (index[1], index[0]))
    row = cursor.fetchone()
    if row and not row[1]:
        journal.notice(f"NOTICE: dropping INVALID index {row[0]} left by an earlier failed build; building it again")
        cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {row[0]}")


def require_valid(cursor, migration, statement, index, committed) -> None:
    cursor.execute(_INDEX_STATE, (index[1], index[0]))
    row = cursor.fetchone()
    if row and not row[1]:
        raise MigrationFailed(
            f"{migration.path.name}:{statement.line}: index {row[0]} is INVALID after CREATE INDEX CONCURRENTLY;"
            " the version was not recorded (drop the index and run migrate again)"
        )
