"""``dev tenant add``'s row in whatever ``tenants`` table the project has (and ``dev tenant remove``'s delete).

A team's table has ``id`` and ``state`` and columns of its own. Only the columns that must
be given (NOT NULL, no default, not generated) are filled, each with a plain value for its
type; a column no plain value fits is named in one line, and nothing is written.
"""

from __future__ import annotations

from ..errors import MIGRATE_CONTROL, ConfigError, Fix, UnknownTenant

# information_schema data_type -> the SQL expression written into a required column (%(id)s: the tenant id)
_TEXT = {"text", "character varying", "character", "citext", "name"}
_VALUES = {
    "timestamp with time zone": "now()",
    "timestamp without time zone": "now()",
    "date": "current_date",
    "boolean": "false",
    "uuid": "gen_random_uuid()",
    "json": "'{}'",
    "jsonb": "'{}'",
    "integer": "0",
    "bigint": "0",
    "smallint": "0",
    "numeric": "0",
}
_COLUMNS = """
SELECT column_name, data_type, udt_name, is_nullable = 'NO' AND column_default IS NULL
       AND is_identity = 'NO' AND is_generated = 'NEVER'
FROM information_schema.columns
WHERE table_schema = current_schema() AND table_name = 'tenants'
ORDER BY ordinal_position
"""


def provision(cursor, tenant_id: str) -> None:
    """Insert ``tenant_id`` as provisioned, or set an existing row back to provisioned."""
    columns = _read_columns(cursor)
    if not columns:  # no table at all: not one that lacks both columns
        raise ConfigError("the control database has no tenants table", fix=Fix(MIGRATE_CONTROL))
    for needed in ("id", "state"):
        if needed not in columns:
            raise ConfigError(f"the control database's tenants table has no {needed} column: dev tenant add needs id and state")
    revive = "state = 'provisioned'" + (", deleted_at = NULL" if "deleted_at" in columns else "")
    cursor.execute(f"UPDATE tenants SET {revive} WHERE id = %(id)s", {"id": tenant_id})
    if cursor.rowcount:
        return
    names, values = ["id", "state"], ["%(id)s", "'provisioned'"]
    for name, (data_type, udt, required) in columns.items():
        if required and name not in names:
            names.append(name)
            values.append(_value_for(name, data_type, udt, cursor))
    quoted = ", ".join(f'"{name}"' for name in names)
    cursor.execute(f"INSERT INTO tenants ({quoted}) VALUES ({', '.join(values)})", {"id": tenant_id})


def _read_columns(cursor) -> dict[str, tuple[str, str, bool]]:
    cursor.execute(_COLUMNS)
    return {name: (data_type, udt, required) for name, data_type, udt, required in cursor.fetchall()}


def _value_for(column: str, data_type: str, udt: str, cursor) -> str:
    if data_type in _TEXT or udt in _TEXT:
        return "%(id)s"  # name, slug, display name...: the id reads well enough locally
    if data_type in _VALUES:
        return _VALUES[data_type]
    if data_type == "USER-DEFINED":  # an enum: its first label
        cursor.execute("SELECT enumlabel FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid"
                       " WHERE t.typname = %s ORDER BY e.enumsortorder LIMIT 1", (udt,))
        row = cursor.fetchone()
        if row:
            return cursor.mogrify("%s", (row[0],)).decode().replace("%", "%%")
    raise ConfigError(f"dev tenant add cannot fill the tenants column {column} ({data_type}, NOT NULL without a"
                      " default): give it a default, or insert the tenant yourself")


def remove_rows(cursor, tenant_ids: list[str], with_database: set[str]) -> set[str]:
    """Delete the tenants' rows; the ids that had one. An id with neither a row nor a database
    (``with_database``: the ids whose database exists) is an unknown tenant, and nothing is deleted."""
    import difflib

    cursor.execute("SELECT id::text FROM tenants WHERE id IS NOT NULL")
    known = {row[0] for row in cursor.fetchall()}
    for tenant_id in tenant_ids:
        if tenant_id not in known and tenant_id not in with_database:
            raise UnknownTenant(tenant_id, tuple(difflib.get_close_matches(tenant_id, sorted(known), n=3)))
    cursor.execute("DELETE FROM tenants WHERE id::text = ANY(%s)", (tenant_ids,))
    return known & set(tenant_ids)
