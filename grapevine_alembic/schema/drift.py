"""One database's drift: read its version and catalog (read-only), compare with its version's reference.

One round trip after connecting: the transaction made read-only, the session bounded and set
read-only (``default_transaction_read_only``), the version read through the session's
search_path, then the whole catalog as one JSON document with its fingerprint.  A database
compared before (``fingerprint.Verified``) first gets the version and the fingerprint alone, and its
catalog only when either moved.  Where no version table is on the search path (the previous
tool's ledger alone, or no ledger), a second try first locates the tool's tables, and refuses a
database whose search_path changed since they were created.
"""

from __future__ import annotations

import json
from typing import NamedTuple

from ..database.session.connection import SessionPolicy, open_connection, set_config_sql
from ..database.state.ledger import check_placement
from ..database.state.result import DatabaseResult
from ..database.jobs.retrying import failure_text, with_retries
from ..database.jobs.runner import RunOptions
from ..database.state.target import Target
from ..tool_tables import DEFAULT_TABLES, ToolTables
from .catalog import LOCATE_SQL, snapshot_sql, stash_version_sql
from .fingerprint import FINGERPRINT_SQL, Verification, Verified
from .diff import compare


class Live(NamedTuple):
    version: str | None  # the recorded version
    text: str | None  # the catalog as JSON text; None: not read (``unchanged`` said so)
    fingerprint: str
    server_version: int


def read_live(target: Target, options: RunOptions, tables: ToolTables = DEFAULT_TABLES, *, unchanged=None) -> Live:
    """A database's version, catalog and fingerprint, on a read-only session of its own;
    ``tables``: the environment's names of the tool's tables.

    ``unchanged(version, fingerprint, server_version)``: given, the version and the fingerprint are
    read first, alone, and the catalog (then None) only when it returns False. Without it, the
    three come in one statement. Either way the fingerprint kept is read in the catalog's snapshot
    or before it, never after: a change in between makes the next run read the catalog again.
    """
    raw = open_connection(target.spec, connect_timeout=options.connect_timeout_s)
    try:
        if options.servers:
            options.servers.answered(target)
        policy = SessionPolicy.for_connection(raw, statement_timeout_s=options.timeout_s,
                                              lock_timeout_s=options.lock_timeout_s)
        setters, values = set_config_sql([("default_transaction_read_only", "on"), *policy.settings()])
        from psycopg2 import errors

        with raw.cursor() as cursor:
            bounded = cursor.mogrify(
                f"SET LOCAL transaction_read_only = on;\nSELECT {setters}, {stash_version_sql(tables)};\n", values
            ).decode()
            snapshot = {"server_version": raw.server_version, "tables": tables, "also": FINGERPRINT_SQL}
            try:
                if unchanged is not None:  # the fingerprint is schema-qualified: the session's search_path finds the version
                    cursor.execute(cursor.mogrify(f"SET LOCAL transaction_read_only = on;\nSELECT {setters};\n"
                                                  f"SELECT (SELECT max(version_num::text) FROM {tables.version}),"
                                                  f" {FINGERPRINT_SQL}", values))
                    version, fingerprint = cursor.fetchone()
                    if unchanged(version, fingerprint, raw.server_version):
                        return Live(version, None, fingerprint, raw.server_version)
                    cursor.execute(bounded + snapshot_sql(stashed_version=True, **snapshot))
                else:
                    cursor.execute(bounded + snapshot_sql(stashed_version=True, **snapshot))
            except errors.UndefinedTable:  # no version table on the search path: nothing ran (autocommit)
                cursor.execute(LOCATE_SQL + ", " + setters, (tables.version, tables.ledger, *values))
                version_table, ledger_table, *_ = cursor.fetchone()
                check_placement(cursor, tables)  # not in another schema, out of the search_path's reach
                cursor.execute(snapshot_sql(version_table, ledger_table, **snapshot))
            return Live(*cursor.fetchone(), raw.server_version)
    finally:
        raw.close()


