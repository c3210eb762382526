"""What a PostgreSQL error says about a migration file: the line, DETAIL, HINT and a next step.

Pure functions over the driver's error object (psycopg2's ``diag``), so they are tested without
a database; the executor maps an error position inside a batch to the statement it falls in,
then asks ``line_of_position`` for the line.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import RAISE_LOCK_TIMEOUT, RAISE_TIMEOUT, Fix
from ...errors import project_path  # noqa: F401  (the executor names files through pgerror)

# A timeout's HINT around the knob that raises it: each way in names its own (a flag, -x, an argument).
_TIMEOUT_HINTS = {
    RAISE_TIMEOUT: "raise {knob} (seconds per statement; 0 = no limit); for a long backfill, split it into batches",
    RAISE_LOCK_TIMEOUT: "another session held a lock this statement needed: raise {knob}, or run when that"
                        " transaction has ended",
}


@dataclass(frozen=True)
class Explanation:
    """PostgreSQL's own words beside its message: DETAIL and HINT."""

    detail: str | None = None
    hint: str | None = None


def line_of_position(sql: str, start_line: int, position: int | None) -> int:
    """The file line of a 1-based character ``position`` in ``sql``, which starts at ``start_line``."""
    if not position or position < 1 or position > len(sql) + 1:
        return start_line
    return start_line + sql.count("\n", 0, position - 1)


def explanation(error) -> Explanation:
    """DETAIL and HINT of a driver ``error``."""
    diag = getattr(error, "diag", None)
    detail = getattr(diag, "message_detail", None) if diag is not None else None
    hint = getattr(diag, "message_hint", None) if diag is not None else None
    return Explanation(detail, hint)


def next_step(error) -> Fix | None:
    """What resolves a statement or lock timeout (a knob each way in names: ``timeout_hint``), else None."""
    sqlstate = getattr(error, "pgcode", None)
    message = str(getattr(error, "pgerror", None) or error)
    if sqlstate == "57014" and "statement timeout" in message:
        return Fix(RAISE_TIMEOUT)
    if sqlstate == "55P03":
        return Fix(RAISE_LOCK_TIMEOUT)
    return None


def timeout_hint(fix: Fix, knob: str) -> str:
    """The HINT line of a timeout's ``fix`` (``next_step``), naming the way in's ``knob`` ("" for another fix)."""
    template = _TIMEOUT_HINTS.get(fix.action)
    return explain(Explanation(hint=template.format(knob=knob))) if template else ""


def explain(explained: Explanation) -> str:
    """DETAIL and HINT as extra lines under the error's first line ('' when there are none)."""
    pairs = (("DETAIL", explained.detail), ("HINT", explained.hint))
    return "".join(f"\n  {label}: {text}" for label, text in pairs if text)
