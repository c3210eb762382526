"""PostgreSQL helpers for the tests: the session server, databases, connections and URLs.

Tests import this as ``import pg`` (pytest puts tests/ on sys.path for its conftest).
Every helper takes a "server": a ``LocalPostgres`` or an ``ExternalServer``; both have
``host``, ``port``, ``superuser``, ``password``, ``url``, ``restart()`` and ``kill()``.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import psycopg2
import pytest
from psycopg2 import sql as pgsql
from sqlalchemy.engine import URL

import run_shared

# Distinctive and full of URL-special characters: quoting bugs fail loudly, and
# secret-leak tests can grep output for it.  Only the local server uses it; against
# TEST_DATABASE_URL, grep for ``pg_server.password`` instead.
TEST_PASSWORD = "Gr@pe:v/ine%Secret#?&'x"

EXTERNAL_URL_ENV = "TEST_DATABASE_URL"


class ExternalServer:
    """A server given by TEST_DATABASE_URL: used as is, never started, stopped or killed."""

    external = True

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme.split("+")[0] not in ("postgres", "postgresql"):
            raise ValueError(f"{EXTERNAL_URL_ENV} must be a postgresql:// URL")
        self.url = url
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 5432
        self.superuser = unquote(parts.username or "postgres")
        self.password = unquote(parts.password) if parts.password is not None else None
        # Where CREATE/DROP DATABASE connect from; the URL's database, else "postgres".
        self.maintenance_db = unquote(parts.path.lstrip("/")) or "postgres"

    def __repr__(self) -> str:
        return f"ExternalServer(host={self.host!r}, port={self.port})"  # no password

    def restart(self) -> None:
        """Not possible on a server we do not own."""
        pytest.skip(f"cannot restart the server of {EXTERNAL_URL_ENV}")

    def kill(self) -> None:
        """Not possible on a server we do not own."""
        pytest.skip(f"cannot kill the server of {EXTERNAL_URL_ENV}")


def is_external(server) -> bool:
    """Whether the server comes from TEST_DATABASE_URL."""
    return getattr(server, "external", False)


def session_server(tmp_path_factory):
    """Yield the session's server: TEST_DATABASE_URL's, or a LocalPostgres stopped afterwards.

    Under pytest-xdist every worker has its own basetemp, so each worker gets its own
    data directory and (kernel-picked) port.
    """
    url = os.environ.get(EXTERNAL_URL_ENV)
    if url:
        yield ExternalServer(url)
        return
    server = fresh_cluster(tmp_path_factory, "pg")
    server.start()
    import server_guard

    server_guard.guard(server.data_dir)  # a killed test run leaves no server behind
    try:
        yield server
    finally:
        server.stop()


def fresh_cluster(tmp_path_factory, name: str, **settings):
    """A stopped LocalPostgres (the suite's superuser and password) in a folder of its own.

    Its data directory is a copy of the one cluster the run initdb's (tests/run_shared.py): initdb
    took 2 to 25 s a server on the 2-core machine, the copy a fraction of that.
    """
    from grapevine_alembic.local.embedded import LocalPostgres

    def initdb(where: Path) -> dict:
        server = LocalPostgres(where / "data", password=TEST_PASSWORD)
        server.start()  # initdb, and a first start that finishes the cluster's set-up
        server.stop()
        (where / "data" / "server.log").unlink(missing_ok=True)
        return {"data": str(where / "data")}

    template = Path(run_shared.once(tmp_path_factory, "cluster", initdb)["data"])
    data = tmp_path_factory.mktemp(name) / "data"
    run_shared.copy_tree(template, data)
    return LocalPostgres(data, password=TEST_PASSWORD, **settings)


def own_server(tmp_path_factory, pg_server, name: str, why: str, **settings):
    """Yield an embedded PostgreSQL of the test's own (same superuser and password as the suite's).

    For tests that stop, restart or reconfigure a server: the session's shared one must stay up.
    Skipped with ``why`` where the suite runs against TEST_DATABASE_URL's server.
    """
    if is_external(pg_server):
        pytest.skip(why)
    server = fresh_cluster(tmp_path_factory, name, **settings)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _maintenance_db(server) -> str:
    """The database to connect to for CREATE/DROP DATABASE."""
    return getattr(server, "maintenance_db", "postgres")


def connect(server, dbname: str | None = None):
    """An autocommit psycopg2 connection to dbname (default: the maintenance database)."""
    conn = psycopg2.connect(
        host=server.host,
        port=server.port,
        user=server.superuser,
        password=server.password,
        dbname=dbname or _maintenance_db(server),
        connect_timeout=10,
    )
    conn.autocommit = True
    return conn


def query(server, dbname: str | None, sql, params=None) -> list[tuple]:
    """Run sql (text or psycopg2.sql) and return its rows ([] for statements without a result)."""
    conn = connect(server, dbname)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description is not None else []
    finally:
        conn.close()


def url_for(server, dbname: str, *, password: str | None = None) -> str:
    """A SQLAlchemy URL for dbname with the password really in it (quoted by SQLAlchemy)."""
    return URL.create(
        "postgresql",
        username=server.superuser,
        password=server.password if password is None else password,
        host=server.host,
        port=server.port,
        database=dbname,
    ).render_as_string(hide_password=False)


def unique_db_name() -> str:
    """A fresh database name such as t_1a2b3c4d."""
    return f"t_{secrets.token_hex(4)}"


def database_exists(server, name: str) -> bool:
    """Whether the database exists."""
    return bool(query(server, None, "SELECT 1 FROM pg_database WHERE datname = %s", (name,)))


def create_database(server, name: str) -> str:
    """Create the database and return its name."""
    query(server, None, pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name)))
    return name


def drop_database(server, name: str) -> None:
    """Drop the database if it exists, disconnecting anybody still using it."""
    query(server, None, pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name)))


class DatabaseFactory:
    """Creates databases on demand and drops all of them on close() (the make_db fixture)."""

    def __init__(self, server) -> None:
        self.server = server
        self.created: list[str] = []

    def __call__(self, name: str | None = None) -> str:
        """Create a database (a unique name if None) and return its name."""
        name = name or unique_db_name()
        create_database(self.server, name)
        self.created.append(name)
        return name

    def close(self) -> None:
        """Drop every database created, even if dropping one of them fails."""
        errors = []
        for name in reversed(self.created):
            try:
                drop_database(self.server, name)
            except psycopg2.Error as err:
                errors.append(f"{name}: {err}")
        self.created.clear()
        if errors:
            raise RuntimeError("could not drop test databases: " + "; ".join(errors))


def project_root() -> Path:
    """The repository root (the folder holding pyproject.toml)."""
    return Path(__file__).resolve().parents[1]


def version_on(server, database: str) -> str | None:
    """The database's alembic_version, None before it has one."""
    if not query(server, database, "SELECT to_regclass('alembic_version') IS NOT NULL")[0][0]:
        return None
    return query(server, database, "SELECT version_num FROM alembic_version")[0][0]


def outage(server, database: str, seconds: float, log: dict) -> None:
    """Once ``database`` is past its first file, stop ``server`` for ``seconds``, then start it (in a thread)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if version_on(server, database):
                break
        except Exception:  # noqa: BLE001 - its database may be busy being created
            pass
        time.sleep(0.05)
    log["stopping"] = time.monotonic()
    server.stop()
    log["stopped"] = time.monotonic()
    time.sleep(seconds)
    server.start()
    log["started"] = time.monotonic()
