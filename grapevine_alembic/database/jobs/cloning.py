"""One server's databases as a whole: who may create them, whether one exists, copying one from a template.

Everything here runs on a connection to the server's maintenance database (``postgres``),
never on the template itself: ``CREATE DATABASE ... TEMPLATE`` fails while any session is
connected to the template.  Runs that copy the template and runs that migrate it agree
through an advisory lock on the maintenance database (advisory locks belong to one
database): copies share it, bringing the template to head takes it alone.
"""

from __future__ import annotations

import hashlib
import time
import zlib
from dataclasses import dataclass

from ...errors import DatabaseError
from ..session.connection import LockTimeout, describe_error

# "source database ... is being accessed by other users": a session (a run that just
# disconnected, autovacuum) is still on the template; PostgreSQL already waits 5 s for it.
_IN_USE = "55006"
_DUPLICATE_DATABASE = "42P04"
# Where a server refuses templates: no right to copy this database, or a feature the
# service switched off.
REFUSED_SQLSTATES = {"42501", "0A000"}
_COPY_RETRY_S = 10.0


class AlreadyExists(DatabaseError):
    """The database to create is there already: nothing is touched."""


class TemplateRefused(DatabaseError):
    """The server does not let this role create, change or copy the template."""


@dataclass(frozen=True)
class ServerRights:
    role: str
    can_create: bool  # CREATEDB or superuser
    exists: bool  # the database to provision


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def rights(raw, database: str) -> ServerRights:
    with raw.cursor() as cursor:
        cursor.execute(
            "SELECT current_user::text, r.rolsuper OR r.rolcreatedb,"
            " EXISTS (SELECT 1 FROM pg_database WHERE datname = %s)"
            " FROM pg_roles r WHERE r.rolname = current_user",
            (database,),
        )
        role, can_create, exists = cursor.fetchone()
    return ServerRights(role, bool(can_create), bool(exists))


def is_empty(raw) -> bool:
    """No relation, function or type of anybody's in the database (extensions' objects count)."""
    with raw.cursor() as cursor:
        cursor.execute(
            "SELECT NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%%'"
            " AND n.nspname NOT LIKE 'pg\\_temp\\_%%')"
            " AND NOT EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema'))"
        )
        return bool(cursor.fetchone()[0])


# ---- the template's mark: which files it holds, readable without connecting to it ----

MARK_PREFIX = "grapevine template at "


def fingerprint(files) -> str:
    """The chain up to a version: each file's version and checksum, in order."""
    digest = hashlib.sha256()
    for migration in files:
        digest.update(f"{migration.version}:{migration.checksum}\n".encode())
    return digest.hexdigest()[:32]


def mark_text(files) -> str:
    head = files[-1].version if files else "base"
    return f"{MARK_PREFIX}{head} {fingerprint(files)}"


@dataclass(frozen=True)
class TemplateState:
    exists: bool
    mark: str | None = None  # the database's comment, set once it reached that head

    def holds(self, files) -> bool:
        """Sealed at these files: a copy may be taken (and its ledger is still checked, see provisioning)."""
        return self.exists and self.mark == mark_text(files)


def template_state(raw, name: str) -> TemplateState:
    with raw.cursor() as cursor:
        cursor.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (name,))
        row = cursor.fetchone()
    return TemplateState(False) if row is None else TemplateState(True, row[0])


# ---- the coordination lock, on the maintenance database ----


def lock_keys(lock_key: int, template: str) -> tuple[int, int]:
    """Two int4 keys: a lock space apart from the migration lock's bigint key."""
    return (lock_key & 0x7FFFFFFF, zlib.crc32(template.encode()) & 0x7FFFFFFF)


def take(raw, keys: tuple[int, int], *, shared: bool, timeout_s: float) -> None:
    """Wait (polling, no transaction open) for the template lock, shared by copies or alone."""
    function = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
    deadline = time.monotonic() + timeout_s if timeout_s > 0 else float("inf")
    delay = 0.02
    while True:
        with raw.cursor() as cursor:
            cursor.execute(f"SELECT {function}(%s, %s)", keys)
            if cursor.fetchone()[0]:
                return
        if time.monotonic() + delay > deadline:
            raise LockTimeout(f"another run held the template lock on {raw.info.host}:{raw.info.port}"
                              f" for more than {timeout_s:g}s")
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def release(raw, keys: tuple[int, int], *, shared: bool) -> None:
    """Best effort: a broken connection has released it already, and must not hide why it broke."""
    import psycopg2

    function = "pg_advisory_unlock_shared" if shared else "pg_advisory_unlock"
    try:
        with raw.cursor() as cursor:
            cursor.execute(f"SELECT {function}(%s, %s)", keys)
    except psycopg2.Error:
        pass


