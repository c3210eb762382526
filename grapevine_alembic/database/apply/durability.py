"""When a run's commits reach disk: each file's commit does not wait for the WAL flush; the run's last one does.

A commit with ``synchronous_commit = off`` is atomic and ordered like any other, it only
returns before its WAL is flushed.  WAL is flushed in order, so the run's last commit, made
durable, makes every earlier one durable too: after a server crash a database is at some
file it reached during the run (never between a file and its ledger row, which commit
together), and once the run reports the database done, all of it is on disk.

``migrate`` (``runner._apply``) marks each file's transactions ``ASYNC_COMMIT_SQL`` and
the last file's recording transaction ``DURABLE_COMMIT_SQL`` (a statement that runs outside a
transaction commits with the session lowered, ``LOWER_SESSION_SQL``); when a file fails after others
committed, ``flush`` makes those durable before the failure is reported.
"""

from __future__ import annotations

ASYNC_COMMIT_SQL = "SET LOCAL synchronous_commit = off"

# Never weaker than the server's setting: only "off" (the server's, the database's or the
# role's) is raised to "on"; "local", "remote_write", "remote_apply" and "on" stay as set.
DURABLE_COMMIT_SQL = (
    "SELECT pg_catalog.set_config('synchronous_commit', 'on', true)"
    " WHERE pg_catalog.current_setting('synchronous_commit') = 'off'"
)


# A statement that runs outside any transaction (CREATE INDEX CONCURRENTLY, VACUUM) commits as it
# runs, with no transaction of the tool's to SET LOCAL in: the session's setting is lowered around
# it (this reads the value to put back) and restored right after (``restore_sql``).
LOWER_SESSION_SQL = (
    "SELECT pg_catalog.current_setting('synchronous_commit'),"
    " pg_catalog.set_config('synchronous_commit', 'off', false)"
)


def restore_sql(value: str) -> str:
    """Put the session's ``synchronous_commit`` back to what ``LOWER_SESSION_SQL`` read."""
    return "SELECT pg_catalog.set_config('synchronous_commit', '" + value.replace("'", "''") + "', false)"


def flush(raw, version_table: str) -> bool:
    """Make this session's earlier asynchronous commits durable; False when the connection cannot.

    A commit flushes the WAL only if its transaction wrote some: the version row is rewritten
    unchanged (``version_table`` as the SQL names it; the run holds the migration lock, so
    nobody else writes it).
    """
    import psycopg2.extensions

    if raw is None or raw.closed:
        return False
    # a transaction still open is one the tool did not end (an interrupted file): it goes first,
    # else this BEGIN would only warn and the COMMIT below commit half a file
    open_one = raw.info.transaction_status != psycopg2.extensions.TRANSACTION_STATUS_IDLE
    try:
        with raw.cursor() as cursor:
            cursor.execute(("ROLLBACK;\n" if open_one else "") + f"BEGIN;\n{DURABLE_COMMIT_SQL};\n"
                           f"UPDATE {version_table} SET version_num = version_num;\nCOMMIT")
        return True
    except psycopg2.Error:
        try:
            raw.rollback()
        except psycopg2.Error:
            pass
        return False
