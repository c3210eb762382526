"""The schema a version should have: the chain applied to a throwaway database, then read.

The scratch database lives on the server the environment's databases live on (so the
catalog text comes from the same PostgreSQL), is named ``grapevine_scratch_lk<hex>`` and
is dropped afterwards, also when applying fails or the run is interrupted; one left by a
killed run is dropped by the next build on that server (see ``scratch_database``).  ``References``
builds each version at most once per run, shared by every thread of a fan-out.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from contextlib import contextmanager
from dataclasses import dataclass

from ..database.jobs import cloning, runner
from ..database.session.connection import describe_error, open_connection
from ..database.state.target import Target
from ..errors import GrapevineError
from ..files.cluster_wide import created_roles, left_out_notices
from ..settings import ConnectionSpec, Settings
from .catalog import read_snapshot

SCRATCH_PREFIX = "grapevine_scratch_"


class SchemaBuildError(GrapevineError):
    """The chain could not be applied to a scratch database."""


@dataclass(frozen=True)
class Reference:
    """The schema one version should have: the catalog's JSON text as read, and parsed."""

    text: str
    catalog: dict


def server_for(settings: Settings, env: str) -> ConnectionSpec:
    """A database to connect to for CREATE DATABASE on the server of ``env``'s databases."""
    if env == "control" or settings.tenant_server.server == settings.control.server:
        return settings.control
    return settings.tenant_server.for_database("postgres")


# A build holds a session advisory lock (this class, the name's hex) on its maintenance connection from
# before CREATE DATABASE until after DROP DATABASE; pg_locks shows it from every database of the server.
# A scratch database whose lock nobody holds was left by a run that died (SIGKILL, SIGHUP, a lost host).
_LOCK_CLASS = 0x67767363
_NAMED = re.compile(SCRATCH_PREFIX + r"lk([0-9a-f]{8})")
_HELD_SQL = ("SELECT 1 FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND classid = %s::oid AND objid = %s::oid"
             " AND objsubid = 2 AND granted")


def _lock_key(name: str) -> int:
    return int(_NAMED.fullmatch(name).group(1), 16) & 0x7FFFFFFF


@contextmanager
def scratch_database(server: ConnectionSpec, on_notice=None):
    """A new empty database on ``server`` (its spec is yielded), dropped on the way out whatever happens.

    First the scratch databases of runs that died are dropped (``on_notice(line)`` hears of each).
    """
    name = SCRATCH_PREFIX + "lk" + secrets.token_hex(4)
    admin = open_connection(server)
    try:
        with admin.cursor() as cursor:
            cursor.execute("SELECT pg_catalog.pg_advisory_lock(%s, %s)", (_LOCK_CLASS, _lock_key(name)))
        _drop_stale(admin, on_notice)
        _create_or_drop(admin, name, create=True)
        try:
            yield server.for_database(name)
        finally:
            _drop_on_the_way_out(admin, server, name)
    finally:
        admin.close()  # releases the lock


def _drop_on_the_way_out(admin, server: ConnectionSpec, name: str) -> None:
    import psycopg2

    try:
        _create_or_drop(admin, name, create=False)
    except psycopg2.Error:  # Ctrl-C's cancel request can land on the DROP, or close this connection: once more
        again = open_connection(server)
        try:
            _create_or_drop(again, name, create=False)
        finally:
            again.close()


def _create_or_drop(admin, name: str, *, create: bool) -> None:
    from psycopg2 import sql

    force = " WITH (FORCE)" if admin.server_version >= 130000 else ""
    statement = "CREATE DATABASE {}" if create else "DROP DATABASE IF EXISTS {}" + force
    with admin.cursor() as cursor:
        cursor.execute(sql.SQL(statement).format(sql.Identifier(name)))


def _drop_stale(admin, on_notice) -> None:
    import psycopg2

    with admin.cursor() as cursor:
        cursor.execute("SELECT datname FROM pg_catalog.pg_database WHERE datname LIKE %s ORDER BY 1",
                       (SCRATCH_PREFIX.replace("_", "\\_") + "%",))
        names = [name for (name,) in cursor.fetchall() if _NAMED.fullmatch(name)]
    for name in names:
        with admin.cursor() as cursor:
            cursor.execute(_HELD_SQL, (_LOCK_CLASS, _lock_key(name)))
            if cursor.fetchone():
                continue  # a build under way
        try:
            _create_or_drop(admin, name, create=False)
        except psycopg2.Error:
            continue  # another role's, or dropped by someone else meanwhile: not ours to report
        if on_notice:
            on_notice(f"notice: dropped the scratch database {name}, left by a run that was killed")

