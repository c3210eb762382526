"""The rollout record read back (``rollouts``, ``rollouts show ID``): the latest rollouts and one rollout
with its tenants, a ``running`` row whose lock nobody holds read as ``interrupted`` (see ``record``)."""

from __future__ import annotations

from ..database.session.connection import open_connection
from ..errors import DatabaseError
from .record_sql import FAILED, OK, PENDING, state_sql

def _columns(tables) -> str:
    t = tables.rollout_tenants
    return (f"r.id, {state_sql('r')}, r.started_at, r.ended_at, r.started_by, r.host, r.pid, r.command, r.heads,"
            " r.options, r.waves, r.halt,"
            f" (SELECT json_object_agg(outcome, n) FROM (SELECT outcome, count(*) AS n FROM {t}"
            " WHERE rollout_id = r.id GROUP BY outcome) c)")


_FIELDS = ("id", "state", "started_at", "ended_at", "started_by", "host", "pid", "command", "heads", "options",
           "waves", "halt", "tenants")


def _query(spec, tables, sql: str, params) -> list[tuple]:
    raw = open_connection(spec)
    try:
        with raw.cursor() as cursor:
            cursor.execute(f"SELECT to_regclass(%s) IS NOT NULL", (tables.rollouts,))
            if not cursor.fetchone()[0]:
                return []
            cursor.execute(sql, params)
            return cursor.fetchall()
    finally:
        raw.close()


def recent(spec, tables, limit: int = 20) -> list[dict]:
    """The latest rollouts, newest first, each as a dict (``tenants``: count per outcome)."""
    rows = _query(spec, tables, f"SELECT {_columns(tables)} FROM {tables.rollouts} r ORDER BY r.id DESC LIMIT %s",
                  (limit,))
    return [_rollout(row) for row in rows]


def one(spec, tables, rollout_id: int) -> dict:
    """One rollout, with ``databases``: each planned tenant's wave, outcome, attempts, duration and error."""
    rows = _query(spec, tables, f"SELECT {_columns(tables)}, (SELECT json_agg(json_build_object('tenant', tenant_id,"
                  " 'wave', wave, 'outcome', outcome, 'attempts', attempts, 'duration_ms', duration_ms, 'error', error,"
                  f" 'version', version) ORDER BY wave, position) FROM {tables.rollout_tenants} WHERE rollout_id = r.id)"
                  f" FROM {tables.rollouts} r WHERE r.id = %s", (rollout_id,))
    if not rows:
        raise DatabaseError(f"no rollout {rollout_id} in the record")
    found = _rollout(rows[0][:-1])
    found["databases"] = rows[0][-1] or []
    return found


def _rollout(row: tuple) -> dict:
    found = dict(zip(_FIELDS, row))
    for name in ("started_at", "ended_at"):
        found[name] = found[name].isoformat() if found[name] is not None else None
    found["tenants"] = {PENDING: 0, OK: 0, FAILED: 0, **(found["tenants"] or {})}
    return found