# ---- creating, copying and dropping ----


def create_empty(raw, name: str) -> None:
    _execute(raw, f"CREATE DATABASE {quote_ident(name)}", name)


def copy_template(raw, name: str, template: str) -> None:
    """``CREATE DATABASE name TEMPLATE template``, retried briefly while a session is still on the template.

    No STRATEGY clause: PostgreSQL 15+ copies WAL_LOG by default, which bench/copycost.py measured
    2-5x cheaper than FILE_COPY with fsync on, and FILE_COPY checkpoints the whole server twice."""
    import psycopg2

    deadline = time.monotonic() + _COPY_RETRY_S
    while True:
        try:
            _execute(raw, f"CREATE DATABASE {quote_ident(name)} TEMPLATE {quote_ident(template)}", name)
            return
        except psycopg2.Error as err:
            if err.pgcode in REFUSED_SQLSTATES:
                raise TemplateRefused(f"copying {template}: {describe_error(err)}") from None
            if err.pgcode != _IN_USE or time.monotonic() > deadline:
                raise DatabaseError(f"creating {name} from {template}: {describe_error(err)}") from None
            time.sleep(0.1)


def seal(raw, template: str, files) -> None:
    """Keep everybody out of the template, then mark it at this head (the mark last: it means "ready")."""
    name = quote_ident(template)
    mark = mark_text(files).replace("'", "''")
    _template_sql(raw, f"ALTER DATABASE {name} ALLOW_CONNECTIONS false;\nALTER DATABASE {name} IS_TEMPLATE true;\n"
                       f"COMMENT ON DATABASE {name} IS '{mark}'", template)


def unseal(raw, template: str) -> None:
    """Let the tool connect to migrate it, its mark removed first: a refresh that fails or stops halfway
    leaves a template nobody copies, and the next run reads its ledger to see what it holds."""
    name = quote_ident(template)
    _template_sql(raw, f"COMMENT ON DATABASE {name} IS NULL;\nALTER DATABASE {name} ALLOW_CONNECTIONS true",
                  template)


def drop_template(raw, template: str) -> None:
    name = quote_ident(template)
    _template_sql(raw, f"ALTER DATABASE {name} IS_TEMPLATE false;\nDROP DATABASE {name}", template)


def drop_copy(raw, name: str) -> None:
    """Drop a database this run has just created (and closed): a copy that did not hold the chain."""
    _execute(raw, f"DROP DATABASE IF EXISTS {quote_ident(name)}", name)


def create_template(raw, template: str) -> None:
    """An empty database copied from template1, as a plain CREATE DATABASE of a tenant would be."""
    _template_sql(raw, f"CREATE DATABASE {quote_ident(template)}", template)


def _template_sql(raw, sql: str, template: str) -> None:
    import psycopg2

    try:
        with raw.cursor() as cursor:
            for statement in sql.split(";\n"):  # CREATE/DROP DATABASE cannot share a batch
                cursor.execute(statement)
    except psycopg2.Error as err:
        if err.pgcode in REFUSED_SQLSTATES:
            raise TemplateRefused(f"{template}: {describe_error(err)}") from None
        raise DatabaseError(f"{template}: {describe_error(err)}") from None


def _execute(raw, sql: str, name: str) -> None:
    import psycopg2

    try:
        with raw.cursor() as cursor:
            cursor.execute(sql)
    except psycopg2.Error as err:
        # two creates at once: the loser trips over the catalog's unique index instead of 42P04
        if err.pgcode == _DUPLICATE_DATABASE or (err.pgcode == "23505" and "pg_database_datname_index" in str(err)):
            raise AlreadyExists(f"database {name} already exists; nothing was changed") from None
        raise


def missing_roles(server, names) -> frozenset[str]:
    """Which of the roles ``names`` the server does not have (a chain's CREATE ROLEs on a fresh server)."""
    if not names:
        return frozenset()
    with server.cursor() as cursor:
        cursor.execute("SELECT rolname FROM pg_catalog.pg_roles WHERE rolname = ANY(%s)", (list(names),))
        present = {name for (name,) in cursor.fetchall()}
    return frozenset(name for name in names if name not in present)


def drop_roles(server, names) -> list[str]:
    """Drop the roles a scratch build created (after its database is gone); one line per role that stays."""
    import psycopg2
    from psycopg2 import sql

    stayed = []
    for name in sorted(names):
        try:
            with server.cursor() as cursor:
                cursor.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
        except psycopg2.Error as err:  # it got objects or rights elsewhere meanwhile: not ours to take away
            stayed.append(f"the role {name} the build created stays: {describe_error(err)}")
    return stayed
