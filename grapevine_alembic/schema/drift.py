"""One database's drift: read its version and catalog (read-only), compare with its version's reference.

One round trip after connecting: the transaction made read-only, the session bounded and set
read-only (``default_transaction_read_only``), the version read through the session's
search_path, then the whole catalog as one JSON document.  Where no version table is on the
search path (the previous tool's ledger alone, or no ledger), a second try first locates the
tool's tables, and refuses a database whose search_path changed since they were created.
"""

from __future__ import annotations

import json

from ..database.session.connection import SessionPolicy, open_connection, set_config_sql
from ..database.state.ledger import check_placement
from ..database.state.result import DatabaseResult
from ..database.jobs.retrying import with_retries
from ..database.jobs.runner import RunOptions
from ..database.state.target import Target
from ..tool_tables import DEFAULT_TABLES, ToolTables
from .catalog import LOCATE_SQL, snapshot_sql, stash_version_sql
from .diff import compare


def read_live(target: Target, options: RunOptions, tables: ToolTables = DEFAULT_TABLES) -> tuple[str | None, str]:
    """(recorded version, catalog JSON text) of a database, on a read-only session of its own;
    ``tables``: the environment's names of the tool's tables."""
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
            try:
                cursor.execute(bounded + snapshot_sql(stashed_version=True, server_version=raw.server_version,
                                                      tables=tables))
            except errors.UndefinedTable:  # no version table on the search path: nothing ran (autocommit)
                cursor.execute(LOCATE_SQL + ", " + setters, (tables.version, tables.ledger, *values))
                version_table, ledger_table, *_ = cursor.fetchone()
                check_placement(cursor, tables)  # not in another schema, out of the search_path's reach
                cursor.execute(snapshot_sql(version_table, ledger_table, server_version=raw.server_version,
                                            tables=tables))
            version, text = cursor.fetchone()
    finally:
        raw.close()
    return version, text


def drift(target: Target, references, options: RunOptions, found: dict, *, privileges: bool = False) -> DatabaseResult:
    """Compare one database with the reference of its version; its differences go to ``found[database]``."""

    def attempt(result: DatabaseResult) -> None:
        version, live = read_live(target, options, references.chains[target.kind].tables)
        result.before = result.after = version
        expected = references.get(target.kind, version)
        if live == expected.text:  # the same bytes: nothing differs, owners and grants included
            found[target.database] = []
        else:
            found[target.database] = compare(expected.catalog, json.loads(live), privileges=privileges)

    return with_retries(target, options, attempt)


def verify(result: DatabaseResult, references, options: RunOptions) -> DatabaseResult:
    """``--verify``: a database the run migrated (or found at head) compared with its version's reference.

    A difference fails it, naming each difference, so it counts toward a rollout's failure budget as any
    failure does; so does a comparison that could not be made.  Failed and skipped databases are left as they are.
    """
    if not result.ok or result.skipped:
        return result
    found: dict = {}
    checked = drift(result.target, references, options, found)
    if not checked.ok:
        return result.fail(f"verify: {checked.error}")
    differences = found[result.target.database]
    if differences:
        listed = "; ".join(difference.text() for difference in differences)
        result.fail(f"verify: the schema differs from what {checked.after or 'no version'} should have: {listed}")
    return result
