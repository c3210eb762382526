"""A database whose version no file has (a file deleted after it ran, a branch switched): the way back.

``mark --unapply V`` for such a head removes V's ledger row and moves ``alembic_version``
to the newest applied version that still has a file, in one transaction: what
``alembic stamp --purge <that version>`` does (Alembic's own stamp cannot start from a
revision its map does not know, so the purge empties the table first; the env's
``LedgerWriter.purged_heads`` makes the ledger follow, in the same transaction).
"""

from __future__ import annotations

from ...tool_tables import DEFAULT_TABLES, ToolTables
from .ledger import UNMARKED, DatabaseState


def way_back(versions: list[str], state: DatabaseState, lost: str) -> str | None:
    """The newest version below ``lost`` that has a file and is recorded as applied (None: base).

    Without a ledger every file below the lost version counts as applied, as Alembic's head says.
    """
    applied = {v for v, row in state.ledger.items() if row.applied_by != UNMARKED}
    below = [v for v in versions if v < lost and (v in applied or not state.ledger)]
    return below[-1] if below else None


def purge_to(raw, lost: str, back: str | None, *, has_ledger: bool, tables: ToolTables = DEFAULT_TABLES) -> None:
    """Drop the lost version's row and set the head to ``back``, together or not at all."""
    with raw.cursor() as cursor:
        cursor.execute("BEGIN")
        try:
            cursor.execute(f"DELETE FROM {tables.version}")
            if back is not None:
                cursor.execute(f"INSERT INTO {tables.version} (version_num) VALUES (%s)", (back,))
            if has_ledger:
                cursor.execute(f"DELETE FROM {tables.ledger} WHERE version = %s", (lost,))
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        cursor.execute("COMMIT")