def build_snapshot(chain, version: str | None, server: ConnectionSpec, *, lock_key: int, on_notice=None,
                   complete: bool = False) -> Reference:
    """The catalog of a fresh database migrated file by file up to ``version``.

    ``complete``: with what only schema.sql needs (see ``catalog.read_snapshot``).
    Statements that act on the whole server are left out (``on_notice(line)`` hears of each):
    the build must change nothing outside its scratch database.
    """
    if version is not None and chain.get(version) is None:
        raise SchemaBuildError(f"version {version} is not among the {chain.env} migration files")
    with _roles_for_the_build(server, created_roles(chain.server_free(version).files), on_notice) as missing:
        cut = chain.server_free(version, missing)
        for line in left_out_notices(cut.files, "the scratch build"):
            if on_notice:
                on_notice(f"notice: {line}")
        return _build(chain, cut, version, server, lock_key=lock_key, on_notice=on_notice, complete=complete)


_ROLES_LOCK_CLASS = 0x67767372  # with key 0: builds that create roles (alone) and builds that use them (shared)


@contextmanager
def _roles_for_the_build(server: ConnectionSpec, names, on_notice):
    """Yield the chain's CREATE ROLE roles the server lacks: the build creates them, and they are dropped
    when it ends, after its database is gone.  While a build holds roles it created, no other build starts."""
    if not names:
        yield frozenset()
        return
    import psycopg2

    admin = open_connection(server)
    try:
        try:
            with admin.cursor() as cursor:
                cursor.execute("SELECT pg_catalog.pg_advisory_lock_shared(%s, 0)", (_ROLES_LOCK_CLASS,))
                missing = cloning.missing_roles(admin, names)
                if missing:  # alone from here: another build may use a role only while nobody drops it
                    cursor.execute("SELECT pg_catalog.pg_advisory_unlock_shared(%s, 0)", (_ROLES_LOCK_CLASS,))
                    cursor.execute("SELECT pg_catalog.pg_advisory_lock(%s, 0)", (_ROLES_LOCK_CLASS,))
                    missing = cloning.missing_roles(admin, names)
        except psycopg2.Error as err:  # one line, not a traceback
            raise SchemaBuildError(f"reading the server's roles failed: {describe_error(err)}") from None
        for name in sorted(missing):
            if on_notice:
                on_notice(f"notice: the server has no role {name}: the scratch build creates it and drops it when it ends")
        try:
            yield missing
        finally:
            for line in cloning.drop_roles(admin, missing):
                if on_notice:
                    on_notice(f"notice: {line}")
    finally:
        admin.close()  # releases the lock


def _build(chain, cut, version: str | None, server: ConnectionSpec, *, lock_key: int, on_notice, complete: bool) -> Reference:
    with scratch_database(server, on_notice) as spec:
        options = runner.RunOptions(lock_key=lock_key, retries=0)
        result = runner.migrate(Target(chain.env, spec), cut, options)
        if not result.ok:
            where = f"up to {version}" if version else ""
            raise SchemaBuildError(f"applying the {chain.env} migrations {where} to a scratch database failed:"
                                   f" {result.error}")
        import psycopg2

        raw = open_connection(spec)
        try:
            with raw.cursor() as cursor:
                _, text = read_snapshot(cursor, complete=complete, tables=chain.tables)
        except psycopg2.Error as err:  # one line, not a traceback
            raise SchemaBuildError(f"reading the scratch database's catalog failed: {describe_error(err)}") from None
        finally:
            raw.close()
    return Reference(text, json.loads(text))


class References:
    """Reference catalogs by (env, version), each built once per run however many threads ask."""

    def __init__(self, chains: dict, servers: dict, *, lock_key: int, on_notice=None):
        self.chains, self.servers, self.lock_key, self.on_notice = chains, servers, lock_key, on_notice
        self._done: dict = {}
        self._locks: dict = {}
        self._started: set = set()
        self._guard = threading.Lock()

    def ready(self, env: str, version: str | None) -> bool:
        """Whether the reference of ``version`` is built (or failed to build): ``get`` will not wait."""
        with self._guard:
            return (env, version) in self._done

    def start(self, env: str, version: str | None) -> None:
        """Build the reference of ``version`` on a thread of its own, once; ``get`` waits for it."""
        with self._guard:
            if (env, version) in self._started:
                return
            self._started.add((env, version))
        threading.Thread(target=self._build_quietly, args=(env, version), daemon=True,
                         name=f"reference-{env}-{version}").start()

    def _build_quietly(self, env: str, version: str | None) -> None:
        try:
            self.get(env, version)
        except Exception:  # noqa: BLE001 - kept for get(): a failed build is stored, anything else raises again there
            pass

    def get(self, env: str, version: str | None) -> Reference:
        key = (env, version)
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._done:
                try:
                    self._done[key] = build_snapshot(self.chains[env], version, self.servers[env],
                                                     lock_key=self.lock_key, on_notice=self.on_notice)
                except GrapevineError as err:
                    self._done[key] = err  # every database at this version gets the same error, once built
            found = self._done[key]
        if isinstance(found, Exception):
            raise SchemaBuildError(str(found))
        return found

    @property
    def built(self) -> int:
        return sum(1 for value in self._done.values() if not isinstance(value, Exception))
