"""``mark``: record migrations as applied or not, without running them, as Alembic stamps.

``--apply V`` stamps V (or, for a file older than the head that never ran,
records just that file); ``--unapply V`` stamps V's parent; ``--DANGEROUS-apply-all``
stamps the last file and records any out-of-order ones.  The ledger follows
every stamp in the same transaction (see ``ledger.LedgerWriter``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UsageError
from .ledger import DatabaseState
from .plan import closest_versions
from .runner import Chain, DatabaseResult, RunOptions, Session, with_retries
from .targets import Target

APPLY, UNAPPLY, APPLY_ALL = "apply", "unapply", "apply-all"


@dataclass(frozen=True)
class MarkRequest:
    mode: str
    version: str | None = None

    def validate(self, chain: Chain) -> None:
        if self.mode == APPLY_ALL:
            if not chain.files:
                raise UsageError("there are no migration files to mark")
            return
        if chain.get(self.version) is None:
            near = ", ".join(closest_versions(self.version, chain.files)) or "none"
            raise UsageError(f"unknown version {self.version} (closest: {near})")


@dataclass(frozen=True)
class MarkDecision:
    """What marking would change on one database."""

    stamp_to: str | None  # new Alembic head, or None to leave the version table alone
    stamp: bool
    mark: tuple[str, ...] = ()
    unmark: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()  # changes beyond the named version: these need --force

    @property
    def changes(self) -> bool:
        return bool(self.mark or self.unmark)


def _applied(chain: Chain, state: DatabaseState) -> set[str]:
    if state.ledger:
        return {v for v in chain.versions if v in state.ledger}
    head = state.head
    return {v for v in chain.versions if head is not None and v <= head}


def decide(chain: Chain, state: DatabaseState, request: MarkRequest) -> MarkDecision:
    applied = _applied(chain, state)
    head = state.head
    if request.mode == APPLY_ALL:
        mark = tuple(v for v in chain.versions if v not in applied)
        last = chain.versions[-1]
        return MarkDecision(last, stamp=head != last, mark=mark)
    version = request.version
    if request.mode == APPLY:
        if version in applied:
            return MarkDecision(None, stamp=False)
        if head is None or version > head:
            mark = tuple(v for v in chain.versions if (head is None or v > head) and v <= version and v not in applied)
            return MarkDecision(version, stamp=True, mark=mark, extra=tuple(v for v in mark if v != version))
        return MarkDecision(None, stamp=False, mark=(version,))  # out of order: the ledger only
    if version not in applied and not (head and version <= head):
        return MarkDecision(None, stamp=False)
    index = chain.versions.index(version)
    parent = chain.versions[index - 1] if index else None
    unmark = tuple(v for v in chain.versions[index:] if v in applied)
    return MarkDecision(parent, stamp=True, unmark=unmark, extra=tuple(v for v in unmark if v != version))


def plan_mark(target: Target, chain: Chain, request: MarkRequest, options: RunOptions) -> DatabaseResult:
    """Read-only: what ``mark`` would change on this database."""

    def attempt(result: DatabaseResult) -> None:
        with Session(target, options) as session:
            result.state = session.read(lock=False)
            _describe(result, decide(chain, result.state, request))

    return with_retries(target, options, attempt)


def apply_mark(target: Target, chain: Chain, request: MarkRequest, options: RunOptions, *, force: bool) -> DatabaseResult:
    """Stamp under the advisory lock; refuses extra changes without ``force``."""

    def attempt(result: DatabaseResult) -> None:
        with Session(target, options) as session:
            result.state = session.lock_and_read()
            decision = decide(chain, result.state, request)
            _describe(result, decision)
            if decision.extra and not force:
                result.fail(f"would also change {', '.join(decision.extra)}; re-run with --force to confirm")
                return
            if decision.changes:
                _stamp(session, chain, decision, result.state.head)
                result.after = decision.stamp_to if decision.stamp else result.before

    return with_retries(target, options, attempt)


def _describe(result: DatabaseResult, decision: MarkDecision) -> None:
    result.before = result.after = result.state.head
    result.marked = list(decision.mark)
    result.unmarked = list(decision.unmark)
    result.needs_force = bool(decision.extra)
    result.changes = [f"mark {v} applied" for v in decision.mark] + [f"unmark {v}" for v in decision.unmark]


def _stamp(session: Session, chain: Chain, decision: MarkDecision, head: str | None) -> None:
    from . import alembic_bridge

    script = chain.script()
    fn = alembic_bridge.stamp_steps(script, decision.stamp_to) if decision.stamp else (lambda heads, ctx: ())
    connection, context = session.migration_context(chain, fn)
    try:
        context.run_migrations(migration_context=context)
        # A stamp records the range above the old head; out-of-order files below it are recorded one by one.
        below_head = [v for v in decision.mark if not decision.stamp or (head is not None and v <= head)]
        writer = context.on_version_apply_callbacks[0]
        for version in below_head:
            with alembic_bridge.migration_transaction(context):
                writer.record_applied(context, version, "mark")
    finally:
        connection.close()
