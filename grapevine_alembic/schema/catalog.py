"""One database's schema as a plain dict, read from pg_catalog in one query returning JSON.

Everything the tool compares or renders comes from here, so ``schema dump``, ``schema check``
and ``drift`` agree by construction.  Names and expressions come from PostgreSQL's own
``pg_get_*`` functions with an empty search_path, so every name is schema-qualified the same
way on every database.  Left out: system schemas, objects that belong to an extension
(the extension itself is listed), plpgsql, and the tool's own tables.
"""

from __future__ import annotations

from ..tool_tables import DEFAULT_TABLES, ToolTables

# The user's namespaces and the extensions' members, computed once per snapshot in the outer FROM
# (OFFSET 0: the planner would otherwise copy these subqueries back into every part, and planning,
# most of a cold backend's cost here, grows with the number of subqueries).  Qualified names come
# from reg* casts rather than joins, which keeps the plan small too.
_MEMBER_CATALOGS = ("pg_namespace", "pg_class", "pg_proc", "pg_type")
_SCOPE = (
    "(SELECT ARRAY(SELECT oid FROM pg_catalog.pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema')"
    " AND nspname NOT LIKE 'pg\\_%') AS user_ns, "
    # through pg_depend's index on the referenced object: nothing to read when there is no extension
    + ", ".join("ARRAY(SELECT objid FROM pg_catalog.pg_depend WHERE refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass"
                f" AND refobjid = ANY (x.extensions) AND deptype = 'e' AND classid = 'pg_catalog.{catalog}'::pg_catalog.regclass)"
                f" AS members_{catalog}" for catalog in _MEMBER_CATALOGS)
    + " FROM (SELECT ARRAY(SELECT oid FROM pg_catalog.pg_extension WHERE extname <> 'plpgsql') AS extensions) x OFFSET 0) m"
)


def _mine(namespace: str, oid: str, catalog: str) -> str:
    return f"{namespace} = ANY (m.user_ns) AND NOT {oid} = ANY (m.members_{catalog})"


# The tool's two tables, by their configured names (snapshot_sql puts them in for this marker)
_TOOL = "__grapevine_tool_tables__"
_USER_REL = _mine("c.relnamespace", "c.oid", "pg_class")

_COLUMNS = """(SELECT coalesce(json_agg(json_build_object(
    'name', a.attname, 'qname', pg_catalog.quote_ident(a.attname), 'type', pg_catalog.format_type(a.atttypid, a.atttypmod),
    'not_null', a.attnotnull,
    'default', CASE WHEN a.attgenerated = '' THEN pg_catalog.pg_get_expr(d.adbin, d.adrelid) END,
    'generated', CASE WHEN a.attgenerated <> '' THEN pg_catalog.pg_get_expr(d.adbin, d.adrelid) END,
    'virtual', a.attgenerated::text = 'v', 'identity', nullif(a.attidentity::text, ''), 'local', a.attislocal,
    'collation', CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
        THEN a.attcollation::pg_catalog.regcollation::text END)
    ORDER BY a.attnum), '[]')
  FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
    LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)"""
