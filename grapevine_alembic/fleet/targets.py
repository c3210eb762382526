"""Which databases a command touches: the control database and provisioned tenants.

The tenant query lives here and nowhere else; alembic.ini ``[grapevine]
tenants_query`` overrides it.  Its optional second column places a tenant on
another server (``host[:port]``, see placement.py; NULL: the default tenant server).
Every tenant id is validated before it is used in a database name.  ``--all-tenants`` is
the provisioned ones; an explicitly named tenant (``--tenant X``) is taken whatever its state,
as the previous tool and ``alembic -x tenant=X`` do (repairing a failed provisioning), with a
notice naming the state, on the server its own row gives (the column the query's server column
is named after); an id the tenants table does not have is still an error.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ..database.session import transient
from ..database.session import interrupts
from ..database.session.connection import ConnectionFailed, describe_error, open_connection
from ..errors import MIGRATE_CONTROL, DatabaseError, Fix, UnknownTenant, UsageError
from ..settings import Settings, validate_tenant_id
from ..database.state.target import Target
from .backoff import retried

PROVISIONED = "provisioned"


@dataclass(frozen=True)
class Selection:
    """What the user asked for on the command line."""

    control: bool = False
    all_tenants: bool = False
    tenant_ids: tuple[str, ...] = ()
    shard: tuple[int, int] | None = None  # (index, count), 1-based index

    @property
    def wants_tenants(self) -> bool:
        return self.all_tenants or bool(self.tenant_ids)

    @property
    def empty(self) -> bool:
        return not (self.control or self.wants_tenants)


def parse_shard(text: str) -> tuple[int, int]:
    """``i/n`` with 1 <= i <= n."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard takes i/n, for example 2/4 (got {text!r})") from None
    if not 1 <= index <= count:
        raise UsageError(f"--shard {text}: i must be between 1 and n")
    return index, count


