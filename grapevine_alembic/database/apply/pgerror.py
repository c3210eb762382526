"""What a PostgreSQL error says about a migration file: the line, DETAIL, HINT and a next step.

Pure functions over the driver's error object (psycopg2's ``diag``), so they are tested without
a database; the executor maps an error position inside a batch to the statement it falls in,
then asks ``line_of_position`` for the line.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import project_path  # noqa: F401  (the executor names files through pgerror)

STATEMENT_TIMEOUT_HINT = ("raise --timeout (seconds per statement; 0 = no limit), or -x timeout=S with alembic;"
                          " for a long backfill, split it into batches")
LOCK_TIMEOUT_HINT = ("another session held a lock this statement needed: raise --lock-timeout"
                     " (or -x lock_timeout=S with alembic), or run when that transaction has ended")


@dataclass(frozen=True)
class Explanation:
    """PostgreSQL's own words beside its message: DETAIL, and HINT (ours for timeouts)."""

    detail: str | None = None
    hint: str | None = None


def line_of_position(sql: str, start_line: int, position: int | None) -> int:
    """The file line of a 1-based character ``position`` in ``sql``, which starts at ``start_line``."""
    if not position or position < 1 or position > len(sql) + 1:
        return start_line
    return start_line + sql.count("\n", 0, position - 1)


def explanation(error) -> Explanation:
    """DETAIL and HINT of a driver ``error``; a timeout without a HINT gets ours (``next_step``)."""
    diag = getattr(error, "diag", None)
    detail = getattr(diag, "message_detail", None) if diag is not None else None
    hint = getattr(diag, "message_hint", None) if diag is not None else None
    return Explanation(detail, hint or next_step(error))


def next_step(error) -> str | None:
    """Our own hint for the errors whose fix is a flag: statement and lock timeouts."""
    sqlstate = getattr(error, "pgcode", None)
    message = str(getattr(error, "pgerror", None) or error)
    if sqlstate == "57014" and "statement timeout" in message:
        return STATEMENT_TIMEOUT_HINT
    if sqlstate == "55P03":
        return LOCK_TIMEOUT_HINT
    return None


def explain(explained: Explanation) -> str:
    """DETAIL and HINT as extra lines under the error's first line ('' when there are none)."""
    pairs = (("DETAIL", explained.detail), ("HINT", explained.hint))
    return "".join(f"\n  {label}: {text}" for label, text in pairs if text)
