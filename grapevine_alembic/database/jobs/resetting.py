"""``reset``: drop every non-system schema of a local database so a fresh ``migrate`` starts clean."""

from __future__ import annotations

from ...errors import UsageError
from ...tool_tables import DEFAULT_TABLES, ToolTables
from ..session.connection import ConnectionFailed, open_connection, remote_peer
from ..state.result import DatabaseResult
from .retrying import with_retries
from .runner import RunOptions, Session
from ..state.target import Target

_USER_SCHEMAS = (
    "SELECT nspname FROM pg_namespace"
    " WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' ORDER BY nspname"
)


def refuse_remote(targets: list[Target]) -> None:
    """Reset is for local servers only; any other server is refused, with or without --force.

    A remote host named in the URL is refused without being contacted; otherwise one connection
    per server says where libpq really goes (``hostaddr``, ``PGHOST``, ``PGHOSTADDR``, a service).
    """
    for target in targets:
        if not target.spec.is_local:
            raise _refused(target, dict(target.spec.options).get("hostaddr") or target.spec.host)
    checked = set()
    for target in targets:
        server = tuple((key, str(value)) for key, value in target.spec.connect_kwargs().items() if key != "dbname")
        if server in checked:
            continue
        checked.add(server)
        try:
            raw = open_connection(target.spec)
        except ConnectionFailed:
            continue  # its job fails to connect too, and checks the connection it does open
        try:
            peer = remote_peer(raw)
        finally:
            raw.close()
        if peer:
            raise _refused(target, peer)


def _refused(target: Target, where: str | None) -> UsageError:
    return UsageError(f"reset refuses {target.database} on {where}: only local servers"
                      " (localhost, 127.x.x.x, ::1, unix socket) can be reset")


def reset(target: Target, options: RunOptions, tables: ToolTables = DEFAULT_TABLES) -> DatabaseResult:
    """Drop all user schemas (version tables included) and recreate an empty ``public``."""

    def attempt(result: DatabaseResult) -> None:
        with Session(target, options, tables) as session:
            peer = remote_peer(session.raw)
            if peer:  # the connection that would drop, checked again: a name may resolve elsewhere now
                raise _refused(target, peer)
            # a search_path changed after migrations is no reason to refuse: every schema goes, the one
            # the tool's tables are really in as well as the current one
            session.read(lock=False, refuse_moved=False) if options.dry_run else session.lock_and_read(refuse_moved=False)
            with session.raw.cursor() as cursor:
                cursor.execute(_USER_SCHEMAS)
                schemas = [row[0] for row in cursor.fetchall()]
                result.changes = [f"drop schema {name}" for name in schemas] + ["create schema public"]
                if options.dry_run:
                    return
                cursor.execute("BEGIN")  # all schemas go, or none
                cursor.execute("SET LOCAL client_min_messages = warning")  # no 'drop cascades to ...' flood
                for name in schemas:
                    cursor.execute(f'DROP SCHEMA "{_quoted(name)}" CASCADE')
                cursor.execute("SHOW server_version_num")
                owner = "pg_database_owner" if int(cursor.fetchone()[0]) >= 150000 else "CURRENT_USER"
                cursor.execute(f"CREATE SCHEMA public AUTHORIZATION {owner}")
                cursor.execute("GRANT USAGE ON SCHEMA public TO PUBLIC")
                if owner == "CURRENT_USER":
                    cursor.execute("GRANT CREATE ON SCHEMA public TO PUBLIC")  # the pre-15 default
                cursor.execute("COMMIT")

    return with_retries(target, options, attempt)


def _quoted(identifier: str) -> str:
    return identifier.replace('"', '""')
