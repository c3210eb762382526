"""Each database's outcome as one word, and databases grouped by what they share.

The values here (``outcome``, ``error_key``, ``group``, ``names``) are what every fleet-wide view
reads: the text summary of ``migrate`` and ``status``, and the report page.  A progress line,
metrics or an event log can count with the same words.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from ..database.state.result import DatabaseResult
from ..schema.grouping import names as _names

OUTCOMES = ("ok", "failed", "unreachable", "skipped")
# Up to this many databases a run prints one row each (it fits a screen, and a small run reads best
# as rows); above it the summary groups.  --verbose always prints the rows.
GROUP_ABOVE = 20
SHOWN = 3  # names listed before "and N more"
PLACEHOLDER = "<database>"


def outcome(result: DatabaseResult) -> str:
    """ok, failed, unreachable (its server did not answer) or skipped (never started: halted, interrupted)."""
    if result.skipped:
        return "skipped"
    if result.unreachable:
        return "unreachable"
    return "ok" if result.ok else "failed"


def outcome_counts(results: list[DatabaseResult]) -> dict[str, int]:
    counts = Counter(outcome(r) for r in results)
    return {name: counts[name] for name in OUTCOMES}


def error_key(result: DatabaseResult) -> str:
    """The error with the database's own name taken out, so the same failure on many databases reads the same."""
    error = result.error or ""
    name = result.target.database
    return re.sub(rf"(?<![\w$]){re.escape(name)}(?![\w$])", PLACEHOLDER, error) if name else error


@dataclass
class Group:
    key: str
    results: list[DatabaseResult] = field(default_factory=list)

    @property
    def databases(self) -> list[str]:
        return sorted(r.target.database for r in self.results)

    def text(self) -> str:
        """The shared text; with one database, its own words (nothing was taken out)."""
        if len(self.results) == 1 and self.results[0].error:
            return self.results[0].error
        return self.key


def group(results: list[DatabaseResult], key: Callable[[DatabaseResult], str]) -> list[Group]:
    """Groups by ``key``, the largest first, then by their first database's name."""
    groups: dict[str, Group] = {}
    for result in results:
        k = key(result)
        groups.setdefault(k, Group(k)).results.append(result)
    return sorted(groups.values(), key=lambda g: (-len(g.results), g.databases[0]))


def names(databases: list[str], shown: int = SHOWN) -> str:
    """``db_a, db_b, db_c and 97 more``."""
    return _names(databases, shown)

