"""One database's schema as a plain dict, read from pg_catalog in one query returning JSON.

Everything the tool compares or renders comes from here, so ``schema dump``, ``schema check``
and ``drift`` agree by construction.  Names and expressions come from PostgreSQL's own
``pg_get_*`` functions with an empty search_path, so every name is schema-qualified the same
way on every database.  Left out: system schemas, objects that belong to an extension
(the extension itself is listed), plpgsql, and the tool's own tables.
"""

from __future__ import annotations

from ..ledger import LEDGER_TABLE, VERSION_TABLE

TOOL_TABLES = (VERSION_TABLE, LEDGER_TABLE)

# A namespace of the user's, and "not a member of an extension", as SQL fragments.
_USER_NS = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'"


def _not_extension_member(catalog: str, oid: str) -> str:
    return (f"NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend x WHERE x.classid = '{catalog}'::pg_catalog.regclass"
            f" AND x.objid = {oid} AND x.deptype = 'e')")


_TOOL = ", ".join(f"'{name}'" for name in TOOL_TABLES)
_REL = (f"FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        f" WHERE {_USER_NS} AND {_not_extension_member('pg_class', 'c.oid')}")
_TABLE_OF = "pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname)"

_COLUMNS = """(SELECT coalesce(json_agg(json_build_object(
    'name', a.attname, 'qname', pg_catalog.quote_ident(a.attname), 'type', pg_catalog.format_type(a.atttypid, a.atttypmod), 'not_null', a.attnotnull,
    'default', CASE WHEN a.attgenerated = '' THEN pg_catalog.pg_get_expr(d.adbin, d.adrelid) END,
    'generated', CASE WHEN a.attgenerated <> '' THEN pg_catalog.pg_get_expr(d.adbin, d.adrelid) END,
    'virtual', a.attgenerated::text = 'v',
    'identity', nullif(a.attidentity::text, ''), 'local', a.attislocal,
    'collation', CASE WHEN a.attcollation <> t.typcollation THEN (SELECT pg_catalog.quote_ident(cn.nspname) || '.'
        || pg_catalog.quote_ident(co.collname) FROM pg_catalog.pg_collation co
        JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = a.attcollation) END)
    ORDER BY a.attnum), '[]')
  FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)"""

_PARTS = {
    "schemas": f"""SELECT json_build_object('name', n.nspname, 'qname', pg_catalog.quote_ident(n.nspname), 'owner', pg_catalog.pg_get_userbyid(n.nspowner),
        'acl', n.nspacl::text[]) AS o, n.nspname AS k
      FROM pg_catalog.pg_namespace n WHERE {_USER_NS} AND {_not_extension_member('pg_namespace', 'n.oid')}""",
    "extensions": """SELECT json_build_object('name', e.extname, 'schema', n.nspname,
        'qname', pg_catalog.quote_ident(e.extname) || ' WITH SCHEMA ' || pg_catalog.quote_ident(n.nspname)) AS o, e.extname AS k
      FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
      WHERE e.extname <> 'plpgsql'""",
    "tables": f"""SELECT json_build_object('schema', n.nspname, 'name', c.relname, 'qname', pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname), 'kind', c.relkind::text,
        'unlogged', c.relpersistence = 'u', 'owner', pg_catalog.pg_get_userbyid(c.relowner), 'acl', c.relacl::text[],
        'partition_key', CASE WHEN c.relkind = 'p' THEN pg_catalog.pg_get_partkeydef(c.oid) END,
        'partition_of', (SELECT pg_catalog.quote_ident(pn.nspname) || '.' || pg_catalog.quote_ident(p.relname)
            FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class p ON p.oid = i.inhparent
            JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace WHERE i.inhrelid = c.oid AND c.relispartition),
        'bound', CASE WHEN c.relispartition THEN pg_catalog.pg_get_expr(c.relpartbound, c.oid) END,
        'columns', {_COLUMNS}) AS o, n.nspname || '.' || c.relname AS k
      {_REL} AND c.relkind IN ('r', 'p') AND c.relname NOT IN ({_TOOL})""",
    "indexes": f"""SELECT json_build_object('schema', n.nspname, 'name', ic.relname, 'table', {_TABLE_OF},
        'definition', pg_catalog.pg_get_indexdef(i.indexrelid), 'valid', i.indisvalid,
        'attached', EXISTS (SELECT 1 FROM pg_catalog.pg_inherits h WHERE h.inhrelid = i.indexrelid)) AS o,
        n.nspname || '.' || ic.relname AS k
      FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
      JOIN pg_catalog.pg_class c ON c.oid = i.indrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE {_USER_NS} AND {_not_extension_member('pg_class', 'c.oid')} AND c.relname NOT IN ({_TOOL})
        AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conindid = i.indexrelid
                        AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u', 'x'))""",
    "constraints": f"""SELECT json_build_object('schema', n.nspname, 'table', {_TABLE_OF}, 'name', k.conname,
        'qname', pg_catalog.quote_ident(k.conname), 'type', k.contype::text, 'definition', pg_catalog.pg_get_constraintdef(k.oid), 'local', k.conislocal) AS o,
        n.nspname || '.' || c.relname || '.' || k.conname AS k
      FROM pg_catalog.pg_constraint k JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE {_USER_NS} AND {_not_extension_member('pg_class', 'c.oid')} AND c.relname NOT IN ({_TOOL})
        AND k.contype <> 'n'""",
    "views": f"""SELECT json_build_object('schema', n.nspname, 'name', c.relname, 'qname', pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname), 'kind', c.relkind::text,
        'definition', pg_catalog.pg_get_viewdef(c.oid, true), 'owner', pg_catalog.pg_get_userbyid(c.relowner),
        'acl', c.relacl::text[],
        'depends', (SELECT coalesce(json_agg(DISTINCT rn.nspname || '.' || rc.relname), '[]')
            FROM pg_catalog.pg_rewrite r JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
              AND d.objid = r.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
            JOIN pg_catalog.pg_class rc ON rc.oid = d.refobjid AND rc.relkind IN ('v', 'm') AND rc.oid <> c.oid
            JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace WHERE r.ev_class = c.oid)) AS o,
        n.nspname || '.' || c.relname AS k
      {_REL} AND c.relkind IN ('v', 'm')""",
    "functions": f"""SELECT json_build_object('schema', n.nspname, 'name', p.proname,
        'arguments', pg_catalog.pg_get_function_identity_arguments(p.oid), 'kind', p.prokind::text,
        'definition', pg_catalog.pg_get_functiondef(p.oid), 'owner', pg_catalog.pg_get_userbyid(p.proowner),
        'acl', p.proacl::text[],
        'uses_tables', EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
            LEFT JOIN pg_catalog.pg_type t ON d.refclassid = 'pg_catalog.pg_type'::pg_catalog.regclass AND t.oid = d.refobjid
            LEFT JOIN pg_catalog.pg_class tc ON tc.oid = t.typrelid
            WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objid = p.oid
              AND (d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass OR tc.relkind IN ('r', 'p', 'v', 'm')))) AS o,
        n.nspname || '.' || p.proname || '(' || pg_catalog.pg_get_function_identity_arguments(p.oid) || ')' AS k
      FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
      WHERE {_USER_NS} AND {_not_extension_member('pg_proc', 'p.oid')} AND p.prokind IN ('f', 'p', 'w')""",
    "triggers": f"""SELECT json_build_object('schema', n.nspname, 'table', {_TABLE_OF}, 'name', g.tgname, 'qname', pg_catalog.quote_ident(g.tgname),
        'definition', pg_catalog.pg_get_triggerdef(g.oid), 'enabled', g.tgenabled::text) AS o,
        n.nspname || '.' || c.relname || '.' || g.tgname AS k
      FROM pg_catalog.pg_trigger g JOIN pg_catalog.pg_class c ON c.oid = g.tgrelid
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE {_USER_NS} AND {_not_extension_member('pg_class', 'c.oid')} AND NOT g.tgisinternal
        AND g.tgparentid = 0 AND c.relname NOT IN ({_TOOL})""",
    "sequences": f"""SELECT json_build_object('schema', n.nspname, 'name', c.relname, 'qname', pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname),
        'type', pg_catalog.format_type(s.seqtypid, NULL), 'start', s.seqstart::text, 'increment', s.seqincrement::text,
        'min', s.seqmin::text, 'max', s.seqmax::text, 'cache', s.seqcache::text, 'cycle', s.seqcycle,
        'owner', pg_catalog.pg_get_userbyid(c.relowner), 'acl', c.relacl::text[],
        'owned_by', (SELECT pg_catalog.quote_ident(tn.nspname) || '.' || pg_catalog.quote_ident(t.relname) || '.'
                        || pg_catalog.quote_ident(a.attname)
            FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_class t ON t.oid = d.refobjid
            JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
            JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
            WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid AND d.deptype = 'a'
              AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass)) AS o,
        n.nspname || '.' || c.relname AS k
      FROM pg_catalog.pg_sequence s JOIN pg_catalog.pg_class c ON c.oid = s.seqrelid
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE {_USER_NS} AND {_not_extension_member('pg_class', 'c.oid')}
        AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                        AND d.objid = c.oid AND d.deptype = 'i')""",
    "types": f"""SELECT json_build_object('schema', n.nspname, 'name', t.typname, 'qname', pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(t.typname), 'kind', t.typtype::text,
        'owner', pg_catalog.pg_get_userbyid(t.typowner), 'acl', t.typacl::text[],
        'labels', CASE WHEN t.typtype = 'e' THEN (SELECT json_agg(e.enumlabel ORDER BY e.enumsortorder)
            FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid) END,
        'base', CASE WHEN t.typtype = 'd' THEN pg_catalog.format_type(t.typbasetype, t.typtypmod) END,
        'not_null', t.typnotnull, 'default', t.typdefault,
        'checks', CASE WHEN t.typtype = 'd' THEN (SELECT coalesce(json_agg(json_build_object('name', k.conname, 'qname', pg_catalog.quote_ident(k.conname),
            'definition', pg_catalog.pg_get_constraintdef(k.oid)) ORDER BY k.conname), '[]')
            FROM pg_catalog.pg_constraint k WHERE k.contypid = t.oid AND k.contype = 'c') END,
        'attributes', CASE WHEN t.typtype = 'c' THEN (SELECT json_agg(json_build_object('name', a.attname, 'qname', pg_catalog.quote_ident(a.attname),
            'type', pg_catalog.format_type(a.atttypid, a.atttypmod)) ORDER BY a.attnum)
            FROM pg_catalog.pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped) END,
        'subtype', CASE WHEN t.typtype = 'r' THEN (SELECT pg_catalog.format_type(r.rngsubtype, NULL)
            FROM pg_catalog.pg_range r WHERE r.rngtypid = t.oid) END) AS o,
        n.nspname || '.' || t.typname AS k
      FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
      WHERE {_USER_NS} AND {_not_extension_member('pg_type', 't.oid')}
        AND (t.typtype IN ('e', 'd', 'r') OR (t.typtype = 'c' AND
             (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid) = 'c'))""",
}

# The names a database's version lives in, read with the session's own search_path (the second
# query runs with an empty one), together with the session settings of the run.
LOCATE_SQL = (
    "SELECT (SELECT pg_catalog.format('%%I.%%I', n.nspname, c.relname) FROM pg_catalog.pg_class c"
    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = pg_catalog.to_regclass(%s)),"
    " (SELECT pg_catalog.format('%%I.%%I', n.nspname, c.relname) FROM pg_catalog.pg_class c"
    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = pg_catalog.to_regclass(%s))"
)


