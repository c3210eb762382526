"""A database's catalog fingerprint, and the record of when it was last verified equal to its reference.

Reading a whole catalog and deparsing it costs a fresh backend far more than reading its version.
Under MVCC every change to a catalog row writes a new row version stamped with the writing
transaction's id (``xmin``), and a deleted row leaves the count; so the count and the sum of the
``xmin`` of the rows drift's catalog query reads (less five catalogs whose changes always write
``pg_depend`` rows too, see ``FINGERPRINTED``) change whenever any of those rows changes
(a sum of a hash of each ``xmin`` beside it, so that two changes cannot cancel out). VACUUM,
VACUUM FREEZE and VACUUM FULL keep the raw ``xmin`` (PostgreSQL >= 9.4 freezes with a hint bit),
so they change nothing here, while a dump and restore (new rows) or a database re-created under the
same name (another ``pg_database`` oid, part of the fingerprint) always does.

``Verified`` keeps, in a table of the tool's own in the control database (``verified_table``),
"database D was equal to the reference of version V (``reference_key``: the files up to V, the
catalog query, the server's version) when its fingerprint was F", or "differed from it by these
differences". A database whose version, reference key and fingerprint are all unchanged is as it was
without reading its catalog (nor building the reference). ``drift`` and ``migrate --verify`` use it.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import asdict, dataclass

from ..database.session.connection import describe_error, open_connection
from ..database.state.target import Target
from ..errors import GrapevineError
from .catalog import FIRST_NORMAL_OID, snapshot_sql
from .diff import Difference

# Rows of user objects: oid >= FirstNormalObjectId, read through each catalog's oid index; the
# namespaces and extensions whole (public is oid 2200 and drift reads its owner and grants).
FINGERPRINTED = (
    ("pg_namespace", None), ("pg_class", "oid"), ("pg_attribute", "attrelid"), ("pg_type", "oid"),
    ("pg_index", "indexrelid"), ("pg_constraint", "oid"), ("pg_proc", "oid"), ("pg_trigger", "oid"),
    ("pg_sequence", "seqrelid"), ("pg_enum", "oid"), ("pg_collation", "oid"),
    # named in the definitions drift deparses (an index's operator class, an operator, a text search configuration)
    ("pg_operator", "oid"), ("pg_opclass", "oid"), ("pg_ts_config", "oid"),
    # pg_depend: what a sequence is owned by, a view reads, an extension holds; comments, though
    # drift does not compare them, so that a comment changed reads the catalog again as promised
    ("pg_depend", "objid"), ("pg_description", "objoid"),
)
# Read by drift's catalog query but left out here, each catalog a fresh backend must open costing about
# 0.1 to 0.25 ms (bench/drift_backend.py --per-catalog): their rows never change without a row of pg_depend
# (objid >= 16384) being written or removed in the same command.  A default (pg_attrdef) is replaced, never
# updated, and depends on its column; a view's rule (pg_rewrite) is re-recorded with its dependencies when
# the view is replaced; an inheritance or a partition (pg_inherits) is recorded with the child's dependency
# on its parent; an extension (pg_extension) with its members' and its schema's; a range (pg_range) comes
# and goes with its type (pg_type too).  tests/test_fleet_drift_fingerprints.py changes each of them.


def fingerprint_sql(catalogs=FINGERPRINTED) -> str:
    """One scalar over ``catalogs`` ((name, oid column or None for the whole catalog)), schema-qualified
    throughout: it runs under the session's search_path or an empty one."""
    rows = " UNION ALL ".join(
        f"SELECT pg_catalog.int8in(pg_catalog.xidout(f.xmin)) AS x FROM pg_catalog.{name} f"
        + (f" WHERE f.{column} OPERATOR(pg_catalog.>=) {FIRST_NORMAL_OID}::pg_catalog.oid" if column else "")
        for name, column in catalogs
    )
    return ("(SELECT pg_catalog.concat_ws(':', (SELECT d.oid FROM pg_catalog.pg_database d"
            " WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()),"
            " pg_catalog.count(*), pg_catalog.sum(u.x), pg_catalog.sum(pg_catalog.hashint8(u.x)))"
            f" FROM ({rows}) u)")


FINGERPRINT_SQL = fingerprint_sql()


