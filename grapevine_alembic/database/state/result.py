"""What happened to one database: filled by the database jobs, read by the fleet, printed by the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...errors import Fix
from .ledger import DatabaseState
from .plan import Plan
from .target import Target


@dataclass
class DatabaseResult:
    """What happened to one database; the CLI turns a list of these into tables and JSON."""

    target: Target
    ok: bool = True
    plan: Plan | None = None
    state: DatabaseState | None = None
    before: str | None = None
    after: str | None = None
    applied: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)  # mark/reset: what was (or would be) changed
    marked: list[str] = field(default_factory=list)
    unmarked: list[str] = field(default_factory=list)
    error: str | None = None
    missing: bool = False
    attempts: int = 0
    seconds: float = 0.0
    skipped: bool = False
    unreachable: str | None = None  # why the server did not answer (counted by its circuit breaker)
    how: str | None = None  # provision: "template" (a copy) or "chain" (the files applied one by one)
    warnings: list[str] = field(default_factory=list)  # e.g. each file applied out of order
    fix: Fix | None = None  # what resolves the error, as facts (each way in words it: RunOptions.word_fix)

    def fail(self, message: str) -> DatabaseResult:
        self.ok = False
        self.error = message
        return self

    def refuse(self, facts: str, fix: Fix, word_fix=None) -> DatabaseResult:
        """Fail with the facts and what resolves them, worded by the way in (``word_fix(fix, target)``)."""
        self.fix = fix
        return self.fail(facts + (word_fix(fix, self.target) if word_fix else ""))
