"""The rollout record's SQL: its tables, its states, the lock every rollout holds on its id, and the
statements ``record`` sends and ``record_view`` reads with (see ``record`` for what they promise)."""

from __future__ import annotations

RUNNING, HALTED, INTERRUPTED, DONE = "running", "halted", "interrupted", "done"
PENDING, OK, FAILED = "pending", "done", "failed"
LOCK_CLASS = 0x67726F6C  # "grol": the first key of every rollout's lock (the second is its id)


def overlapping_sql(tables) -> str:
    """The first live rollout but ``%s`` with a tenant among ``%s``: its id, pid and host."""
    return (f"SELECT r.id, r.pid, r.host FROM {tables.rollouts} r WHERE r.state = '{RUNNING}' AND r.id <> %s"
            f" AND {live_sql('r')} AND EXISTS (SELECT 1 FROM {tables.rollout_tenants} x WHERE x.rollout_id = r.id"
            " AND x.tenant_id = ANY(%s)) ORDER BY r.id LIMIT 1")


def results_sql(tables, rollout_id: int, rows: list[tuple]) -> tuple[str, tuple]:
    """The statement writing a batch of results (tenant, outcome, attempts, ms, error, version)."""
    return (f"UPDATE {tables.rollout_tenants} x SET outcome = u.outcome, attempts = x.attempts + u.attempts,"
            " duration_ms = u.ms, error = u.error, version = u.version"
            " FROM unnest(%s::text[], %s::text[], %s::int[], %s::int[], %s::text[], %s::text[])"
            " AS u(tenant, outcome, attempts, ms, error, version)"
            " WHERE x.rollout_id = %s AND x.tenant_id = u.tenant",
            (*(list(column) for column in zip(*rows)), rollout_id))


def joined(*statements: tuple[str, tuple]) -> tuple[str, tuple]:
    """Statements sent as one round trip (one implicit transaction)."""
    return "; ".join(sql for sql, _ in statements), tuple(p for _, params in statements for p in params)


def ddl_sql(tables) -> str:
    """The record's tables on first use. Where they exist (every later run) it is two catalog lookups: no
    DDL, no lock, no notice; two first uses at once take a lock, so they do not race on CREATE TABLE."""
    r, t = tables.rollouts, tables.rollout_tenants
    return (f"DO $grapevine$ BEGIN IF to_regclass('{r}') IS NULL OR to_regclass('{t}') IS NULL THEN"
            f" PERFORM pg_catalog.pg_advisory_xact_lock({LOCK_CLASS}, 0);"
            f" CREATE TABLE IF NOT EXISTS {r} (id bigserial PRIMARY KEY, state text NOT NULL,"
            " started_at timestamptz NOT NULL DEFAULT now(), ended_at timestamptz, started_by text, host text,"
            " pid integer, command text, heads jsonb, options jsonb NOT NULL, waves jsonb, halt text);"
            f" CREATE TABLE IF NOT EXISTS {t} (rollout_id bigint NOT NULL REFERENCES {r} (id) ON DELETE CASCADE,"
            " tenant_id text NOT NULL, position integer NOT NULL, wave integer NOT NULL,"
            " outcome text NOT NULL DEFAULT 'pending', attempts integer NOT NULL DEFAULT 0, duration_ms integer,"
            " error text, version text, PRIMARY KEY (rollout_id, tenant_id)); END IF; END $grapevine$")


def live_sql(alias: str) -> str:
    """True while the process that runs rollout ``alias.id`` holds its lock (in this database)."""
    return (f"EXISTS (SELECT 1 FROM pg_catalog.pg_locks l WHERE l.locktype = 'advisory' AND l.granted"
            f" AND l.classid = {LOCK_CLASS} AND l.objid = {alias}.id::oid AND l.objsubid = 2"
            " AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()))")


def state_sql(alias: str) -> str:
    return f"CASE WHEN {alias}.state = '{RUNNING}' AND NOT {live_sql(alias)} THEN '{INTERRUPTED}' ELSE {alias}.state END"
