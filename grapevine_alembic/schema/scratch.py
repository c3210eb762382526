"""The schema a version should have: the chain applied to a throwaway database, then read.

The scratch database lives on the server the environment's databases live on (so the
catalog text comes from the same PostgreSQL), is named ``grapevine_scratch_<random>`` and
is dropped afterwards, also when applying fails or the run is interrupted.  ``References``
builds each version at most once per run, shared by every thread of a fan-out.
"""

from __future__ import annotations

import copy
import json
import secrets
import threading
from contextlib import contextmanager
from dataclasses import dataclass

from ..database import runner
from ..database.connection import open_connection
from ..database.target import Target
from ..errors import GrapevineError
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


@contextmanager
def scratch_database(server: ConnectionSpec):
    """A new empty database on ``server`` (its spec is yielded), dropped on the way out whatever happens."""
    from psycopg2 import sql

    name = SCRATCH_PREFIX + secrets.token_hex(6)
    admin = open_connection(server)
    try:
        with admin.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield server.for_database(name)
        finally:
            force = " WITH (FORCE)" if admin.server_version >= 130000 else ""
            with admin.cursor() as cursor:
                cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {}" + force).format(sql.Identifier(name)))
    finally:
        admin.close()


def chain_up_to(chain, version: str | None):
    """The same chain, cut after ``version`` (None: no file at all)."""
    cut = copy.copy(chain)
    cut.files = tuple(m for m in chain.files if version is not None and m.version <= version)
    cut._script = None
    return cut


def build_snapshot(chain, version: str | None, server: ConnectionSpec, *, lock_key: int) -> Reference:
    """The catalog of a fresh database migrated file by file up to ``version``."""
    if version is not None and chain.get(version) is None:
        raise SchemaBuildError(f"version {version} is not among the {chain.env} migration files")
    cut = chain_up_to(chain, version)
    with scratch_database(server) as spec:
        options = runner.RunOptions(lock_key=lock_key, retries=0)
        result = runner.migrate(Target(chain.env, spec), cut, options)
        if not result.ok:
            where = f"up to {version}" if version else ""
            raise SchemaBuildError(f"applying the {chain.env} migrations {where} to a scratch database failed:"
                                   f" {result.error}")
        raw = open_connection(spec)
        try:
            with raw.cursor() as cursor:
                _, text = read_snapshot(cursor, tables=chain.tables)
        finally:
            raw.close()
    return Reference(text, json.loads(text))


class References:
    """Reference catalogs by (env, version), each built once per run however many threads ask."""

    def __init__(self, chains: dict, servers: dict, *, lock_key: int):
        self.chains, self.servers, self.lock_key = chains, servers, lock_key
        self._done: dict = {}
        self._locks: dict = {}
        self._guard = threading.Lock()

    def get(self, env: str, version: str | None) -> Reference:
        key = (env, version)
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._done:
                try:
                    self._done[key] = build_snapshot(self.chains[env], version, self.servers[env],
                                                     lock_key=self.lock_key)
                except GrapevineError as err:
                    self._done[key] = err  # every database at this version gets the same error, once built
            found = self._done[key]
        if isinstance(found, Exception):
            raise SchemaBuildError(str(found))
        return found

    @property
    def built(self) -> int:
        return sum(1 for value in self._done.values() if not isinstance(value, Exception))