def shard_of(tenant_id: str, count: int) -> int:
    """A stable 1-based shard for a tenant: the same on every machine and Python version."""
    digest = hashlib.sha256(tenant_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def control_target(settings: Settings) -> Target:
    return Target("control", settings.control)


def default_tenants_query(has_deleted_at: bool) -> str:
    deleted = " AND deleted_at IS NULL" if has_deleted_at else ""
    return f"SELECT id::text FROM tenants WHERE state = '{PROVISIONED}'{deleted} ORDER BY id"


def provisioned_tenants(settings: Settings, tenants_query: str | None = None) -> dict[str | None, str | None]:
    """Ask the control database for provisioned tenants: id -> server (None: the default), in query order."""
    return listed_tenants(settings, tenants_query)[0]


def listed_tenants(settings: Settings, tenants_query: str | None = None, connection=None
                   ) -> tuple[dict[str | None, str | None], str | None]:
    """``provisioned_tenants``, and the name of the query's server column (None: it has none)."""
    return control_read(settings, lambda cursor: _read_listed(settings, cursor, tenants_query), connection)


def _read_listed(settings: Settings, cursor, tenants_query: str | None):
    import psycopg2

    if tenants_query is None:
        cursor.execute(
            "SELECT to_regclass('tenants') IS NOT NULL, EXISTS (SELECT 1 FROM pg_attribute"
            " WHERE attrelid = to_regclass('tenants') AND attname = 'deleted_at' AND NOT attisdropped)"
        )
        has_table, has_deleted_at = cursor.fetchone()
        if not has_table:
            raise DatabaseError(f"the control database {settings.control.dbname} has no tenants table",
                                fix=Fix(MIGRATE_CONTROL))
        tenants_query = default_tenants_query(has_deleted_at)
    try:
        cursor.execute(tenants_query)
    except psycopg2.Error as err:
        if transient.is_restart(err):
            raise  # the server going away: read again once it is back
        raise DatabaseError(f"the tenants query failed: {describe_error(err)}") from None
    server_column = cursor.description[1].name if len(cursor.description) > 1 else None
    # a NULL id stays None (str() would make it the tenant "None", database db_None)
    return ({(None if row[0] is None else str(row[0])): _server_value(row) for row in cursor.fetchall()},
            server_column)


# How long a read of the control database waits out a server restarting (a run's --retry-window is the
# tenants' databases'; the control read comes before or between them).
CONTROL_RESTART_WINDOW_S = 30.0


def control_read(settings: Settings, read, connection=None):
    """``read(cursor)`` on a new connection to the control database.  A server restarting is waited out
    (read again with backoff, up to ``CONTROL_RESTART_WINDOW_S``); any other driver error is one line.

    ``connection``: an idle control connection the run already holds (the rollout record's), read on first
    so the run opens no second one; lost under the read (a restart), the read goes on as above."""
    import psycopg2

    answered = []  # the server has answered us: a refusal now is a restart to wait out, not a wrong address
    if connection is not None and not connection.closed:
        answered.append(True)
        try:
            with connection.cursor() as cursor:
                return read(cursor)
        except psycopg2.Error as err:
            if not connection.closed and not transient.is_restart(err):
                raise DatabaseError(f"reading the control database failed: {describe_error(err)}") from None

    def attempt():
        raw = open_connection(settings.control)
        answered.append(True)
        try:
            with raw.cursor() as cursor:
                return read(cursor)
        finally:
            raw.close()

    def again(err) -> bool:
        # a server refusing from the start is down or misplaced: said at once, not waited for
        return (isinstance(err, (psycopg2.Error, ConnectionFailed)) and transient.is_restart(err)
                and (bool(answered) or transient.server_says_restarting(err)) and not interrupts.stopping())

    try:
        return retried(attempt, window_s=CONTROL_RESTART_WINDOW_S, again=again)
    except psycopg2.Error as err:
        raise DatabaseError(f"reading the control database failed: {describe_error(err)}") from None


def _server_value(row: tuple) -> str | None:
    return None if len(row) < 2 or row[1] is None else str(row[1])


@dataclass(frozen=True)
class TenantRow:
    """A named tenant the tenants query did not list: its state, and its server as its own row gives it."""

    state: str
    server: str | None
    has_server_column: bool  # the row has the column the query's server column is named after


def tenant_rows(settings: Settings, tenant_ids: list[str], server_column: str | None, connection=None
                ) -> dict[str, TenantRow]:
    """Each given id's row of the tenants table (absent ids are missing from the result).

    Its server comes from the column the tenants query names its server column after, whatever
    the state: a tenant being provisioned or repaired belongs on its own server too."""
    def read(cursor):
        cursor.execute(
            # to_jsonb reads deleted_at, and the server column, only where those columns exist
            "SELECT id::text, CASE WHEN to_jsonb(t) ->> 'deleted_at' IS NOT NULL THEN 'deleted' ELSE state END,"
            " to_jsonb(t) ->> %s, to_jsonb(t) ? %s FROM tenants t WHERE id::text = ANY(%s)",
            (server_column or "", server_column or "", tenant_ids),
        )
        return {tenant_id: TenantRow(state, server, server_column is None or has)
                for tenant_id, state, server, has in cursor.fetchall()}

    return control_read(settings, read, connection)


def close_ids(settings: Settings, tenant_id: str, connection=None) -> tuple[str, ...]:
    """The tenants table's ids most like ``tenant_id`` (a typo's candidates), best first; read only on that error."""
    import difflib

    def read(cursor):
        cursor.execute("SELECT id::text FROM tenants WHERE id IS NOT NULL")
        return [row[0] for row in cursor.fetchall()]

    ids = control_read(settings, read, connection)
    return tuple(difflib.get_close_matches(tenant_id, ids, n=3))


def resolve(selection: Selection, settings: Settings, tenants_query: str | None = None, *,
            announce=None, connection=None) -> list[Target]:
    """Targets for a selection: control first, then tenants in id order.

    ``announce(line)`` hears of each named tenant that is not provisioned (it is included all the same);
    ``connection``: an idle control connection to read on (see ``control_read``).
    """
    for tenant_id in selection.tenant_ids:
        validate_tenant_id(tenant_id)  # bad input fails before any connection
    targets = [control_target(settings)] if selection.control else []
    if not selection.wants_tenants:
        return targets
    provisioned, server_column = listed_tenants(settings, tenants_query, connection)
    if selection.all_tenants:
        chosen, others = list(provisioned), {}
    else:
        chosen = list(dict.fromkeys(selection.tenant_ids))
        others = unlisted_rows(settings, chosen, provisioned, server_column, connection)
        for tenant_id, row in others.items():
            if announce:
                announce(f"notice: tenant {tenant_id} is {row.state}, not {PROVISIONED}:"
                         f" included because it was named (--all-tenants leaves it out)")
    if selection.shard:
        index, count = selection.shard
        chosen = [t for t in chosen if shard_of(t or "", count) == index]
    return targets + [named_target(settings, t, provisioned, others, server_column) for t in chosen]


def unlisted_rows(settings: Settings, chosen: list[str], provisioned: dict, server_column: str | None,
                  connection=None) -> dict[str, TenantRow]:
    """The rows of the named tenants the tenants query did not list; an id the table does not have is an error."""
    others = [t for t in chosen if t not in provisioned]
    rows = tenant_rows(settings, others, server_column, connection) if others else {}
    unknown = [t for t in others if t not in rows]
    if unknown:
        raise UnknownTenant(unknown[0], close_ids(settings, unknown[0], connection))
    return rows


def named_target(settings: Settings, tenant_id: str, provisioned: dict, others: dict[str, TenantRow],
                 server_column: str | None) -> Target:
    """A tenant listed by the tenants query is on the server it gives; any other, on the server its row gives."""
    row = others.get(tenant_id)
    if row is None:
        return _tenant_target(settings, tenant_id, provisioned.get(tenant_id))
    if not row.has_server_column:
        return Target("tenant", settings.tenant_server.for_database(_database_name(settings, tenant_id)), tenant_id,
                      problem=f"cannot place it: it is {row.state}, so the tenants query does not list it, and the"
                              f" tenants table has no column {server_column} (the query's server column) to read"
                              " its server from")
    return _tenant_target(settings, tenant_id, row.server)


def _tenant_target(settings: Settings, tenant_id: str | None, server: str | None = None) -> Target:
    if not tenant_id:  # NULL or '': never a database name; that row's error, like any invalid id
        what = "a NULL" if tenant_id is None else "an empty"
        return Target("tenant", settings.tenant_server.for_database("?"), tenant_id,
                      problem=f"invalid tenant id: a provisioned row of the tenants table has {what} id", placement=server)
    try:
        return Target("tenant", settings.tenant_spec(tenant_id, server), tenant_id)
    except UsageError as err:
        # A bad id or server stored in the tenants table is that tenant's problem, not the whole run's.
        return Target("tenant", settings.tenant_server.for_database(_database_name(settings, tenant_id)), tenant_id,
                      problem=str(err), placement=server)


def _database_name(settings: Settings, tenant_id: str) -> str:
    try:
        return settings.tenant_spec(tenant_id).dbname
    except UsageError:
        return "?"