_NSP = "c.relnamespace::pg_catalog.regnamespace::text"
_PARTS = {
    "schemas": f"""SELECT json_build_object('name', n.nspname, 'qname', pg_catalog.quote_ident(n.nspname),
        'owner', pg_catalog.pg_get_userbyid(n.nspowner), 'acl', n.nspacl::text[]) AS o, n.nspname AS k
      FROM pg_catalog.pg_namespace n WHERE {_mine('n.oid', 'n.oid', 'pg_namespace')}""",
    "extensions": """SELECT json_build_object('name', e.extname, 'schema', e.extnamespace::pg_catalog.regnamespace::text,
        'qname', pg_catalog.quote_ident(e.extname) || ' WITH SCHEMA ' || e.extnamespace::pg_catalog.regnamespace::text) AS o,
        e.extname AS k FROM pg_catalog.pg_extension e WHERE e.extname <> 'plpgsql'""",
    "tables": f"""SELECT json_build_object('schema', {_NSP}, 'name', c.relname, 'qname', c.oid::pg_catalog.regclass::text,
        'kind', c.relkind::text, 'unlogged', c.relpersistence = 'u', 'owner', pg_catalog.pg_get_userbyid(c.relowner),
        'acl', c.relacl::text[], 'partition_key', CASE WHEN c.relkind = 'p' THEN pg_catalog.pg_get_partkeydef(c.oid) END,
        'partition_of', CASE WHEN c.relispartition THEN (SELECT i.inhparent::pg_catalog.regclass::text
            FROM pg_catalog.pg_inherits i WHERE i.inhrelid = c.oid) END,
        'bound', CASE WHEN c.relispartition THEN pg_catalog.pg_get_expr(c.relpartbound, c.oid) END,
        'columns', {_COLUMNS}) AS o, c.oid::pg_catalog.regclass::text AS k
      FROM pg_catalog.pg_class c WHERE c.relkind IN ('r', 'p') AND {_USER_REL} AND c.relname NOT IN ({_TOOL})""",
    "indexes": f"""SELECT json_build_object('schema', {_NSP}, 'name', ic.relname, 'table', c.oid::pg_catalog.regclass::text,
        'definition', pg_catalog.pg_get_indexdef(i.indexrelid), 'valid', i.indisvalid, 'attached', ic.relispartition) AS o,
        ic.oid::pg_catalog.regclass::text AS k
      FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
      WHERE {_USER_REL} AND c.relname NOT IN ({_TOOL}) AND NOT i.indexrelid = ANY (ARRAY(SELECT conindid
          FROM pg_catalog.pg_constraint WHERE contype IN ('p', 'u', 'x')))""",
    "constraints": f"""SELECT json_build_object('schema', {_NSP}, 'table', c.oid::pg_catalog.regclass::text, 'name', k.conname,
        'qname', pg_catalog.quote_ident(k.conname), 'type', k.contype::text, 'definition', pg_catalog.pg_get_constraintdef(k.oid),
        'local', k.conislocal) AS o, c.oid::pg_catalog.regclass::text || '.' || k.conname AS k
      FROM pg_catalog.pg_constraint k JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
      WHERE {_USER_REL} AND c.relname NOT IN ({_TOOL}) AND k.contype <> 'n'""",
    "views": f"""SELECT json_build_object('schema', {_NSP}, 'name', c.relname, 'qname', c.oid::pg_catalog.regclass::text,
        'kind', c.relkind::text, 'definition', pg_catalog.pg_get_viewdef(c.oid, true),
        'owner', pg_catalog.pg_get_userbyid(c.relowner), 'acl', c.relacl::text[],
        'depends', (SELECT coalesce(json_agg(DISTINCT d.refobjid::pg_catalog.regclass::text), '[]')
            FROM pg_catalog.pg_rewrite r JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
              AND d.objid = r.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid <> c.oid
            WHERE r.ev_class = c.oid AND (SELECT rc.relkind FROM pg_catalog.pg_class rc WHERE rc.oid = d.refobjid) IN ('v', 'm'))) AS o,
        c.oid::pg_catalog.regclass::text AS k
      FROM pg_catalog.pg_class c WHERE c.relkind IN ('v', 'm') AND {_USER_REL}""",
    "functions": f"""SELECT json_build_object('schema', p.pronamespace::pg_catalog.regnamespace::text, 'name', p.proname,
        'arguments', pg_catalog.pg_get_function_identity_arguments(p.oid), 'kind', p.prokind::text,
        'definition', pg_catalog.pg_get_functiondef(p.oid), 'owner', pg_catalog.pg_get_userbyid(p.proowner),
        'acl', p.proacl::text[],
        'uses_tables', EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
            AND d.objid = p.oid AND (d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
              OR (d.refclassid = 'pg_catalog.pg_type'::pg_catalog.regclass AND (SELECT tc.relkind FROM pg_catalog.pg_type t
                  JOIN pg_catalog.pg_class tc ON tc.oid = t.typrelid WHERE t.oid = d.refobjid) IN ('r', 'p', 'v', 'm'))))) AS o,
        p.pronamespace::pg_catalog.regnamespace::text || '.' || p.proname || '(' || pg_catalog.pg_get_function_identity_arguments(p.oid) || ')' AS k
      FROM pg_catalog.pg_proc p WHERE {_mine('p.pronamespace', 'p.oid', 'pg_proc')} AND p.prokind IN ('f', 'p', 'w')""",
    "triggers": f"""SELECT json_build_object('schema', {_NSP}, 'table', c.oid::pg_catalog.regclass::text, 'name', g.tgname,
        'qname', pg_catalog.quote_ident(g.tgname), 'definition', pg_catalog.pg_get_triggerdef(g.oid), 'enabled', g.tgenabled::text) AS o,
        c.oid::pg_catalog.regclass::text || '.' || g.tgname AS k
      FROM pg_catalog.pg_trigger g JOIN pg_catalog.pg_class c ON c.oid = g.tgrelid
      WHERE {_USER_REL} AND NOT g.tgisinternal AND g.tgparentid = 0 AND c.relname NOT IN ({_TOOL})""",
    "sequences": f"""SELECT json_build_object('schema', {_NSP}, 'name', c.relname, 'qname', c.oid::pg_catalog.regclass::text,
        'type', pg_catalog.format_type(s.seqtypid, NULL), 'start', s.seqstart::text, 'increment', s.seqincrement::text,
        'min', s.seqmin::text, 'max', s.seqmax::text, 'cache', s.seqcache::text, 'cycle', s.seqcycle,
        'owner', pg_catalog.pg_get_userbyid(c.relowner), 'acl', c.relacl::text[],
        'owned_by', (SELECT d.refobjid::pg_catalog.regclass::text || '.' || pg_catalog.quote_ident(a.attname)
            FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
            WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid AND d.deptype = 'a'
              AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass)) AS o,
        c.oid::pg_catalog.regclass::text AS k
      FROM pg_catalog.pg_sequence s JOIN pg_catalog.pg_class c ON c.oid = s.seqrelid
      WHERE {_USER_REL} AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.deptype = 'i'
          AND d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid)""",
    "types": f"""SELECT json_build_object('schema', t.typnamespace::pg_catalog.regnamespace::text, 'name', t.typname,
        'qname', t.oid::pg_catalog.regtype::text, 'kind', t.typtype::text,
        'owner', pg_catalog.pg_get_userbyid(t.typowner), 'acl', t.typacl::text[],
        'labels', CASE WHEN t.typtype = 'e' THEN (SELECT json_agg(e.enumlabel ORDER BY e.enumsortorder)
            FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid) END,
        'base', CASE WHEN t.typtype = 'd' THEN pg_catalog.format_type(t.typbasetype, t.typtypmod) END,
        'not_null', t.typnotnull, 'default', t.typdefault,
        'checks', CASE WHEN t.typtype = 'd' THEN (SELECT coalesce(json_agg(json_build_object('name', k.conname,
            'qname', pg_catalog.quote_ident(k.conname), 'definition', pg_catalog.pg_get_constraintdef(k.oid)) ORDER BY k.conname), '[]')
            FROM pg_catalog.pg_constraint k WHERE k.contypid = t.oid AND k.contype = 'c') END,
        'attributes', CASE WHEN t.typtype = 'c' THEN (SELECT json_agg(json_build_object('name', a.attname,
            'qname', pg_catalog.quote_ident(a.attname), 'type', pg_catalog.format_type(a.atttypid, a.atttypmod)) ORDER BY a.attnum)
            FROM pg_catalog.pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped) END,
        'subtype', CASE WHEN t.typtype = 'r' THEN (SELECT pg_catalog.format_type(r.rngsubtype, NULL)
            FROM pg_catalog.pg_range r WHERE r.rngtypid = t.oid) END) AS o,
        t.oid::pg_catalog.regtype::text AS k
      FROM pg_catalog.pg_type t WHERE {_mine('t.typnamespace', 't.oid', 'pg_type')}
        AND (t.typtype IN ('e', 'd', 'r') OR (t.typtype = 'c' AND (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid) = 'c'))""",
}
# The names a database's version lives in, read with the session's own search_path (the second
# query runs with an empty one), together with the session settings of the run.
LOCATE_SQL = (
    "SELECT (SELECT pg_catalog.format('%%I.%%I', n.nspname, c.relname) FROM pg_catalog.pg_class c"
    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = pg_catalog.to_regclass(%s)),"
    " (SELECT pg_catalog.format('%%I.%%I', n.nspname, c.relname) FROM pg_catalog.pg_class c"
    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = pg_catalog.to_regclass(%s))"
)


