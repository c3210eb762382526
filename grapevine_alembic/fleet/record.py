"""The rollout record: every ``migrate`` over tenants in the control database, so a halted, interrupted
or killed rollout can be listed, shown and resumed where it stopped.

Two tables (named by ``rollout_table`` in ``[control]``, see ``tool_tables``): one row per rollout (who,
where, when, the chain heads, the options and waves, its state) and one per planned tenant (its wave,
outcome, attempts, duration, error). Results are written in batches as they come, on a connection of
the record's own.

While it runs, a rollout holds a session-level advisory lock keyed on its id on that connection: a
``running`` row whose lock nobody holds belonged to a process that died (SIGKILL, a lost node), and
reads as ``interrupted``. Registering a rollout's tenants happens under a transaction lock, so of two
rollouts over the same tenants the second always sees the first and refuses, naming it.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass

from ..database.session.connection import open_connection
from ..errors import DatabaseError, UsageError
from ..masking import known_secrets, mask
from . import rollout as fleet_rollout

RUNNING, HALTED, INTERRUPTED, DONE = "running", "halted", "interrupted", "done"
PENDING, OK, FAILED = "pending", "done", "failed"
_LOCK_CLASS = 0x67726F6C  # "grol": the first key of every rollout's lock (the second is its id)
_FLUSH_ROWS, _FLUSH_S = 200, 1.0  # a batch of results is written when it is this big or this old
_RECONNECT_S = 30.0  # how long the end of a run waits for a restarting control server to write the record


class Conflict(UsageError):
    """Another live rollout runs over some of the same tenants."""


def _ddl(tables) -> str:
    r, t = tables.rollouts, tables.rollout_tenants
    # One transaction under a lock: two first uses at once would race on CREATE TABLE IF NOT EXISTS.
    return (f"BEGIN; SELECT pg_catalog.pg_advisory_xact_lock({_LOCK_CLASS}, 0);"
            f" CREATE TABLE IF NOT EXISTS {r} (id bigserial PRIMARY KEY, state text NOT NULL,"
            " started_at timestamptz NOT NULL DEFAULT now(), ended_at timestamptz, started_by text, host text,"
            " pid integer, command text, heads jsonb, options jsonb NOT NULL, waves jsonb, halt text);"
            f" CREATE TABLE IF NOT EXISTS {t} (rollout_id bigint NOT NULL REFERENCES {r} (id) ON DELETE CASCADE,"
            " tenant_id text NOT NULL, position integer NOT NULL, wave integer NOT NULL,"
            " outcome text NOT NULL DEFAULT 'pending', attempts integer NOT NULL DEFAULT 0, duration_ms integer,"
            " error text, version text, PRIMARY KEY (rollout_id, tenant_id)); COMMIT")


def _live(alias: str) -> str:
    """True while the process that runs rollout ``alias.id`` holds its lock (in this database)."""
    return (f"EXISTS (SELECT 1 FROM pg_catalog.pg_locks l WHERE l.locktype = 'advisory' AND l.granted"
            f" AND l.classid = {_LOCK_CLASS} AND l.objid = {alias}.id::oid AND l.objsubid = 2"
            " AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()))")


def _state(alias: str) -> str:
    return f"CASE WHEN {alias}.state = '{RUNNING}' AND NOT {_live(alias)} THEN '{INTERRUPTED}' ELSE {alias}.state END"


@dataclass(frozen=True)
class Resumed:
    """What a resumed rollout takes from its record: its options and the tenants not done, in wave order."""

    id: int
    options: dict
    tenants: tuple[str, ...]
    waves: tuple[int, ...]  # per tenant: its recorded wave
    gates: dict  # wave number -> [gated, canary]
    planned: bool = True  # False: it stopped before its tenants were known (control failed), so plan afresh

    def planner(self, targets: list) -> fleet_rollout.Plan:
        """The recorded waves over what is left of them (their numbers kept)."""
        wave_of = dict(zip(self.tenants, self.waves))
        waves, first = [], 0
        for target in targets:
            number = wave_of[target.tenant_id]
            if waves and waves[-1].number == number:
                waves[-1] = fleet_rollout.Wave(number, waves[-1].first, waves[-1].size + 1, *self.gates[str(number)])
            else:
                waves.append(fleet_rollout.Wave(number, first, 1, *self.gates[str(number)]))
            first += 1
        return fleet_rollout.Plan(tuple(waves), len(targets))


class Recorder:
    """One rollout's record, on a control connection of its own that holds the rollout's lock."""

    def __init__(self, raw, tables, rollout_id: int, resumed: Resumed | None = None, spec=None):
        self.raw, self.tables, self.id, self.resumed, self.spec = raw, tables, rollout_id, resumed, spec
        self._pending: list[tuple] = []
        self._flushed = time.monotonic()
        self._mutex = threading.Lock()
        self._wave: dict[str, int] = {}
        self._secrets = known_secrets()  # an error text is stored masked, as it would be printed

    @classmethod
    def start(cls, spec, tables, *, options: dict, heads: dict, command: str, secrets=()) -> Recorder:
        raw = _open(spec)
        try:
            with raw.cursor() as cursor:
                cursor.execute(  # one round trip: the tables on first use, the row, its lock
                    f"{_ddl(tables)}; WITH r AS (INSERT INTO {tables.rollouts}"
                    " (state, started_by, host, pid, command, heads, options)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id)"
                    f" SELECT id, pg_catalog.pg_advisory_lock({_LOCK_CLASS}, id::int4) IS NULL FROM r",
                    (RUNNING, _user(), socket.gethostname(), os.getpid(), mask(command, [s for s in secrets if s]),
                     json.dumps(heads), json.dumps(options)))
                return cls(raw, tables, cursor.fetchone()[0], spec=spec)
        except BaseException:
            raw.close()
            raise

    @classmethod
    def resume(cls, spec, tables, rollout_id: int | None) -> Recorder:
        """The rollout ``rollout_id`` (None: the latest not done), locked, with what is left of it."""
        raw = _open(spec)
        try:
            with raw.cursor() as cursor:
                cursor.execute(_ddl(tables))
                which = "r.id = %s" if rollout_id is not None else f"{_state('r')} <> '{DONE}'"
                cursor.execute(f"SELECT r.id, {_state('r')}, r.options, r.waves, r.pid, r.host FROM {tables.rollouts} r"
                               f" WHERE {which} ORDER BY r.id DESC LIMIT 1", (rollout_id,) if rollout_id else None)
                row = cursor.fetchone()
                if row is None:
                    raise UsageError(f"no rollout {rollout_id} in the record" if rollout_id is not None
                                     else "no rollout to resume: every recorded rollout is done")
                found, state, options, waves, pid, host = row
                if state == DONE:
                    raise UsageError(f"rollout {found} is done: nothing to resume")
                cursor.execute(f"SELECT pg_catalog.pg_try_advisory_lock({_LOCK_CLASS}, %s::int4)", (found,))
                if state == RUNNING or not cursor.fetchone()[0]:
                    raise Conflict(f"rollout {found} is running (pid {pid} on {host}): wait for it to end")
                cursor.execute(f"SELECT tenant_id, wave FROM {tables.rollout_tenants} WHERE rollout_id = %s"
                               f" AND outcome <> '{OK}' ORDER BY wave, position", (found,))
                left = cursor.fetchall()
                cursor.execute(f"UPDATE {tables.rollouts} SET state = '{RUNNING}', ended_at = NULL, halt = NULL,"
                               " pid = %s, host = %s WHERE id = %s", (os.getpid(), socket.gethostname(), found))
            resumed = Resumed(found, options, tuple(t for t, _ in left), tuple(w for _, w in left), waves or {},
                              planned=waves is not None)
            return cls(raw, tables, found, resumed, spec=spec)
        except BaseException:
            raw.close()
            raise

    # ---- hooks of fleet/rollout.roll_out ----
    def planned(self, targets: list, plan) -> None:
        """Refuse if a live rollout runs over any of these tenants; else record them (once) with their waves."""
        # a row whose id cannot name a database (NULL, empty) is that row's failure, not a tenant of the record
        self._wave = {t.tenant_id: plan.wave_of(i) for i, t in enumerate(targets)
                      if t.tenant_id and not t.problem and plan.wave_of(i) is not None}
        ids = list(self._wave)
        import psycopg2

        with self._mutex:
            for last in (False, True):  # before any tenant starts: a restarting server is waited out, once
                self._reconnected(_RECONNECT_S)
                try:
                    return self._check_and_plan(plan, ids)
                except (psycopg2.OperationalError, psycopg2.InterfaceError):
                    if last or not self.raw.closed:
                        raise
                    self._drop_connection()

    def _check_and_plan(self, plan, ids: list[str]) -> None:
        r, t = self.tables.rollouts, self.tables.rollout_tenants
        with self.raw.cursor() as cursor:
            try:  # under the lock every start takes, so of two rollouts one always sees the other's tenants
                cursor.execute(f"BEGIN; SELECT pg_catalog.pg_advisory_xact_lock({_LOCK_CLASS}, 0);"
                               f" SELECT r.id, r.pid, r.host FROM {r} r WHERE r.state = '{RUNNING}' AND r.id <> %s"
                               f" AND {_live('r')} AND EXISTS (SELECT 1 FROM {t} x WHERE x.rollout_id = r.id"
                               " AND x.tenant_id = ANY(%s)) ORDER BY r.id LIMIT 1", (self.id, ids))
                other = cursor.fetchone()
                if other is not None:
                    raise Conflict(f"rollout {other[0]} (pid {other[1]} on {other[2]}) is running over some of"
                                   " these tenants: wait for it, or resume it when it stops")
                if self.resumed is None or not self.resumed.planned:  # tenants, waves and commit: one round trip
                    chosen = list(self._wave)
                    gates = {str(w.number): [w.gated, w.canary] for w in plan.waves}
                    cursor.execute(f"INSERT INTO {t} (rollout_id, tenant_id, position, wave)"
                                   " SELECT %s, u.tenant, u.position, u.wave"
                                   " FROM unnest(%s::text[], %s::int[], %s::int[]) AS u(tenant, position, wave);"
                                   f" UPDATE {r} SET waves = %s WHERE id = %s; COMMIT",
                                   (self.id, chosen, list(range(len(chosen))), [self._wave[c] for c in chosen],
                                    json.dumps(gates), self.id))
                else:
                    cursor.execute("COMMIT")
            except BaseException:
                if not self.raw.closed:  # a lost connection took its transaction with it
                    cursor.execute("ROLLBACK")
                raise

    def result(self, result) -> None:
        tenant = result.target.tenant_id
        if tenant not in self._wave or (result.skipped and result.ok):  # unplanned, or never started
            return
        with self._mutex:
            error = mask(result.error, self._secrets) if result.error else None
            self._pending.append((tenant, OK if result.ok else FAILED, max(result.attempts, 1),
                                  round(result.seconds * 1000), error, result.after))
            if len(self._pending) >= _FLUSH_ROWS or time.monotonic() - self._flushed >= _FLUSH_S:
                self._flush()

    def _flush(self, wait_s: float = 0.0) -> None:
        """Write the pending results.  The record never fails the run: on a lost connection (a restarting
        server) the rows stay pending for the next flush, on a new connection; the run's end waits ``wait_s``."""
        self._flushed = time.monotonic()
        if not self._pending or not self._reconnected(wait_s):
            return
        try:  # under the mutex: no result is added meanwhile
            self._write(self._pending)
        except Exception:  # noqa: BLE001 - lost with the server; tried again on the next flush
            self._drop_connection()
            return
        self._pending = []

    def _reconnected(self, wait_s: float) -> bool:
        """True with a live connection holding the rollout's lock; reconnects (waiting up to ``wait_s``)."""
        if self.raw is not None and not self.raw.closed:
            return True
        if self.spec is None:
            return False
        deadline, pause = time.monotonic() + wait_s, 0.2
        while True:
            try:
                raw = _open(self.spec)
                with raw.cursor() as cursor:  # the lock went with the lost session: a resume elsewhere may hold it
                    cursor.execute(f"SELECT pg_catalog.pg_try_advisory_lock({_LOCK_CLASS}, %s::int4)", (self.id,))
                    if not cursor.fetchone()[0]:
                        raw.close()
                        return False
                self.raw = raw
                return True
            except Exception:  # noqa: BLE001 - not back yet
                if time.monotonic() + pause > deadline:
                    return False
                time.sleep(pause)
                pause = min(pause * 2, 2.0)

    def _drop_connection(self) -> None:
        try:
            self.raw.close()
        except Exception:  # noqa: BLE001 - already gone
            pass

    def _write(self, rows: list[tuple]) -> None:
        with self.raw.cursor() as cursor:
            cursor.execute(
                f"UPDATE {self.tables.rollout_tenants} x SET outcome = u.outcome, attempts = x.attempts + u.attempts,"
                " duration_ms = u.ms, error = u.error, version = u.version"
                " FROM unnest(%s::text[], %s::text[], %s::int[], %s::int[], %s::text[], %s::text[])"
                " AS u(tenant, outcome, attempts, ms, error, version)"
                " WHERE x.rollout_id = %s AND x.tenant_id = u.tenant",
                (*(list(column) for column in zip(*rows)), self.id))

    # ---- the end ----
    def finish(self, outcome, stopped: bool) -> None:
        """Write what is left and the rollout's state: done only when every planned tenant is done."""
        halt = outcome.halt
        failed = [r for r in outcome.results if not r.ok]
        if stopped:
            state, why = INTERRUPTED, "interrupted"
        elif halt is not None or failed:
            state = HALTED
            why = halt.reason if halt is not None else f"{len(failed)} database(s) failed"
        else:
            state, why = DONE, None
        self.close(state, why)

    def close(self, state: str, why: str | None) -> None:
        """Write what is left and the state.  A control server that stays away leaves the row ``running``
        with no lock held, which reads as ``interrupted``: true, and resumable."""
        try:
            with self._mutex:
                self._flush(wait_s=_RECONNECT_S)
                if self._pending or not self._reconnected(0.0):
                    return
                with self.raw.cursor() as cursor:
                    cursor.execute(f"UPDATE {self.tables.rollouts} SET state = %s, ended_at = now(), halt = %s"
                                   " WHERE id = %s", (state, why, self.id))
        except Exception:  # noqa: BLE001 - the record never fails the run it records
            pass
        finally:
            self._drop_connection()  # the lock goes with the session

    def discard(self) -> None:
        """A rollout refused before it started any tenant leaves no record."""
        try:
            with self.raw.cursor() as cursor:
                if self.resumed is None:
                    cursor.execute(f"DELETE FROM {self.tables.rollouts} WHERE id = %s", (self.id,))
                else:
                    cursor.execute(f"UPDATE {self.tables.rollouts} SET state = '{HALTED}', ended_at = now()"
                                   " WHERE id = %s", (self.id,))
        finally:
            self.raw.close()