def drift(target: Target, references, options: RunOptions, found: dict, *, privileges: bool = False,
          verified: Verified | None = None, reread: bool = False, later: list | None = None) -> DatabaseResult:
    """Compare one database with the reference of its version; its differences go to ``found[database]``.

    ``verified``: the record of the last comparisons (see ``fingerprint``); a database still at the
    fingerprint it was compared at has the differences it had then (none: equal) without its catalog
    read or its reference built, and one read in full is remembered. ``reread``: read it in full all the same.
    ``later``: given, a database whose reference is still being built is compared once it is (``settle``),
    so the worker reads the next database meanwhile instead of waiting.
    """
    chain = references.chains[target.env]
    remembered: list = [None]  # what ``unchanged`` found: the differences of a database still as it was

    def unchanged(version, fingerprint, server_version) -> bool:
        remembered[0] = verified.unchanged(target, version, fingerprint, verified.key(chain, version, server_version),
                                           privileges=privileges)
        return remembered[0] is not None

    def compared(version, live, fingerprint, server_version) -> None:
        expected = references.get(target.env, version)
        identical = live == expected.text  # the same bytes: nothing differs, owners and grants included
        differences = [] if identical else compare(expected.catalog, json.loads(live), privileges=privileges)
        found[target.database] = differences
        key = verified.key(chain, version, server_version) if verified is not None else None
        if key is not None:  # equal or not: while its fingerprint stays, the answer stays
            verified.remember(target, Verification(version, key, fingerprint, identical or privileges,
                                                   tuple(differences)))

    def attempt(result: DatabaseResult) -> None:
        checked = verified is not None and not reread and verified.recorded(target) is not None
        version, live, fingerprint, server_version = read_live(target, options, chain.tables,
                                                               unchanged=unchanged if checked else None)
        result.before = result.after = version
        if live is None:  # still at the fingerprint it was compared at
            found[target.database] = list(remembered[0])
            return
        if verified is not None:
            verified.read_in_full(target)
        if later is not None and not references.ready(target.env, version):
            references.start(target.env, version)
            later.append((result, lambda: compared(version, live, fingerprint, server_version)))
            return
        compared(version, live, fingerprint, server_version)

    return with_retries(target, options, attempt)


def settle(later: list) -> None:
    """The comparisons ``drift(..., later=)`` left until their reference was built; one whose reference could
    not be built fails its database, as it would have failed it at once."""
    for result, compared in later:
        try:
            compared()
        except Exception as err:  # noqa: BLE001 - one database's failure never stops the others
            result.fail(failure_text(err, False))


class Verifier:
    """``--verify``: a database the run migrated (or found at head) compared with its version's reference.

    Through the control database's record of the last comparisons, as ``drift``: a database still at the
    fingerprint it was compared at costs that fingerprint (one that differed fails with what it differed by);
    one the run migrated moved its catalog and is read in full.  ``finish`` writes what the run compared (None, or the one line saying why it could not).
    """

    def __init__(self, chains: dict, settings, verified_table: str, options: RunOptions, *, lock_key: int,
                 on_notice=None):
        from .scratch import References, server_for

        self.chains, self.options = chains, options
        self.references = References(chains, {env: server_for(settings, env) for env in chains}, lock_key=lock_key,
                                      on_notice=on_notice)
        self.verified = Verified(settings.control, verified_table, connect_timeout=options.connect_timeout_s).load()

    def check(self, result: DatabaseResult) -> DatabaseResult:
        """A difference fails the database, naming each difference, so it counts toward a rollout's failure budget as
        any failure does; so does a comparison that could not be made.  Failed and skipped databases are left as they are."""
        if not result.ok or result.skipped:
            return result
        found: dict = {}
        checked = drift(result.target, self.references, self.options, found, verified=self.verified,
                        reread=bool(result.applied))
        if not checked.ok:
            return result.fail(f"verify: {checked.error}")
        differences = found[result.target.database]
        if differences:
            listed = "; ".join(difference.text() for difference in differences)
            result.fail(f"verify: the schema differs from what {checked.after or 'no version'} should have: {listed}")
        return result

    def migrate(self, target: Target) -> DatabaseResult:
        """``migrate --verify``'s job, the CLI's and the API's: the database migrated, then compared on the same
        worker, inside its wave."""
        from ..database.jobs import runner

        return self.check(runner.migrate(target, self.chains[target.env], self.options))

    def finish(self) -> str | None:
        return self.verified.problem or self.verified.save()
