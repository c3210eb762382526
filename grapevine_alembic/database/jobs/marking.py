"""``mark``: record migrations as applied or not, without running them.

As the previous tool's users know it, ``--apply V`` and ``--unapply V`` change V
alone.  Alembic's stamp stays what moves ``alembic_version``; the ledger carries the
exceptions (see ``plan``):

* ``--apply V``: V is the next pending version: stamp V.  V lies further ahead:
  record V alone (*marked ahead*; ``migrate`` moves the head over it).  V is older
  than the head and never ran (out of order, or unmarked): record V alone.
* ``--unapply V``: V is the head: stamp its parent.  V is below the head: flag V
  ``unmarked`` (the next ``migrate`` re-runs V alone).  V was marked ahead: drop its
  row.  A version no file has but the ledger records: drop its row.
* ``--range``: the old, wider form: ``--apply V`` stamps V, marking every pending
  version up to it; ``--unapply V`` stamps V's parent, unmarking V and every later one.
* ``--DANGEROUS-apply-all`` stamps the last file and records every other one.

The ledger follows every change in the same transaction (see ``ledger.LedgerWriter``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..state import lost_versions
from ...errors import UsageError
from ..state.ledger import UNMARKED, DatabaseState
from ..state.plan import closest_versions, make_plan
from ..state.result import DatabaseResult
from .retrying import with_retries
from .runner import Chain, RunOptions, Session, adopt
from ..state.target import Target

APPLY, UNAPPLY, APPLY_ALL, ACCEPT_EDIT = "apply", "unapply", "apply-all", "accept-edit"
EDIT_ACCEPTED = "edit-accepted"  # applied_by of a version whose edited file a person accepted
_VERSION = re.compile(r"[0-9]{14}", re.ASCII)


@dataclass(frozen=True)
class MarkRequest:
    mode: str
    version: str | None = None
    range: bool = False  # --range: every version between V and the head too
    reason: str | None = None  # --accept-edit: why the edited file is accepted (kept in the ledger)

    def validate(self, chain: Chain) -> None:
        if self.mode == APPLY_ALL:
            if not chain.files:
                raise UsageError("there are no migration files to mark")
            return
        if self.mode == ACCEPT_EDIT and not (self.reason or "").strip():
            raise UsageError('--accept-edit needs --reason "why the edited file is right" (kept in the ledger)')
        if chain.get(self.version) is not None:
            return
        if self.mode == UNAPPLY and _VERSION.fullmatch(self.version or ""):
            return  # a ledger row no file has may be removed: checked per database
        near = ", ".join(closest_versions(self.version, chain.files)) or "none"
        raise UsageError(f"unknown version {self.version} in {chain.env} migrations (closest: {near})")


@dataclass(frozen=True)
class MarkDecision:
    """What marking would change on one database."""

    stamp_to: str | None  # new Alembic head (with stamp=True)
    stamp: bool
    mark: tuple[str, ...] = ()  # record as applied
    unmark: tuple[str, ...] = ()  # record as not applied
    extra: tuple[str, ...] = ()  # changes beyond the named version (only with --range)
    problem: str | None = None
    accept: tuple[str, ...] = ()  # edited files whose new checksum is recorded
    purge: bool = False  # the head is a version no file has: back to stamp_to (alembic stamp --purge)

    @property
    def changes(self) -> bool:
        return bool(self.mark or self.unmark or self.accept)


def decide(chain: Chain, state: DatabaseState, request: MarkRequest) -> MarkDecision:
    plan = make_plan(chain.files, state)
    head, versions = state.head, chain.versions
    not_applied = {m.version for m in (*plan.pending, *plan.out_of_order)}
    applied = {v for v in versions if v not in not_applied and (head is not None and v <= head)}
    applied |= {m.version for m in plan.marked_ahead}
    if request.mode == APPLY_ALL:
        return MarkDecision(versions[-1], stamp=head != versions[-1], mark=tuple(v for v in versions if v not in applied))
    version = request.version
    if request.mode == ACCEPT_EDIT:
        edited = {m.version for m in plan.edited}
        return MarkDecision(None, stamp=False, accept=(version,) if version in edited else ())
    if request.mode == APPLY:
        return _decide_apply(versions, head, applied, version, request.range)
    return _decide_unapply(versions, head, applied, state, version, request.range, chain)


def _decide_apply(versions, head, applied, version, wide) -> MarkDecision:
    if version in applied:
        return MarkDecision(None, stamp=False)
    if head is not None and version < head:
        return MarkDecision(None, stamp=False, mark=(version,))  # out of order or unmarked: the ledger only
    between = [v for v in versions if (head is None or v > head) and v < version and v not in applied]
    if not between or wide:
        mark = tuple(v for v in versions if (head is None or v > head) and v <= version and v not in applied)
        return MarkDecision(version, stamp=True, mark=mark, extra=tuple(v for v in mark if v != version))
    return MarkDecision(None, stamp=False, mark=(version,))  # marked ahead: migrate moves the head over it


def _decide_unapply(versions, head, applied, state, version, wide, chain) -> MarkDecision:
    if version not in versions:
        if version in state.heads:  # the head itself has no file: back to the newest applied one that has
            back = lost_versions.way_back(versions, state, version)
            return MarkDecision(back, stamp=True, unmark=(version,), purge=True)
        if version in state.ledger:
            return MarkDecision(None, stamp=False, unmark=(version,))  # a row no file has: dropped
        near = ", ".join(closest_versions(version, chain.files)) or "none"
        return MarkDecision(None, stamp=False, problem=f"unknown version {version} (closest: {near})")
    if version not in applied:
        return MarkDecision(None, stamp=False)
    index = versions.index(version)
    parent = versions[index - 1] if index else None
    if version == head or wide:
        unmark = tuple(v for v in versions[index:] if v in applied and (wide or v == version))
        return MarkDecision(parent, stamp=True, unmark=unmark, extra=tuple(v for v in unmark if v != version))
    return MarkDecision(None, stamp=False, unmark=(version,))  # below the head, or marked ahead


def plan_mark(target: Target, chain: Chain, request: MarkRequest, options: RunOptions) -> DatabaseResult:
    """Read-only: what ``mark`` would change on this database."""

    def attempt(result: DatabaseResult) -> None:
        with Session(target, options, chain.tables) as session:
            result.state = session.read(lock=False)
            decision = decide(chain, result.state, request)
            _describe(result, decision)
            if decision.problem:
                result.fail(decision.problem)

    return with_retries(target, options, attempt)


def apply_mark(target: Target, chain: Chain, request: MarkRequest, options: RunOptions) -> DatabaseResult:
    """Record under the advisory lock what ``decide`` says (a legacy ledger is adopted first)."""

    def attempt(result: DatabaseResult) -> None:
        with Session(target, options, chain.tables) as session:
            result.state = session.lock_and_read()
            adopt_to = make_plan(chain.files, result.state).adopt_to
            if adopt_to:  # the previous tool's ledger: take it over first, keeping applied_at
                result.state = adopt(session, chain, adopt_to, result)
            decision = decide(chain, result.state, request)
            _describe(result, decision)
            if decision.problem:
                result.fail(decision.problem)
                return
            if decision.accept:
                _accept_edits(session, chain, decision.accept, request.reason)
            elif decision.purge:
                lost_versions.purge_to(
                    session.raw, request.version, decision.stamp_to, has_ledger=result.state.has_ledger,
                    tables=chain.tables,
                )
                result.after = decision.stamp_to
            elif decision.changes and result.state.is_legacy:
                _drop_legacy_rows(session, decision.unmark)  # still the previous tool's: no Alembic table yet
            elif decision.changes:
                _stamp(session, chain, decision, result.state)
                result.after = decision.stamp_to if decision.stamp else result.before

    return with_retries(target, options, attempt)


def _describe(result: DatabaseResult, decision: MarkDecision) -> None:
    result.before = result.after = result.state.head
    result.marked = list(decision.mark)
    result.unmarked = list(decision.unmark)
    result.changes += (  # after an adoption's own line, when there was one
        [f"mark {v} applied" for v in decision.mark] + [f"unmark {v}" for v in decision.unmark]
        + [f"accept the edited {v} (new checksum recorded)" for v in decision.accept]
        + ([f"alembic_version {result.state.head} -> {decision.stamp_to or '(none)'}"
            f" (as alembic stamp --purge {decision.stamp_to or 'base'})"] if decision.purge else [])
    )


def _stamp(session: Session, chain: Chain, decision: MarkDecision, state: DatabaseState) -> None:
    """The stamp (when the head moves) and the ledger rows, in one transaction."""
    from . import alembic_bridge  # imports Alembic: only for a database that needs it

    script = chain.script()
    fn = alembic_bridge.stamp_steps(script, decision.stamp_to) if decision.stamp else (lambda heads, ctx: ())
    connection, context = session.migration_context(chain, fn, how="mark")
    try:
        context.run_migrations(migration_context=context)
        writer = context.on_version_apply_callbacks[0]
        stamped = _stamped_range(decision, state.head)
        with alembic_bridge.migration_transaction(context):
            for version in decision.mark:
                if version not in stamped:
                    writer.record_applied(context, version, "mark")
            for version in decision.unmark:
                if version in stamped:
                    continue  # the stamp below the head removed its row
                if chain.get(version) is None or version > (state.head or ""):
                    writer.delete(context, version)  # a row no file has, or a version marked ahead
                else:
                    writer.record_applied(context, version, UNMARKED)
    finally:
        connection.close()


def _accept_edits(session: Session, chain: Chain, versions, reason: str) -> None:
    """Record the edited files' new checksums, with ``edit-accepted`` and the reason, one row each."""
    with session.raw.cursor() as cursor:
        for version in versions:
            migration = chain.get(version)
            cursor.execute(
                f"UPDATE {chain.tables.ledger} SET checksum = %s, applied_by = %s,"
                " description = %s WHERE version = %s",
                (migration.checksum, EDIT_ACCEPTED, f"{migration.message} (edit accepted: {reason.strip()})", version),
            )


def _drop_legacy_rows(session: Session, versions) -> None:
    """Rows no file has, removed from a ledger the previous tool left (it is adopted later, by migrate)."""
    with session.raw.cursor() as cursor:
        cursor.execute(f"DELETE FROM {session.tables.ledger} WHERE version = ANY(%s)", (list(versions),))


def _stamped_range(decision: MarkDecision, head: str | None) -> set[str]:
    """Versions whose ledger rows the stamp itself writes or removes."""
    if not decision.stamp:
        return set()
    low, high = sorted([head or "", decision.stamp_to or ""])
    return {v for v in (*decision.mark, *decision.unmark) if low < v <= high}
