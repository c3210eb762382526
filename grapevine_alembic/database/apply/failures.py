"""A failed statement in words (file, line, what already committed), and whether a retry may fix it."""

from __future__ import annotations

from dataclasses import replace

from ...errors import MigrationFailed
from ...files.migration import MigrationFile
from ...files.parsing import Statement
from . import pgerror
from ..session.connection import LOCK_LOST_MARKER
from ..session.transient import transient_failure
from .journal import Journal
from ..state.ledger import VERSION_CHECK_MARKER
from .steps import Step, last_line_of, line_of

__all__ = ["TIMING_SQLSTATES", "StatementFailed", "already", "transaction_failure"]

# Failures that depend on timing: replaying the transaction would take as long again and
# might not fail the same way, so they are blamed on the round trip as a whole.
TIMING_SQLSTATES = {"57014", "55P03", "40P01", "40001"}


class StatementFailed(MigrationFailed):
    """A statement of a migration (or the tool's own SQL around it) failed; carries file, line and message."""

    def __init__(
        self,
        migration: MigrationFile,
        line: int | str | None,
        error: Exception,
        already_committed: list[Statement],
        *,
        what: str = "",
        blocked_by: str | None = None,
    ):
        self.migration = migration
        self.line = line
        self.sqlstate = getattr(error, "pgcode", None)
        self.pg_message = _first_line(getattr(error, "pgerror", None) or str(error))
        self.already_committed = already_committed
        path = pgerror.project_path(migration.path)
        where = f"{path}:{line}" if line is not None else path
        message = f"{where}: {what}{self.pg_message}"
        if already_committed:
            message += (
                f" ({_line_list(already_committed)} of this file already ran and stayed committed;"
                " the version was not recorded, so the next run starts this file again)"
            )
        # PostgreSQL's DETAIL and HINT on lines of their own
        explained = pgerror.explanation(error)
        if blocked_by:  # seen by the watchdog while the statement waited (pg_blocking_pids)
            explained = replace(explained, detail="; ".join(filter(None, (explained.detail, f"blocked by {blocked_by}"))))
        # a timeout without PostgreSQL's own HINT: the knob that raises it, which the way in names last
        super().__init__(message + pgerror.explain(explained), fix=None if explained.hint else pgerror.next_step(error))

    @property
    def transient(self) -> bool:
        if self.already_committed:
            return False  # a retry would run committed statements again: never
        return transient_failure(self.sqlstate, self.pg_message)  # a lost connection carries no SQLSTATE


def _line_list(statements: list[Statement]) -> str:
    """"line 3" or "lines 1, 2, 5" (a chunk of plain statements: "lines 7-9000")."""
    lines = ", ".join(getattr(s, "lines", None) or str(s.line) for s in statements)
    return f"line {lines}" if len(statements) == 1 and "-" not in lines else f"lines {lines}"


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    first = lines[0] if lines else "unknown error"
    return first.removeprefix("ERROR:").strip()


def already(committed: list[Statement]) -> str:
    if not committed:
        return ""
    return f"; {_line_list(committed)} of this file already ran and stayed committed"


def transaction_failure(
    migration: MigrationFile, journal: Journal, committed: list[Statement], failed: Step | tuple[Step, Step],
    line: int | None, err, blocked_by: str | None = None,
) -> Exception:
    """The error for a failed transaction: ``failed`` is the step (or the round trip's first and last) it failed on."""
    text = str(err)
    name = pgerror.project_path(migration.path)
    if VERSION_CHECK_MARKER in text:
        return MigrationFailed(
            f"{name}: recording version {migration.version} did not move exactly the expected head"
            f" (was {journal.tables.version_table} changed by someone else?); nothing of this file's last"
            " transaction was"
            " committed" + already(committed)
        )
    if LOCK_LOST_MARKER in text:
        return MigrationFailed(
            f"{name}: this run lost its migration lock on {journal.database} (the file released it,"
            " e.g. with DISCARD ALL or pg_advisory_unlock_all(), and another run took it); nothing of this"
            " file's last transaction was committed" + already(committed)
        )
    if isinstance(failed, tuple):
        first, last = line_of(failed[0]), last_line_of(failed[1])
        where = f"{first}-{last}" if first is not None and last is not None and first != last else first
        return StatementFailed(migration, where, err, list(committed), blocked_by=blocked_by)
    return StatementFailed(migration, line or line_of(failed), err, list(committed), what=failed.what,
                           blocked_by=blocked_by)
