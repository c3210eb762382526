"""INVALID indexes left by a failed ``CREATE INDEX CONCURRENTLY``, found and dropped before the re-run.

A concurrent build that fails (duplicate rows, a timeout, a lost connection) leaves its index
behind, INVALID: never used by queries, yet maintained on every write.  The file is re-run after
the data is fixed; ``IF NOT EXISTS`` would then skip the INVALID index, and an unnamed statement
would build a second one beside it (``t_x_idx1``).  So before each concurrent build the executor
drops what an earlier failed build of the same statement left, with a notice, and after a named
build it checks that the index really is valid.

An index always lives in its table's schema, so the table is resolved the way the statement
resolves it (``to_regclass`` on its relation: schema-qualified, or through ``search_path``), and
the index is looked up there.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import MigrationFailed

# The index of that name in the table's schema: its name as SQL, whether it is valid, and
# whether it belongs to the statement's table (only then is it ours to drop).
_NAMED_STATE = (
    "SELECT c.oid::regclass::text, i.indisvalid, i.indrelid = t.oid"
    " FROM pg_class t JOIN pg_class c ON c.relnamespace = t.relnamespace JOIN pg_index i ON i.indexrelid = c.oid"
    " WHERE t.oid = to_regclass(%s) AND c.relname = %s"
)

# An unnamed statement: PostgreSQL picks the name (t_x_idx, then t_x_idx1, ...), so the name alone
# cannot say which INVALID index an earlier build of this statement left.  The definition can:
# the statement is built on an empty temporary copy of the table (instant), and the INVALID
# indexes of the real table whose pg_get_indexdef matches the probe's from " USING " on (method,
# columns, expressions, INCLUDE, WHERE; PostgreSQL normalises both the same way) and whose
# uniqueness matches are that statement's leftovers.  All of it is rolled back.
_PROBE_TABLE = "grapevine_index_probe"
_DEFINITION = "substr(pg_get_indexdef({0}), strpos(pg_get_indexdef({0}), ' USING '))"
_MATCHING_INVALID = (
    "SELECT c.oid::regclass::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid, pg_index p"
    f" WHERE p.indrelid = 'pg_temp.{_PROBE_TABLE}'::regclass AND i.indrelid = to_regclass(%s)"
    " AND NOT i.indisvalid AND i.indisunique = p.indisunique"
    f" AND {_DEFINITION.format('i.indexrelid')} = {_DEFINITION.format('p.indexrelid')}"
    " ORDER BY 1"
)


@dataclass(frozen=True)
class ConcurrentIndex:
    """What a ``CREATE INDEX CONCURRENTLY`` statement builds."""

    table: str  # the statement's relation as SQL text, resolved like the statement resolves it
    name: str | None  # None: PostgreSQL picks the name
    probe: str  # the statement without CONCURRENTLY or TABLESPACE, on the temporary probe table


def concurrent_index(statement) -> ConcurrentIndex | None:
    """The index a ``CREATE INDEX CONCURRENTLY`` statement builds, else None."""
    node = statement.node
    if statement.kind != "IndexStmt" or node is None or not getattr(node, "concurrent", False):
        return None
    from ...files import pgparser

    table, probe = pgparser.index_probe(statement.sql, schema="pg_temp", table=_PROBE_TABLE)  # table without ONLY
    return ConcurrentIndex(table, node.idxname or None, probe)


def drop_invalid_index(cursor, index: ConcurrentIndex, journal) -> None:
    """Drop the INVALID index an earlier failed build of this statement left, saying so."""
    if index.name is None:
        leftovers = _unnamed_leftovers(cursor, index, journal)
    else:
        row = _named_state(cursor, index)
        leftovers = [row[0]] if row and not row[1] and row[2] else []
    for name in leftovers:
        journal.notice(f"NOTICE: dropping INVALID index {name} left by an earlier failed build; building it again")
        cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


def require_valid_index(cursor, migration, statement, index: ConcurrentIndex, committed) -> None:
    """After a named build (which ``IF NOT EXISTS`` may have skipped): the index must be valid."""
    if index.name is None:
        return  # the statement succeeded, so PostgreSQL built a new index and it is valid
    row = _named_state(cursor, index)
    if row and not row[1]:
        raise MigrationFailed(
            f"{migration.path.name}:{statement.line}: index {row[0]} is INVALID after CREATE INDEX CONCURRENTLY;"
            " the version was not recorded (drop the index and run migrate again)"
        )


def _named_state(cursor, index: ConcurrentIndex):
    cursor.execute(_NAMED_STATE, (index.table, index.name))
    return cursor.fetchone()


def _unnamed_leftovers(cursor, index: ConcurrentIndex, journal) -> list[str]:
    """INVALID indexes on the table with exactly the definition this statement builds."""
    import psycopg2

    # The statement's text may hold '%': only the matching query goes through parameter binding.
    matching = cursor.mogrify(_MATCHING_INVALID, (index.table,)).decode()
    try:
        cursor.execute(
            f"BEGIN;\nCREATE TEMP TABLE {_PROBE_TABLE} (LIKE {index.table}) ON COMMIT DROP;\n"
            f"{index.probe};\n{matching}"
        )
        return [row[0] for row in cursor.fetchall()]
    except psycopg2.errors.UndefinedTable:
        return []  # no such table: the statement itself will say so
    except psycopg2.Error as err:
        reason = (err.pgerror or str(err)).strip().splitlines()[0].removeprefix("ERROR:").strip()
        journal.notice(f"WARNING: could not look for an INVALID index left by an earlier build: {reason}")
        return []
    finally:
        if not cursor.connection.closed:
            cursor.execute("ROLLBACK")