def reference_key(chain, version: str | None, server_version: int) -> str | None:
    """What the reference of ``version`` is made of: the catalog query as it reads that server's
    version, and the files up to ``version`` (their checksums). None for a version no file has."""
    if version is not None and chain.get(version) is None:
        return None
    digest = hashlib.sha256(snapshot_sql(stashed_version=True, server_version=server_version, tables=chain.tables,
                                         also=FINGERPRINT_SQL).encode())
    digest.update(str(server_version).encode())
    for migration in chain.files:
        if version is None or migration.version > version:
            break
        digest.update(f"\n{migration.version} {migration.checksum}".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class Verification:
    """A database compared with its reference: at which version, against which reference, at which fingerprint,
    and what differed (nothing: found equal)."""

    version: str | None
    reference: str
    fingerprint: str
    privileges: bool  # owners and grants compared too
    differences: tuple = ()

    def stored(self) -> str | None:
        return json.dumps([asdict(d) for d in self.differences]) if self.differences else None


def _differences(text: str | None) -> tuple:
    return tuple(Difference(**fields) for fields in json.loads(text)) if text else ()


class Verified:
    """The control database's records for one run: read once before, written once after (``save``).

    Any error reading or writing them is one line (``problem``); the run then reads every catalog.
    """

    def __init__(self, control, table: str, *, connect_timeout: int | None = None):
        self.control, self.table, self.connect_timeout = control, table, connect_timeout
        self._layout_current = False  # the table holds the differences column (added after the first release)
        self._records: dict = {}
        self._found: dict = {}
        self._keys: dict = {}
        self.catalog_read: set = set()  # (server, database) of the databases whose catalog this run read
        self._guard = threading.Lock()
        self.problem: str | None = None

    def _connect(self):
        if self.connect_timeout is None:
            return open_connection(self.control)
        return open_connection(self.control, connect_timeout=self.connect_timeout)

    def load(self) -> Verified:
        import psycopg2

        try:
            raw = self._connect()
            try:
                with raw.cursor() as cursor:
                    cursor.execute("SELECT pg_catalog.to_regclass(%s) IS NOT NULL, EXISTS (SELECT FROM pg_catalog.pg_attribute"
                                   " WHERE attrelid = pg_catalog.to_regclass(%s) AND attname = 'differences'"
                                   " AND NOT attisdropped)", (self.table, self.table))
                    exists, self._layout_current = cursor.fetchone()
                    if exists:
                        differences = "differences" if self._layout_current else "NULL"
                        cursor.execute(f"SELECT server, database, version, reference, fingerprint, privileges,"
                                       f" {differences} FROM {self.table}")
                        self._records = {(server, database): Verification(*rest, _differences(text))
                                         for server, database, *rest, text in cursor.fetchall()}
            finally:
                raw.close()
        except (psycopg2.Error, OSError, GrapevineError, ValueError, TypeError) as err:
            # GrapevineError (from open_connection) is already one line; ValueError, TypeError: differences
            # written by another hand
            reason = describe_error(err) if isinstance(err, (psycopg2.Error, OSError)) else err
            self._records, self.problem = {}, f"the fingerprints in {self.table} could not be read: {reason}"
        return self

    def key(self, chain, version: str | None, server_version: int) -> str | None:
        cache = (chain.env, version, server_version)
        with self._guard:
            if cache not in self._keys:
                self._keys[cache] = reference_key(chain, version, server_version)
            return self._keys[cache]

    def recorded(self, target: Target) -> Verification | None:
        return self._records.get((target.server, target.database))

    def unchanged(self, target: Target, version: str | None, fingerprint: str, key: str | None, *,
                  privileges: bool) -> tuple | None:
        """The differences the database had when last compared, if it is still as it was then (nothing: it was
        equal); None when its catalog must be read."""
        record = self.recorded(target)
        if (record is None or key is None or record.reference != key or record.version != version
                or record.fingerprint != fingerprint):
            return None
        if record.differences:  # found with the owners and grants compared, or not: only the same question
            return record.differences if record.privileges == privileges else None
        return () if record.privileges or not privileges else None

    def read_in_full(self, target: Target) -> None:
        with self._guard:
            self.catalog_read.add((target.server, target.database))

    def remember(self, target: Target, verification: Verification) -> None:
        with self._guard:
            self._found[(target.server, target.database)] = verification

    def save(self) -> str | None:
        """Write what this run verified; None, or the one line saying why it could not."""
        if not self._found:
            return None
        import psycopg2
        from psycopg2.extras import execute_values

        rows = [(server, database, v.version, v.reference, v.fingerprint, v.privileges, v.stored())
                for (server, database), v in self._found.items()]
        try:
            raw = self._connect()
            try:
                with raw.cursor() as cursor:  # autocommit: the upsert is one statement
                    cursor.execute(f"CREATE TABLE IF NOT EXISTS {self.table} (server text NOT NULL, database text NOT NULL,"
                                   " version text, reference text NOT NULL, fingerprint text NOT NULL,"
                                   " privileges boolean NOT NULL, verified_at timestamptz NOT NULL DEFAULT now(),"
                                   " differences text, PRIMARY KEY (server, database))")
                    if not self._layout_current:  # a table created before differences were remembered
                        cursor.execute(f"ALTER TABLE {self.table} ADD COLUMN IF NOT EXISTS differences text")
                    execute_values(cursor, f"INSERT INTO {self.table} (server, database, version, reference, fingerprint,"
                                           " privileges, differences) VALUES %s ON CONFLICT (server, database) DO UPDATE"
                                           " SET version = EXCLUDED.version, reference = EXCLUDED.reference,"
                                           " fingerprint = EXCLUDED.fingerprint, privileges = EXCLUDED.privileges,"
                                           " differences = EXCLUDED.differences, verified_at = now()",
                                           rows, page_size=len(rows))
            finally:
                raw.close()
        except (psycopg2.Error, OSError) as err:
            return f"the fingerprints could not be written to {self.table}: {describe_error(err)}"
        except GrapevineError as err:  # from open_connection: already one line
            return f"the fingerprints could not be written to {self.table}: {err}"
        return None
