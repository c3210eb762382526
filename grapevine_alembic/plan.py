"""What a database needs, from the files and the state it reports. Pure: no I/O.

Alembic records only the head, so a file merged late whose version is older
than a database's head looks applied to Alembic.  The ledger says otherwise:
such a file is *out of order* and is named, never skipped silently.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from .ledger import DatabaseState
from .sqlfile import MigrationFile


@dataclass(frozen=True)
class Plan:
    """Where one database stands against the chain of files."""

    head: str | None
    pending: tuple[MigrationFile, ...] = ()  # after the head, in order
    out_of_order: tuple[MigrationFile, ...] = ()  # at or before the head, never applied
    edited: tuple[MigrationFile, ...] = ()  # applied, but the file changed since
    unknown: tuple[str, ...] = ()  # recorded in the database, no file has that version
    adopt_to: str | None = None  # legacy ledger to adopt: stamp this version
    problem: str | None = None  # the database cannot be migrated as it stands
    applied_count: int = 0
    notes: tuple[str, ...] = field(default=())

    @property
    def up_to_date(self) -> bool:
        return not (self.pending or self.out_of_order or self.adopt_to or self.problem)

    @property
    def drifted(self) -> bool:
        return bool(self.edited or self.unknown)


def make_plan(chain: tuple[MigrationFile, ...], state: DatabaseState) -> Plan:
    versions = [m.version for m in chain]
    known = set(versions)
    if state.is_legacy:
        return _legacy_plan(chain, state)
    if len(state.heads) > 1:
        return Plan(head=state.head, problem=f"the version table has several heads: {', '.join(state.heads)}")
    head = state.head
    unknown = tuple(sorted(v for v in set(state.ledger) | set(state.heads) if v not in known))
    if head is not None and head not in known:
        return Plan(head=head, unknown=unknown, problem=f"the database is at {head}, which no migration file has")
    applied = [m for m in chain if head is not None and m.version <= head]
    pending = tuple(m for m in chain if head is None or m.version > head)
    # Without a ledger (or with an empty one) there is nothing to compare against.
    out_of_order = tuple(m for m in applied if state.ledger and m.version not in state.ledger)
    edited = tuple(
        m
        for m in applied
        if (row := state.ledger.get(m.version)) is not None and row.checksum and row.checksum != m.checksum
    )
    return Plan(
        head=head,
        pending=pending,
        out_of_order=out_of_order,
        edited=edited,
        unknown=unknown,
        applied_count=len(applied) - len(out_of_order),
    )


def _legacy_plan(chain: tuple[MigrationFile, ...], state: DatabaseState) -> Plan:
    """The previous tool's ledger: adopt it when it is exactly a prefix of the chain."""
    recorded = sorted(state.ledger)
    versions = [m.version for m in chain]
    if not recorded:
        return Plan(head=None, pending=tuple(chain))
    unknown = [v for v in recorded if v not in set(versions)]
    last = recorded[-1]
    expected = [v for v in versions if v <= last]
    gaps = [v for v in expected if v not in state.ledger]
    if unknown or gaps:
        details = []
        if gaps:
            details.append(f"never applied: {', '.join(gaps)}")
        if unknown:
            details.append(f"no such file: {', '.join(unknown)}")
        return Plan(
            head=None,
            unknown=tuple(unknown),
            problem=(
                "legacy schema_migrations is not a prefix of the migration files ("
                + "; ".join(details)
                + f"); after checking the schema, record it with: grapevine-migrations mark --apply {last} --force"
            ),
        )
    return Plan(
        head=None,
        adopt_to=last,
        pending=tuple(m for m in chain if m.version > last),
        applied_count=len(recorded),
    )


def closest_versions(version: str, chain: tuple[MigrationFile, ...], count: int = 3) -> list[str]:
    """Versions that look like a mistyped one, for 'unknown version' errors."""
    versions = [m.version for m in chain]
    close = difflib.get_close_matches(version, versions, n=count, cutoff=0.5)
    if close:
        return close
    # Fall back to the neighbours in time order.
    later = [v for v in versions if v > version][:1]
    earlier = [v for v in versions if v < version][-1:]
    return earlier + later