def roll_out(recorder: Recorder, control, tenants, job, **kw) -> fleet_rollout.Rollout:
    """``fleet/rollout.roll_out`` with its record kept (and a resumed rollout's waves)."""
    resumed = recorder.resumed
    planner = resumed.planner if resumed is not None and resumed.planned else None
    try:
        outcome = fleet_rollout.roll_out(control, tenants, job, planner=planner, on_plan=recorder.planned,
                                         on_result=recorder.result, **kw)
    except Conflict:
        recorder.discard()
        raise
    except BaseException as err:
        recorder.close(HALTED, mask(str(err))[:500] or type(err).__name__)
        raise
    recorder.finish(outcome, kw.get("should_stop", lambda: False)())
    outcome.record = recorder.id
    return outcome


def _open(spec):
    """The record's connection, its watchdog thread started with SIGINT and SIGTERM blocked: it outlives the
    prompt-time handling and must never be the thread a Ctrl-C lands on (see ``interrupts.graceful``)."""
    import signal

    from ..database.session.interrupts import SIGNALS

    if threading.current_thread() is not threading.main_thread():
        return open_connection(spec)
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        return open_connection(spec)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _user() -> str:
    import getpass  # lazy: it loads termios, and only a new rollout asks who runs it

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


# ---- reading the record ----
def _columns(tables) -> str:
    t = tables.rollout_tenants
    return (f"r.id, {_state('r')}, r.started_at, r.ended_at, r.started_by, r.host, r.pid, r.command, r.heads,"
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
