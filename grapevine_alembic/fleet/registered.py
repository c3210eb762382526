"""Tenants the tenants table knows, in any state: the targets of ``provision``.

The provisioning service writes a tenant's row first (state ``provisioning``, say) and then
asks for its database, so ``provision`` does not require the state ``provisioned`` that
every other command selects by.  A tenant is placed on the server the tenants query gives it
(alembic.ini ``tenants_query``, when it lists the tenant already), else on the server its own
row gives (the column named as the query's server column), whatever its state.
"""

from __future__ import annotations

from ..database.session import transient
from ..database.session.connection import describe_error
from ..database.state.target import Target
from ..errors import MIGRATE_CONTROL, DatabaseError, Fix, UnknownTenant
from ..settings import Settings, validate_tenant_id
from .targets import close_ids, control_read, listed_tenants, named_target, unlisted_rows


def registered_targets(settings: Settings, tenant_ids, tenants_query: str | None = None) -> list[Target]:
    """One target per distinct id; an id missing from the tenants table is a usage error."""
    import psycopg2

    wanted = list(dict.fromkeys(tenant_ids))
    for tenant_id in wanted:
        validate_tenant_id(tenant_id)  # bad input fails before any connection
    def read(cursor):
        cursor.execute("SELECT to_regclass('tenants') IS NOT NULL")
        if not cursor.fetchone()[0]:
            raise DatabaseError(f"the control database {settings.control.dbname} has no tenants table",
                                fix=Fix(MIGRATE_CONTROL))
        try:
            cursor.execute("SELECT id::text FROM tenants WHERE id::text = ANY(%s)", (wanted,))
        except psycopg2.Error as err:
            if transient.is_restart(err):
                raise  # the server going away: read again once it is back
            raise DatabaseError(f"reading the tenants table failed: {describe_error(err)}") from None
        return {row[0] for row in cursor.fetchall()}

    known = control_read(settings, read)
    unknown = [t for t in wanted if t not in known]
    if unknown:
        raise UnknownTenant(unknown[0], close_ids(settings, unknown[0]))
    if not tenants_query:  # the default query places every tenant on the default server
        return [Target("tenant", settings.tenant_spec(t), t) for t in wanted]
    listed, server_column = listed_tenants(settings, tenants_query)
    others = unlisted_rows(settings, wanted, listed, server_column)
    return [named_target(settings, t, listed, others, server_column) for t in wanted]
