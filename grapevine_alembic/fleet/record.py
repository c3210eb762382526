"""The rollout record: every ``migrate`` over tenants in the control database, so a halted, interrupted
or killed rollout can be listed, shown and resumed where it stopped.

Two tables (named by ``rollout_table`` in ``[control]``, see ``tool_tables``): one row per rollout (who,
where, when, the chain heads, the options and waves, its state) and one per planned tenant (its wave,
outcome, attempts, duration, error). Results are written in batches as they come, on a connection of
the record's own.

While it runs, a rollout holds a session-level advisory lock keyed on its id on that connection: a
``running`` row whose lock nobody holds belonged to a process that died (SIGKILL, a lost node), and
reads as ``interrupted``. The lock is a lease: the server ends the session once the record has said
nothing on it for ``netbounds.Bounds.lease_s`` (the writer speaks every ``record_writer.HEARTBEAT_S``), so
a lost node or a hung proxy, which leave the server's end of the session open, cannot keep a dead rollout
``running``. Registering a rollout's tenants happens under a transaction lock, so of two rollouts over the
same tenants the second always sees the first and refuses, naming it.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time

from ..database.session.connection import leased, open_connection
from ..database.session.transient import is_transient
from ..errors import GrapevineError, UsageError
from ..masking import known_secrets, mask
from . import rollout as fleet_rollout
from .backoff import retried
from .record_sql import (DONE, FAILED, HALTED, INTERRUPTED, LOCK_CLASS, OK, RUNNING, ddl_sql, joined, live_sql,
                         overlapping_sql, results_sql, state_sql)
from .record_writer import BatchWriter
from .resuming import Resumed, reconciled

# How long the end of a run waits for a restarting control server to write the record. Only a transient failure
# is waited out: a control database that answers with a refusal for good (a rotated password, a dropped database)
# ends the wait at its first answer.
_RECONNECT_S = 30.0
# The record's session commits without waiting for the WAL flush (set with the lease's settings): two of its commits
# come before the first tenant and one after the last, about 8 ms each on a durable server here. Safe: a commit is
# visible to every session at once, so the refusal of a second rollout holds; a control server that crashes may lose
# the record's last fraction of a second, and the rollout then reads as interrupted (or is gone), so a resume or a new
# run applies to each tenant what its own ledger says is pending: nothing twice.
_SESSION = [("synchronous_commit", "off")]


class Conflict(UsageError):
    """Another live rollout runs over some of the same tenants."""


def _refuse(other) -> None:
    if other is not None:
        raise Conflict(f"rollout {other[0]} (pid {other[1]} on {other[2]}) is running over some of"
                       " these tenants: wait for it, or resume it when it stops")


class Recorder:
    """One rollout's record, on a control connection of its own that holds the rollout's lock."""

    def __init__(self, raw, tables, rollout_id: int, resumed: Resumed | None = None, spec=None):
        self.raw, self.tables, self.id, self.resumed, self.spec = raw, tables, rollout_id, resumed, spec
        self._writer = BatchWriter(self._written)
        self._backend = raw.get_backend_pid()  # the session holding the rollout's lock
        self.caught_up = False  # set once every result and the final state are written
        self._mutex, self._closed = threading.Lock(), False
        self._wave: dict[str, int] = {}
        self._secrets = known_secrets()  # an error text is stored masked, as it would be printed
        self._others = True  # another rollout may be running (start knows better)

    @property
    def connection(self):
        """The record's control connection, idle until the tenants are planned: the tenants are read on it
        (``targets.resolve(connection=...)``), so a rollout opens no second connection to control."""
        return self.raw

    @classmethod
    def start(cls, spec, tables, *, options: dict, heads: dict, command: str, secrets=()) -> Recorder:
        raw = _open(spec)
        try:
            with raw.cursor() as cursor:
                cursor.execute(  # one round trip: the tables on first use, the row, its lock
                    f"{ddl_sql(tables)}; WITH r AS (INSERT INTO {tables.rollouts}"
                    " (state, started_by, host, pid, command, heads, options)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id)"
                    f" SELECT id, pg_catalog.pg_advisory_lock({LOCK_CLASS}, id::int4) IS NULL,"
                    f" EXISTS (SELECT 1 FROM {tables.rollouts} x WHERE x.state = '{RUNNING}' AND {live_sql('x')}) FROM r",
                    (RUNNING, _user(), socket.gethostname(), os.getpid(), mask(command, [s for s in secrets if s]),
                     json.dumps(heads), json.dumps(options)))
                rollout_id, _, others = cursor.fetchone()
                recorder = cls(raw, tables, rollout_id, spec=spec)
                recorder._others = others
                return recorder
        except BaseException:
            raw.close()
            raise

    @classmethod
    def resume(cls, spec, tables, rollout_id: int | None, given: dict | None = None) -> Recorder:
        """The rollout ``rollout_id`` (None: the latest not done), locked, with what is left of it; ``given``:
        the options given to the resume (``resuming.reconciled``), refused before anything is written."""
        raw = _open(spec)
        try:
            with raw.cursor() as cursor:
                cursor.execute(ddl_sql(tables))
                which = "r.id = %s" if rollout_id is not None else f"{state_sql('r')} <> '{DONE}'"
                cursor.execute(f"SELECT r.id, {state_sql('r')}, r.options, r.waves, r.pid, r.host FROM {tables.rollouts} r"
                               f" WHERE {which} ORDER BY r.id DESC LIMIT 1", (rollout_id,) if rollout_id else None)
                row = cursor.fetchone()
                if row is None:
                    raise UsageError(f"no rollout {rollout_id} in the record" if rollout_id is not None
                                     else "no rollout to resume: every recorded rollout is done")
                found, state, options, waves, pid, host = row
                if state == DONE:
                    raise UsageError(f"rollout {found} is done: nothing to resume")
                cursor.execute(f"SELECT pg_catalog.pg_try_advisory_lock({LOCK_CLASS}, %s::int4)", (found,))
                if state == RUNNING or not cursor.fetchone()[0]:
                    raise Conflict(f"rollout {found} is running (pid {pid} on {host}): wait for it to end")
                options = reconciled(found, options, given or {})
                cursor.execute(f"SELECT tenant_id, wave FROM {tables.rollout_tenants} WHERE rollout_id = %s"
                               f" AND outcome <> '{OK}' ORDER BY wave, position", (found,))
                left = cursor.fetchall()
                cursor.execute(f"UPDATE {tables.rollouts} SET state = '{RUNNING}', ended_at = NULL, halt = NULL,"
                               " pid = %s, host = %s, options = %s WHERE id = %s",
                               (os.getpid(), socket.gethostname(), json.dumps(options), found))
            resumed = Resumed(found, options, tuple(t for t, _ in left), tuple(w for _, w in left), waves or {},
                              planned=waves is not None)
            return cls(raw, tables, found, resumed, spec=spec)
        except BaseException:
            raw.close()
            raise

    def before_control(self, tenants):
        """Refuse before control is migrated if a live rollout runs over any of the tenants as listed now
        (``tenants()``; a resumed rollout's: its own), so a refused rollout writes nothing anywhere. Returns
        what gives the rollout its tenants: the list read here, so the tenants query runs once per rollout."""
        listed = None
        if self.resumed is not None and self.resumed.planned:
            ids = list(self.resumed.tenants)
        elif not self._others:
            return tenants  # no other rollout was running when this one started: nothing to refuse
        else:
            try:
                listed = tenants()
            except GrapevineError:
                return tenants  # the query may need control's files: read and checked again after them
            ids = [t.tenant_id for t in listed if t.tenant_id and not t.problem]
        with self._mutex, self.raw.cursor() as cursor:
            cursor.execute(overlapping_sql(self.tables), (self.id, ids))
            _refuse(cursor.fetchone())
        return tenants if listed is None else (lambda: listed)

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
        """The refusal check and (unless a resumed rollout has them) the tenants' rows and waves: one round trip,
        one transaction (a query of several statements is one). Its first statement takes the lock every start
        takes and the check's snapshot comes after it, so of two rollouts one always sees the other's tenants."""
        r, t = self.tables.rollouts, self.tables.rollout_tenants
        lock = f"SELECT pg_catalog.pg_advisory_xact_lock({LOCK_CLASS}, 0); "
        with self.raw.cursor() as cursor:
            if self.resumed is not None and self.resumed.planned:
                cursor.execute(lock + overlapping_sql(self.tables), (self.id, ids))
            else:  # written only if nobody is refused: the refused rollout's row is discarded
                gates = {str(w.number): [w.gated, w.canary] for w in plan.waves}
                cursor.execute(lock + f"WITH other AS ({overlapping_sql(self.tables)}),"
                               f" tenants AS (INSERT INTO {t} (rollout_id, tenant_id, position, wave)"
                               " SELECT %s, u.tenant, u.position, u.wave"
                               " FROM unnest(%s::text[], %s::int[], %s::int[]) AS u(tenant, position, wave)"
                               " WHERE NOT EXISTS (SELECT FROM other)),"
                               f" waves AS (UPDATE {r} SET waves = %s WHERE id = %s AND NOT EXISTS (SELECT FROM other))"
                               " SELECT * FROM other",
                               (self.id, ids, self.id, ids, list(range(len(ids))), [self._wave[i] for i in ids],
                                json.dumps(gates), self.id))
            _refuse(cursor.fetchone())

    def result(self, result) -> None:
        """Hand the result to the writer thread: the fan-out never waits for the control database."""
        tenant = result.target.tenant_id
        if tenant not in self._wave or (result.skipped and result.ok):  # unplanned, or never started
            return
        error = mask(result.error, self._secrets) if result.error else None
        self._writer.add((tenant, OK if result.ok else FAILED, max(result.attempts, 1),
                          round(result.seconds * 1000), error, result.after))

    def hold(self) -> None:
        """From now on the writer speaks on the record's connection even with nothing to write: its lease."""
        self._writer.start()

    def _written(self, rows: list[tuple]) -> bool:
        """One batch (none: the lease's heartbeat), on the writer thread; on a lost connection (a restarting
        server, a silent network) False, and the writer tries again later on a new connection."""
        with self._mutex:  # the main thread's statements (the tenants' check and plan) are never interleaved
            if self._closed or not self._reconnected(0.0):
                return False
            try:
                self._write(rows)
            except Exception:  # noqa: BLE001 - lost with the server
                self._drop_connection()
                return False
            return True

    def _reconnected(self, wait_s: float) -> bool:
        """True with a live connection holding the rollout's lock; reconnects (waiting up to ``wait_s`` while the
        failures are transient: a restart, a full server, no answer)."""
        if self.raw is not None and not self.raw.closed:
            return True
        if self.spec is None:
            return False
        try:
            self.raw = retried(self._relocked, window_s=wait_s, again=is_transient)
        except Exception:  # noqa: BLE001 - not back yet
            return False
        return self.raw is not None

    def _relocked(self):
        """A new connection holding the rollout's lock again, or None where another session holds it (a
        resume elsewhere). Our own lost session, whose backend a silent network left behind, is ended."""
        raw = _open(self.spec)
        try:
            with raw.cursor() as cursor:
                cursor.execute(f"SELECT pg_catalog.pg_try_advisory_lock({LOCK_CLASS}, %s::int4) OR ("
                               f" EXISTS (SELECT 1 FROM pg_catalog.pg_locks WHERE pid = %s AND classid = {LOCK_CLASS}"
                               " AND objid = %s::oid AND objsubid = 2 AND locktype = 'advisory')"
                               " AND pg_catalog.pg_terminate_backend(%s, 5000)"
                               f" AND pg_catalog.pg_try_advisory_lock({LOCK_CLASS}, %s::int4))",
                               (self.id, self._backend, self.id, self._backend, self.id))
                if not cursor.fetchone()[0]:
                    raw.close()
                    return None
            self._backend = raw.get_backend_pid()
            return raw
        except BaseException:
            raw.close()
            raise

    def _drop_connection(self) -> None:
        try:
            self.raw.close()
        except Exception:  # noqa: BLE001 - already gone
            pass

    def _write(self, rows: list[tuple]) -> None:
        with self.raw.cursor() as cursor:
            cursor.execute(*(results_sql(self.tables, self.id, rows) if rows else ("SELECT 1", ())))

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
        """Write what is left and the state, waiting up to ``_RECONNECT_S`` for the control database
        (``caught_up`` says whether it could). A control server that stays away leaves the row ``running``
        with no lock held, which reads as ``interrupted``: true, and resumable. Once only (see ``on_stopped``)."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + _RECONNECT_S
        left = self._writer.close(_RECONNECT_S)
        try:
            if left is None:  # the writer is still waiting on the network: its rows are its own
                return
            with self._mutex:
                if not self._reconnected(max(0.0, deadline - time.monotonic())):
                    return
                with self.raw.cursor() as cursor:  # the last results and the state: one round trip
                    ended = (f"UPDATE {self.tables.rollouts} SET state = %s, ended_at = now(), halt = %s"
                             " WHERE id = %s", (state, why, self.id))
                    cursor.execute(*joined(results_sql(self.tables, self.id, left), ended) if left else ended)
            self.caught_up = True
        except Exception:  # noqa: BLE001 - the record never fails the run it records
            pass
        finally:
            self._drop_connection()  # the lock goes with the session

    def discard(self) -> None:
        """A rollout refused before it started any tenant leaves no record."""
        self._closed = True  # the writer's heartbeat ends: it must not take the lock again
        self._writer.close(_RECONNECT_S)
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
    stopped = kw.get("should_stop", lambda: False)
    try:
        if control is not None and tenants is not None:  # control's files wait until no rollout is refused
            tenants = recorder.before_control(tenants)
        recorder.hold()
        outcome = fleet_rollout.roll_out(control, tenants, job, planner=planner, on_plan=recorder.planned,
                                         on_result=recorder.result,
                                         on_stopped=lambda done: recorder.finish(done, stopped()), **kw)
    except Conflict:
        recorder.discard()
        raise
    except BaseException as err:
        recorder.close(HALTED, mask(str(err))[:500] or type(err).__name__)
        raise
    recorder.finish(outcome, stopped())  # when control failed: no tenant ran, so on_stopped was not heard
    outcome.record, outcome.record_behind = recorder.id, not recorder.caught_up
    return outcome


def _open(spec):
    """The record's connection, its watchdog thread started with SIGINT and SIGTERM blocked: it outlives the
    prompt-time handling and must never be the thread a Ctrl-C lands on (see ``interrupts.graceful``)."""
    import signal

    from ..database.session.interrupts import SIGNALS

    if threading.current_thread() is not threading.main_thread():
        raw = open_connection(spec)
    else:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        try:
            raw = open_connection(spec)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return leased(raw, also=_SESSION)


def _user() -> str:
    import getpass  # lazy: it loads termios, and only a new rollout asks who runs it

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