# drift's one round trip: the version read first through the session's own search_path and kept
# in a transaction-local setting ('=' before it, so that no row reads back as NULL), then returned
# by the snapshot statement, which runs with an empty search_path.
_VERSION_SETTING = "grapevine.drift_version"


def stash_version_sql(tables: ToolTables = DEFAULT_TABLES) -> str:
    return (f"pg_catalog.set_config('{_VERSION_SETTING}', coalesce('=' || (SELECT max(version_num::text)"
            f" FROM {tables.version}), ''), true)")


_STASHED_VERSION = (f"(SELECT CASE WHEN s.v <> '' THEN pg_catalog.substr(s.v, 2) END"
                    f" FROM (SELECT pg_catalog.current_setting('{_VERSION_SETTING}') AS v) s)")


def snapshot_sql(version_table: str | None = None, ledger_table: str | None = None, *, server_version: int = 0,
                 stashed_version: bool = False, tables: ToolTables = DEFAULT_TABLES) -> str:
    """The one query: the recorded version, and the catalog as JSON text (``{part: [objects sorted by name]}``).

    ``SET LOCAL`` first, in the same round trip: every ``pg_get_*`` then qualifies every name, and
    no JIT (PostgreSQL 11+): the query's cost estimate is near ``jit_above_cost`` for a few dozen
    tables, and compiling it would cost far more than running it, on every database.
    The catalog comes back as text, so a database whose text equals its reference's needs no parsing.
    The tool's own tables (``tables``' names, in any schema) are left out.
    """
    if stashed_version:  # stash_version_sql ran earlier in the same transaction
        version = _STASHED_VERSION
    elif version_table:
        version = f"(SELECT max(version_num::text) FROM {version_table})"
    elif ledger_table:  # the previous tool's ledger alone: its newest row is the version migrate adopts
        version = f"(SELECT max(version::text) FROM {ledger_table})"
    else:
        version = "NULL::text"
    parts = ",\n".join(
        f"'{name}', (SELECT coalesce(json_agg(q.o ORDER BY q.k COLLATE \"C\"), '[]') FROM ({sql}) q)"
        for name, sql in _PARTS.items()
    )
    settings = "SET LOCAL search_path TO '';\n" + ("SET LOCAL jit = off;\n" if server_version >= 110000 else "")
    tool = f"'{tables.version_table}', '{tables.ledger_table}'"
    return f"{settings}SELECT {version}, json_build_object({parts.replace(_TOOL, tool)})::text FROM {_SCOPE}"


def read_snapshot(cursor, *, locate: bool = True, tables: ToolTables = DEFAULT_TABLES) -> tuple[str | None, str]:
    """(recorded version, catalog JSON text) of the cursor's database: two round trips, one with ``locate=False``."""
    version_table = ledger_table = None
    if locate:
        cursor.execute(LOCATE_SQL, (tables.version, tables.ledger))
        version_table, ledger_table = cursor.fetchone()
    cursor.execute(snapshot_sql(version_table, ledger_table, server_version=cursor.connection.server_version,
                                tables=tables))
    return cursor.fetchone()
