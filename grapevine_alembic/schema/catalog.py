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


# Every object created after initdb has an oid >= FirstNormalObjectId (the counter wraps back to it, never below),
# so a user's functions and types are found through the oid index: pg_proc holds about 3,400 rows of initdb's and
# pg_type about 600, and on a fleet whose catalogs do not fit in shared_buffers every page read whole costs.
FIRST_NORMAL_OID = 16384
_USER_OID = f"OPERATOR(pg_catalog.>=) {FIRST_NORMAL_OID}::pg_catalog.oid"


# The tool's two tables, by their configured names (snapshot_sql puts them in for this marker)
_TOOL = "__grapevine_tool_tables__"
_USER_REL = _mine("c.relnamespace", "c.oid", "pg_class")

# The column type's own collation is looked up only for a column with one: a join to pg_type here was planned as a
# hash of the whole of pg_type, built again for every table.
_COLUMNS = """(SELECT coalesce(json_agg(json_build_object(
    'name', a.attname, 'qname', pg_catalog.quote_ident(a.attname), 'type', pg_catalog.format_type(a.atttypid, a.atttypmod),
    'not_null', a.attnotnull,
    'default', CASE WHEN a.attgenerated = '' THEN pg_catalog.pg_get_expr(d.adbin, d.adrelid) END,
    'generated', CASE WHEN a.attgenerated <> '' THEN pg_catalog.pg_get_expr(d.adbin, d.adrelid) END,
    'virtual', a.attgenerated::text = 'v', 'identity', nullif(a.attidentity::text, ''), 'local', a.attislocal,
    'collation', CASE WHEN a.attcollation <> 0 AND a.attcollation <> (SELECT t.typcollation FROM pg_catalog.pg_type t
        WHERE t.oid = a.atttypid) THEN a.attcollation::pg_catalog.regcollation::text END)
    ORDER BY a.attnum), '[]')
  FROM pg_catalog.pg_attribute a
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
      FROM pg_catalog.pg_proc p WHERE p.oid {_USER_OID} AND {_mine('p.pronamespace', 'p.oid', 'pg_proc')}
        AND p.prokind IN ('f', 'p', 'w')""",
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
      WHERE {_USER_REL} AND c.relname NOT IN ({_TOOL}) AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.deptype = 'i'
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
      FROM pg_catalog.pg_type t WHERE t.oid {_USER_OID} AND {_mine('t.typnamespace', 't.oid', 'pg_type')}
        AND (t.typtype IN ('e', 'd', 'r') OR (t.typtype = 'c' AND (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid) = 'c'))""",
}
# What only schema.sql needs, beyond what drift compares: everything else `pg_dump --schema-only --no-owner
# --no-privileges` restores.  Read only for `schema dump`/`schema check` (``complete=True``), so drift's
# per-database query stays as small as it was.
_REL = "'pg_catalog.pg_class'::pg_catalog.regclass"
_OBJECT_SCHEMA = "(SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname = i.schema)"
_COMMENT_TARGET = f"""CASE d.classoid
    WHEN 'pg_catalog.pg_constraint'::pg_catalog.regclass THEN (SELECT 'CONSTRAINT ' || pg_catalog.quote_ident(k.conname) || ' ON '
        || CASE WHEN k.contypid <> 0 THEN 'DOMAIN ' || k.contypid::pg_catalog.regtype::text ELSE k.conrelid::pg_catalog.regclass::text END
        FROM pg_catalog.pg_constraint k WHERE k.oid = d.objoid)
    WHEN 'pg_catalog.pg_trigger'::pg_catalog.regclass THEN (SELECT 'TRIGGER ' || pg_catalog.quote_ident(g.tgname) || ' ON '
        || g.tgrelid::pg_catalog.regclass::text FROM pg_catalog.pg_trigger g WHERE g.oid = d.objoid)
    WHEN 'pg_catalog.pg_policy'::pg_catalog.regclass THEN (SELECT 'POLICY ' || pg_catalog.quote_ident(y.polname) || ' ON '
        || y.polrelid::pg_catalog.regclass::text FROM pg_catalog.pg_policy y WHERE y.oid = d.objoid)
    WHEN 'pg_catalog.pg_rewrite'::pg_catalog.regclass THEN (SELECT 'RULE ' || pg_catalog.quote_ident(r.rulename) || ' ON '
        || r.ev_class::pg_catalog.regclass::text FROM pg_catalog.pg_rewrite r WHERE r.oid = d.objoid)
    ELSE pg_catalog.upper(CASE WHEN i.type LIKE '% column' THEN 'column' WHEN i.type = 'statistics object' THEN 'statistics'
        WHEN i.type = 'composite type' THEN 'type' ELSE i.type END) || ' ' || i.identity END"""
_SEQUENCE_OPTIONS = ("'type', pg_catalog.format_type(s.seqtypid, NULL), 'start', s.seqstart::text, 'increment', s.seqincrement::text,"
                     " 'min', s.seqmin::text, 'max', s.seqmax::text, 'cache', s.seqcache::text, 'cycle', s.seqcycle")
_ACL_OBJECTS = f"""SELECT CASE WHEN c.relkind = 'S' THEN 'SEQUENCE ' ELSE 'TABLE ' END || c.oid::pg_catalog.regclass::text AS target,
        NULL::text AS col, c.relacl AS acl, pg_catalog.acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner) AS deflt
      FROM pg_catalog.pg_class c WHERE c.relacl IS NOT NULL AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND {_USER_REL}
        AND c.relname NOT IN ({_TOOL})
    UNION ALL SELECT 'TABLE ' || c.oid::pg_catalog.regclass::text, pg_catalog.quote_ident(a.attname), a.attacl, NULL::pg_catalog.aclitem[]
      FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
      WHERE a.attacl IS NOT NULL AND a.attnum > 0 AND NOT a.attisdropped AND {_USER_REL}
    UNION ALL SELECT 'ROUTINE ' || p.oid::pg_catalog.regprocedure::text, NULL, p.proacl, pg_catalog.acldefault('f', p.proowner)
      FROM pg_catalog.pg_proc p WHERE p.proacl IS NOT NULL AND {_mine('p.pronamespace', 'p.oid', 'pg_proc')}
    UNION ALL SELECT 'SCHEMA ' || pg_catalog.quote_ident(n.nspname), NULL, n.nspacl, pg_catalog.acldefault('n', n.nspowner)
      FROM pg_catalog.pg_namespace n WHERE n.nspacl IS NOT NULL AND {_mine('n.oid', 'n.oid', 'pg_namespace')}
    UNION ALL SELECT 'TYPE ' || t.oid::pg_catalog.regtype::text, NULL, t.typacl, pg_catalog.acldefault('T', t.typowner)
      FROM pg_catalog.pg_type t WHERE t.typacl IS NOT NULL AND {_mine('t.typnamespace', 't.oid', 'pg_type')}"""
_DUMP_PARTS = {
    "comments": f"""SELECT json_build_object('target', t.target, 'text', t.description) AS o, t.target AS k FROM (
      SELECT {_COMMENT_TARGET} AS target, d.description
      FROM pg_catalog.pg_description d CROSS JOIN LATERAL pg_catalog.pg_identify_object(d.classoid, d.objoid, d.objsubid) i
      WHERE CASE d.classoid
        WHEN 'pg_catalog.pg_namespace'::pg_catalog.regclass THEN {_mine('d.objoid', 'd.objoid', 'pg_namespace')}
            AND NOT (i.identity = 'public' AND d.description = 'standard public schema')
        WHEN 'pg_catalog.pg_extension'::pg_catalog.regclass THEN i.identity <> 'plpgsql'
        WHEN {_REL} THEN {_mine(_OBJECT_SCHEMA, 'd.objoid', 'pg_class')}
            AND (SELECT c.relname FROM pg_catalog.pg_class c WHERE c.oid = d.objoid) NOT IN ({_TOOL})
        WHEN 'pg_catalog.pg_proc'::pg_catalog.regclass THEN {_mine(_OBJECT_SCHEMA, 'd.objoid', 'pg_proc')}
        WHEN 'pg_catalog.pg_type'::pg_catalog.regclass THEN {_mine(_OBJECT_SCHEMA, 'd.objoid', 'pg_type')}
        WHEN 'pg_catalog.pg_trigger'::pg_catalog.regclass THEN (SELECT c.relnamespace FROM pg_catalog.pg_trigger g
            JOIN pg_catalog.pg_class c ON c.oid = g.tgrelid WHERE g.oid = d.objoid) = ANY (m.user_ns)
        WHEN 'pg_catalog.pg_policy'::pg_catalog.regclass THEN (SELECT c.relnamespace FROM pg_catalog.pg_policy y
            JOIN pg_catalog.pg_class c ON c.oid = y.polrelid WHERE y.oid = d.objoid) = ANY (m.user_ns)
        WHEN 'pg_catalog.pg_rewrite'::pg_catalog.regclass THEN (SELECT c.relnamespace FROM pg_catalog.pg_rewrite r
            JOIN pg_catalog.pg_class c ON c.oid = r.ev_class WHERE r.oid = d.objoid) = ANY (m.user_ns)
        ELSE {_OBJECT_SCHEMA} = ANY (m.user_ns) END) t""",
    "index_parents": f"""SELECT json_build_object('index', ic.oid::pg_catalog.regclass::text,
        'parent', h.inhparent::pg_catalog.regclass::text) AS o, ic.oid::pg_catalog.regclass::text AS k
      FROM pg_catalog.pg_inherits h JOIN pg_catalog.pg_class ic ON ic.oid = h.inhrelid JOIN pg_catalog.pg_index i
        ON i.indexrelid = ic.oid JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
      WHERE ic.relkind = 'i' AND {_USER_REL} AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k
          WHERE k.conindid = ic.oid AND k.contype IN ('p', 'u', 'x'))""",
    "not_null": f"""SELECT json_build_object('table', c.oid::pg_catalog.regclass::text, 'column', a.attname, 'name', k.conname, 'qname', pg_catalog.quote_ident(k.conname),
        'default_name', c.relname || '_' || a.attname || '_not_null', 'no_inherit', k.connoinherit) AS o,
        c.oid::pg_catalog.regclass::text || '.' || k.conname AS k
      FROM pg_catalog.pg_constraint k JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
        JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
      WHERE k.contype = 'n' AND {_USER_REL} AND c.relname NOT IN ({_TOOL})""",
    "table_options": f"""SELECT json_build_object('table', c.oid::pg_catalog.regclass::text, 'options', c.reloptions,
        'rls', c.relrowsecurity, 'force_rls', c.relforcerowsecurity, 'replica', c.relreplident::text,
        'replica_index', (SELECT pg_catalog.quote_ident(ic.relname) FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class ic
            ON ic.oid = x.indexrelid WHERE x.indrelid = c.oid AND x.indisreplident),
        'clustered', (SELECT pg_catalog.quote_ident(ic.relname) FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class ic
            ON ic.oid = x.indexrelid WHERE x.indrelid = c.oid AND x.indisclustered),
        'inherits', (SELECT json_agg(h.inhparent::pg_catalog.regclass::text ORDER BY h.inhseqno) FROM pg_catalog.pg_inherits h
            WHERE h.inhrelid = c.oid AND NOT c.relispartition)) AS o, c.oid::pg_catalog.regclass::text AS k
      FROM pg_catalog.pg_class c WHERE c.relkind IN ('r', 'p', 'm') AND {_USER_REL} AND c.relname NOT IN ({_TOOL})""",
    "column_options": f"""SELECT json_build_object('table', c.oid::pg_catalog.regclass::text, 'column', pg_catalog.quote_ident(a.attname),
        'statistics', nullif(a.attstattarget, -1), 'storage', CASE WHEN a.attstorage <> t.typstorage THEN a.attstorage::text END,
        'compression', nullif(a.attcompression::text, '')) AS o, c.oid::pg_catalog.regclass::text || '.' || a.attname AS k
      FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
      WHERE c.relkind IN ('r', 'p', 'm') AND {_USER_REL} AND a.attnum > 0 AND NOT a.attisdropped
        AND (nullif(a.attstattarget, -1) IS NOT NULL OR a.attstorage <> t.typstorage OR a.attcompression <> '')""",
    "identities": f"""SELECT json_build_object('table', c.oid::pg_catalog.regclass::text, 'column', a.attname,
        'sequence', s.seqrelid::pg_catalog.regclass::text, {_SEQUENCE_OPTIONS}) AS o,
        c.oid::pg_catalog.regclass::text || '.' || a.attname AS k
      FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_sequence s ON s.seqrelid = d.objid
        JOIN pg_catalog.pg_class c ON c.oid = d.refobjid
        JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
      WHERE d.classid = {_REL} AND d.refclassid = {_REL} AND d.deptype = 'i' AND {_USER_REL}""",
    "policies": f"""SELECT json_build_object('definition', 'CREATE POLICY ' || pg_catalog.quote_ident(y.polname) || ' ON '
        || c.oid::pg_catalog.regclass::text || CASE WHEN y.polpermissive THEN '' ELSE ' AS RESTRICTIVE' END
        || CASE y.polcmd WHEN 'r' THEN ' FOR SELECT' WHEN 'a' THEN ' FOR INSERT' WHEN 'w' THEN ' FOR UPDATE'
            WHEN 'd' THEN ' FOR DELETE' ELSE '' END
        || CASE WHEN y.polroles = '{{0}}' THEN '' ELSE ' TO ' || (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(r.rolname),
            ', ' ORDER BY r.rolname) FROM pg_catalog.pg_roles r WHERE r.oid = ANY (y.polroles)) END
        || coalesce(' USING (' || pg_catalog.pg_get_expr(y.polqual, y.polrelid) || ')', '')
        || coalesce(' WITH CHECK (' || pg_catalog.pg_get_expr(y.polwithcheck, y.polrelid) || ')', '')) AS o,
        c.oid::pg_catalog.regclass::text || '.' || y.polname AS k
      FROM pg_catalog.pg_policy y JOIN pg_catalog.pg_class c ON c.oid = y.polrelid WHERE {_USER_REL}""",
    "statistics": """SELECT json_build_object('qname', pg_catalog.quote_ident(x.stxnamespace::pg_catalog.regnamespace::text) || '.'
        || pg_catalog.quote_ident(x.stxname), 'definition', pg_catalog.pg_get_statisticsobjdef(x.oid),
        'target', nullif(x.stxstattarget, -1)) AS o, x.stxnamespace::pg_catalog.regnamespace::text || '.' || x.stxname AS k
      FROM pg_catalog.pg_statistic_ext x WHERE x.stxnamespace = ANY (m.user_ns)""",
    "rules": f"""SELECT json_build_object('definition', pg_catalog.pg_get_ruledef(r.oid)) AS o,
        c.oid::pg_catalog.regclass::text || '.' || r.rulename AS k
      FROM pg_catalog.pg_rewrite r JOIN pg_catalog.pg_class c ON c.oid = r.ev_class WHERE r.rulename <> '_RETURN' AND {_USER_REL}""",
    "aggregates": f"""SELECT json_build_object('qname', p.pronamespace::pg_catalog.regnamespace::text || '.' || pg_catalog.quote_ident(p.proname),
        'arguments', pg_catalog.pg_get_function_arguments(p.oid), 'sfunc', g.aggtransfn::pg_catalog.regproc::text,
        'stype', pg_catalog.format_type(g.aggtranstype, NULL), 'sspace', nullif(g.aggtransspace, 0),
        'finalfunc', nullif(g.aggfinalfn, 0)::pg_catalog.regproc::text, 'finalfunc_extra', g.aggfinalextra,
        'combinefunc', nullif(g.aggcombinefn, 0)::pg_catalog.regproc::text,
        'serialfunc', nullif(g.aggserialfn, 0)::pg_catalog.regproc::text,
        'deserialfunc', nullif(g.aggdeserialfn, 0)::pg_catalog.regproc::text, 'initcond', g.agginitval,
        'sortop', nullif(g.aggsortop, 0)::pg_catalog.regoperator::text, 'parallel', p.proparallel::text) AS o,
        p.pronamespace::pg_catalog.regnamespace::text || '.' || p.proname || '(' || pg_catalog.pg_get_function_identity_arguments(p.oid) || ')' AS k
      FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_aggregate g ON g.aggfnoid = p.oid
      WHERE {_mine('p.pronamespace', 'p.oid', 'pg_proc')} AND g.aggkind = 'n'""",
    # grants and revokes against each object's default (acldefault), grantors aside: `--privileges`
    "privileges": f"""SELECT json_build_object('target', o.target, 'column', o.col, 'privilege', x.privilege_type,
        'grantee', CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(x.grantee)) END,
        'grantable', x.is_grantable, 'granted', x.granted) AS o,
        o.target || coalesce(o.col, '') || x.granted::text || x.grantee::text || x.privilege_type AS k
      FROM ({_ACL_OBJECTS}) o CROSS JOIN LATERAL (
        SELECT e.grantee, e.privilege_type, e.is_grantable, true AS granted FROM pg_catalog.aclexplode(o.acl) e
        WHERE (e.grantee, e.privilege_type, e.is_grantable) NOT IN (SELECT grantee, privilege_type, is_grantable
            FROM pg_catalog.aclexplode(o.deflt))
        UNION ALL SELECT e.grantee, e.privilege_type, e.is_grantable, false FROM pg_catalog.aclexplode(o.deflt) e
        WHERE (e.grantee, e.privilege_type) NOT IN (SELECT grantee, privilege_type FROM pg_catalog.aclexplode(o.acl))) x""",
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


STASHED_VERSION = (f"(SELECT CASE WHEN s.v <> '' THEN pg_catalog.substr(s.v, 2) END"
                    f" FROM (SELECT pg_catalog.current_setting('{_VERSION_SETTING}') AS v) s)")


def snapshot_sql(version_table: str | None = None, ledger_table: str | None = None, *, server_version: int = 0,
                 stashed_version: bool = False, complete: bool = False, tables: ToolTables = DEFAULT_TABLES,
                 also: str | None = None) -> str:
    """The one query: the recorded version, and the catalog as JSON text (``{part: [objects sorted by name]}``).

    ``SET LOCAL`` first, in the same round trip: every ``pg_get_*`` then qualifies every name, and
    no JIT (PostgreSQL 11+): the query's cost estimate is near ``jit_above_cost`` for a few dozen
    tables, and compiling it would cost far more than running it, on every database.
    The catalog comes back as text, so a database whose text equals its reference's needs no parsing.
    The tool's own tables (``tables``' names, in any schema) are left out.
    ``also``: a third column read in the same statement (drift's fingerprint, see ``fingerprint``).
    """
    if stashed_version:  # stash_version_sql ran earlier in the same transaction
        version = STASHED_VERSION
    elif version_table:
        version = f"(SELECT max(version_num::text) FROM {version_table})"
    elif ledger_table:  # the previous tool's ledger alone: its newest row is the version migrate adopts
        version = f"(SELECT max(version::text) FROM {ledger_table})"
    else:
        version = "NULL::text"
    chosen = {**_PARTS, **(_DUMP_PARTS if complete else {})}
    if server_version < 180000:
        chosen.pop("not_null", None)  # named NOT NULL constraints came with PostgreSQL 18
    parts = ",\n".join(
        f"'{name}', (SELECT coalesce(json_agg(q.o ORDER BY q.k COLLATE \"C\"), '[]') FROM ({sql}) q)"
        for name, sql in chosen.items()
    )
    settings = "SET LOCAL search_path TO '';\n" + ("SET LOCAL jit = off;\n" if server_version >= 110000 else "")
    tool = ", ".join(f"'{name}'" for name in tables.own_names)
    third = f", {also}" if also else ""
    return f"{settings}SELECT {version}, json_build_object({parts.replace(_TOOL, tool)})::text{third} FROM {_SCOPE}"


def read_snapshot(cursor, *, locate: bool = True, complete: bool = False,
                  tables: ToolTables = DEFAULT_TABLES) -> tuple[str | None, str]:
    """(recorded version, catalog JSON text) of the cursor's database: two round trips, one with ``locate=False``.

    ``complete``: also what only schema.sql needs (comments, policies, ...: ``_DUMP_PARTS``)."""
    version_table = ledger_table = None
    if locate:
        cursor.execute(LOCATE_SQL, (tables.version, tables.ledger))
        version_table, ledger_table = cursor.fetchone()
    cursor.execute(snapshot_sql(version_table, ledger_table, server_version=cursor.connection.server_version,
                                complete=complete, tables=tables))
    return cursor.fetchone()
