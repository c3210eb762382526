"""What a database needs, from the files and the state it reports. Pure: no I/O.

Alembic records only the head; the ledger carries the exceptions to "everything up
to the head is applied":

* a file merged late whose version is older than a database's head, with no ledger
  row, is *out of order*: named, never skipped silently, applied on request;
* a version a person unmarked below the head (``mark --unapply V``; ledger row
  ``applied_by = unmarked``) is *pending again*: the next ``migrate`` re-runs it alone;
* a version a person marked above the head (``mark --apply V``) is *marked ahead*:
  ``migrate`` moves the head over it without running it.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field

from .ledger import UNMARKED, DatabaseState
from .lost_versions import way_back
from ...errors import UNAPPLY, Fix
from ...files.migration import MigrationFile


@dataclass(frozen=True)
class Plan:
    """Where one database stands against the chain of files."""

    head: str | None
    pending: tuple[MigrationFile, ...] = ()  # what migrate runs, in order: reruns, then after the head
    rerun: tuple[MigrationFile, ...] = ()  # at or before the head, unmarked on purpose (also in pending)
    marked_ahead: tuple[MigrationFile, ...] = ()  # after the head, marked applied: the head moves over them
    out_of_order: tuple[MigrationFile, ...] = ()  # at or before the head, never applied
    edited: tuple[MigrationFile, ...] = ()  # applied, but the file changed since
    lost: tuple[str, ...] = ()  # recorded in the database, no file has that version
    adopt_to: str | None = None  # legacy ledger to adopt: stamp this version
    problem: str | None = None  # the database cannot be migrated as it stands
    fix: Fix | None = None  # what resolves the problem, as facts (worded by each way in)
    applied_count: int = 0
    notes: tuple[str, ...] = field(default=())

    @property
    def up_to_date(self) -> bool:
        return not (self.pending or self.out_of_order or self.marked_ahead or self.adopt_to or self.problem)

    def up_to(self, bound: str | None) -> Plan:
        """This plan stopped at ``bound`` (None: base): no file after it runs or is moved over."""
        def kept(files):
            return tuple(m for m in files if m in self.rerun or (bound is not None and m.version <= bound))

        return dataclasses.replace(self, pending=kept(self.pending), marked_ahead=kept(self.marked_ahead))

    @property
    def drifted(self) -> bool:
        return bool(self.edited or self.lost)


def plan_key(state: DatabaseState) -> tuple:
    """Everything of ``state`` that ``make_plan`` reads: two databases with the same key get the same plan
    (a fleet's databases mostly stand alike, so a run plans each distinct state once)."""
    return (state.has_version_table, state.has_ledger, state.heads,
            frozenset((v, row.checksum, row.applied_by == UNMARKED) for v, row in state.ledger.items()))


def make_plan(chain: tuple[MigrationFile, ...], state: DatabaseState) -> Plan:
    versions = [m.version for m in chain]
    known = set(versions)
    if state.is_legacy:
        return _legacy_plan(chain, state)
    if len(state.heads) > 1:
        return Plan(head=state.head, problem=f"the version table has several heads: {', '.join(state.heads)}")
    head = state.head
    lost = tuple(sorted(v for v in set(state.ledger) | set(state.heads) if v not in known))
    if head is not None and head not in known:
        back = way_back(versions, state, head) or "base"
        return Plan(head=head, lost=lost, fix=Fix(UNAPPLY, head, back), problem=(
            f"the database is at {head}, which no migration file has (its file deleted, or another branch's?);"
            " once checked, move it back to the newest applied version that has a file"))
    unmarked = {v for v, row in state.ledger.items() if row.applied_by == UNMARKED}
    recorded = {v: row for v, row in state.ledger.items() if v not in unmarked}
    applied = [m for m in chain if head is not None and m.version <= head]
    after_head = [m for m in chain if head is None or m.version > head]
    rerun = tuple(m for m in applied if m.version in unmarked)
    # Without a ledger (or with an empty one) there is nothing to compare against.
    out_of_order = tuple(m for m in applied if state.ledger and m.version not in state.ledger)
    marked_ahead = tuple(m for m in after_head if m.version in recorded)
    edited = tuple(
        m
        for m in (*applied, *marked_ahead)
        if (row := recorded.get(m.version)) is not None and row.checksum and row.checksum != m.checksum
    )
    return Plan(
        head=head,
        pending=rerun + tuple(m for m in after_head if m.version not in recorded),
        rerun=rerun,
        marked_ahead=marked_ahead,
        out_of_order=out_of_order,
        edited=edited,
        lost=lost,
        applied_count=len(applied) - len(out_of_order) - len(rerun) + len(marked_ahead),
    )


def _legacy_plan(chain: tuple[MigrationFile, ...], state: DatabaseState) -> Plan:
    """The previous tool's ledger: adopted at its last version that has a file.

    Files it never ran below that version are out of order (named; ``migrate
    --out-of-order`` runs them).  A version no file has stops the database, with the
    command that removes its row once a person has checked why.
    """
    recorded = sorted(state.ledger)
    versions = {m.version for m in chain}
    if not recorded:
        return Plan(head=None, pending=tuple(chain))
    lost = [v for v in recorded if v not in versions]
    if lost:
        return Plan(
            head=None,
            lost=tuple(lost),
            fix=Fix(UNAPPLY, lost[0]),
            problem=(
                f"the previous tool's schema_migrations records versions no migration file has: {', '.join(lost)}"
                " (a file renamed or removed?); once checked, remove the row"
            ),
        )
    last = recorded[-1]
    return Plan(
        head=None,
        adopt_to=last,
        pending=tuple(m for m in chain if m.version > last),
        out_of_order=tuple(m for m in chain if m.version <= last and m.version not in state.ledger),
        applied_count=len(recorded),
    )


def closest_versions(version: str, chain: tuple[MigrationFile, ...], count: int = 3) -> list[str]:
    """Versions that look like a mistyped one, for 'unknown version' errors; the chain's head is always
    among them (often the version meant), marked ``(head)``."""
    versions = [m.version for m in chain]
    close = difflib.get_close_matches(version, versions, n=count, cutoff=0.5)
    if not close:  # fall back to the neighbours in time order
        close = [v for v in versions if v < version][-1:] + [v for v in versions if v > version][:1]
    if versions and versions[-1] not in close:
        close.append(versions[-1])
    return [f"{v} (head)" if versions and v == versions[-1] else v for v in close]
