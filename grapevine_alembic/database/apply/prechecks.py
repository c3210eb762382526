"""Running a file's prechecks (``files/prechecks``) on one database, right before the file.

All of a file's checks run in one read-only transaction (``SET TRANSACTION READ ONLY``) under the
session's bounds (statement and lock timeouts), and it is rolled back: a check can neither write
nor leave anything behind.  Every road applies files through ``executor.apply_direct``, so this is
always a transaction of its own, before the file's first.

A false or NULL answer, an answer that is not one boolean, or an error fails the database with
``precheck "<name>" failed``, before anything of the file has run.  A lost connection is not a
check's answer, nor is a lock wait or a deadlock: they are raised as they are, for the retries.
"""

from __future__ import annotations

from ...errors import MigrationFailed
from ...files.migration import MigrationFile
from ..session.transient import transient_failure
from .pgerror import project_path

__all__ = ["PrecheckFailed", "dry_run_prechecks", "run_prechecks"]


class PrecheckFailed(MigrationFailed):
    """A precheck did not answer true: nothing of its file ran."""


def run_prechecks(raw, migration: MigrationFile, *, reset_sql: str | None = None) -> None:
    """Run ``migration``'s prechecks; raise ``PrecheckFailed`` unless every one answers true.

    ``reset_sql`` (the session policy's) first puts back the tool's session state that an earlier
    file may have changed, inside the rolled-back transaction.
    """
    import psycopg2

    checks = migration.parse().prechecks
    if not checks:
        return
    opening = ["BEGIN", *([reset_sql] if reset_sql else []), "SET TRANSACTION READ ONLY"]
    failure = None
    with raw.cursor() as cursor:
        try:
            for index, check in enumerate(checks):
                cursor.execute(";\n".join([*opening, check.sql]) if index == 0 else check.sql)
                failure = _judge(check, cursor)
                if failure:
                    break
        except psycopg2.Error as err:
            if err.pgcode is None or transient_failure(err.pgcode, None):  # the connection or timing: retries judge
                raise
            failure = _judge_error(check, err)
        cursor.execute("ROLLBACK")
    if failure:
        raise PrecheckFailed(f"{project_path(migration.path)}:{check.line}: {failure}: nothing of the file ran")


def _judge(check, cursor) -> str | None:
    rows = cursor.fetchall() if cursor.description else []
    if len(rows) != 1 or len(rows[0]) != 1 or not isinstance(rows[0][0], (bool, type(None))):
        shown = f"{len(rows)} rows" if len(rows) != 1 else repr(rows[0][0] if len(rows[0]) == 1 else rows[0])
        return f'precheck "{check.name}" failed: it must return one boolean, it returned {shown}'
    if rows[0][0] is not True:
        return f'precheck "{check.name}" failed ({"NULL" if rows[0][0] is None else "false"})'
    return None


def _judge_error(check, err) -> str:
    text = (err.pgerror or str(err)).strip().splitlines()[0].removeprefix("ERROR:").strip()
    return f'precheck "{check.name}" failed: {text}'


def dry_run_prechecks(raw, database: str, files) -> tuple[str | None, list[str]]:
    """``--dry-run``: the prechecks of the first of ``files`` to run, on the data it would find.

    Returns the failure (or None) and a note per later file with prechecks: those would see the
    data before the files ahead of them ran, not what the real run shows them, so they do not run.
    """
    failure = None
    if files:
        try:
            run_prechecks(raw, files[0])
        except PrecheckFailed as err:
            failure = str(err)
    notes = [f"{database}: {m.path.name} has prechecks that run once the files before it have run: --dry-run"
             " leaves them out" for m in files[1:] if m.parse().prechecks]
    return failure, notes