def snapshot_sql(version_table: str | None = None, ledger_table: str | None = None) -> str:
    """The one query: ``{"version": ..., "catalog": {part: [objects sorted by name]}}``.

    ``SET LOCAL`` first, in the same round trip: every ``pg_get_*`` then qualifies every name.
    """
    if version_table:
        version = f"(SELECT max(version_num::text) FROM {version_table})"
    elif ledger_table:  # the previous tool's ledger alone: its newest row is the version migrate adopts
        version = f"(SELECT max(version::text) FROM {ledger_table})"
    else:
        version = "NULL::text"
    parts = ",\n".join(
        f"'{name}', (SELECT coalesce(json_agg(q.o ORDER BY q.k COLLATE \"C\"), '[]') FROM ({sql}) q)"
        for name, sql in _PARTS.items()
    )
    return (f"SET LOCAL search_path TO '';\nSELECT json_build_object('version', {version},"
            f" 'catalog', json_build_object({parts}))")


def read_snapshot(cursor, *, locate: bool = True) -> tuple[str | None, dict]:
    """(recorded version, catalog) of the cursor's database, in two round trips (one with ``locate=False``)."""
    version_table = ledger_table = None
    if locate:
        cursor.execute(LOCATE_SQL, (VERSION_TABLE, LEDGER_TABLE))
        version_table, ledger_table = cursor.fetchone()
    cursor.execute(snapshot_sql(version_table, ledger_table))
    document = cursor.fetchone()[0]
    return document["version"], document["catalog"]
