"""Tells a long statement from a lost answer, and closes a connection whose answer is lost.

Every connection the tool opens is a ``WatchedConnection``: each round trip (``execute``,
``commit``, ...) marks it busy.  A thread per connection wakes up when a round trip has
waited ``probe_after_s`` and asks the server, on a connection of its own (non-blocking, each
answer bounded by ``probe_timeout_s``), what our backend is doing:

* ``active``: the statement really runs; wait on, however long it takes.
* ``idle`` / ``idle in transaction`` twice, with the same ``state_change``, while we still
  wait: the server answered and the answer never arrived.  Lost.
* gone (the pid we saw has no session any more), or no answer at all (the second connection hangs
  or is refused, like ours) for ``silence_s`` (at once after Ctrl-C/SIGTERM: ``hurry``): lost.
* any answer that does not show our backend (no slot left for the probe, 53300; no permission):
  the server is alive; never cut on that.

The probe's connection is opened only once a round trip has waited ``probe_after_s`` and closed
as soon as that round trip ends: no slot of a role's or database's ``CONNECTION LIMIT`` is held
for the watchdog between slow statements, and a run whose role has no slot to spare loses
nothing (a refusal for want of a slot is an answer).

While the session has a ``lock_timeout``, the first question comes after half of it, and again at
that interval: a backend waiting for a lock is answered with who blocks it (``pg_blocking_pids``),
which a lock-timeout error then names (``blockers``).

Lost: the backend is terminated when the server can be reached (its locks go at once), the
socket is shut down (the waiting ``execute`` returns), and the round trip raises ``AnswerLost``,
a connection error that retries and breakers treat as transient.
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading
import time
from contextlib import contextmanager, suppress

import psycopg2
import psycopg2.extensions

from .netbounds import Bounds, with_keepalives
from .transient import LOST_MARKER  # a retry may help: the answer was lost, the connection closed

PROBE_APPLICATION_NAME = "grapevine-migrations watchdog"
HURRIED_PROBE_TIMEOUT_S = 2.0  # after Ctrl-C/SIGTERM: the process must be gone within 10 s

_hurry = threading.Event()  # set by a signal: decide on silence now


def hurry(on: bool = True) -> None:
    """After Ctrl-C/SIGTERM a silent connection is closed after one unanswered probe (or again: not)."""
    _hurry.set() if on else _hurry.clear()


def _load_libpq():
    """The libpq psycopg2 itself uses (its ``pgconn_ptr`` belongs to that copy), or None."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "/libpq" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        lib.PQgetCancel.restype, lib.PQgetCancel.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
        lib.PQcancel.restype, lib.PQcancel.argtypes = ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
        lib.PQfreeCancel.restype, lib.PQfreeCancel.argtypes = None, [ctypes.c_void_p]
        return lib
    return None


_LIBPQ: list = []  # loaded on the first cancel: status and no-op runs never pay for it


def _libpq():
    if not _LIBPQ:
        _LIBPQ.append(_load_libpq())
    return _LIBPQ[0]


class AnswerLost(psycopg2.OperationalError):
    """The round trip's answer will never come; the connection was closed."""


class WatchedCursor(psycopg2.extensions.cursor):
    def execute(self, query, vars=None):
        with _round_trip(self.connection):
            return super().execute(query, vars)

    def executemany(self, query, vars_list):
        with _round_trip(self.connection):
            return super().executemany(query, vars_list)

    def copy_expert(self, sql, file, size=8192):
        with _round_trip(self.connection):
            return super().copy_expert(sql, file, size)


class WatchedConnection(psycopg2.extensions.connection):
    """A psycopg2 connection whose round trips a ``Watch`` can see (and end, when lost)."""

    watch: Watch | None = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cursor_factory = WatchedCursor

    def commit(self):
        with _round_trip(self):
            return super().commit()

    def rollback(self):
        with _round_trip(self):
            return super().rollback()

    def close(self):
        watch = self.watch
        super().close()
        if watch is not None:
            watch.stop()


@contextmanager
def _round_trip(connection):
    watch = getattr(connection, "watch", None)
    if watch is None:
        yield
        return
    watch.begin()
    try:
        yield
    except psycopg2.Error as err:
        if watch.lost:
            raise AnswerLost(f"{LOST_MARKER}: {watch.lost}") from err
        raise
    finally:
        watch.end()


class Watch:
    """The watchdog of one connection: a thread that sleeps unless a round trip is slow."""

    def __init__(self, connection: WatchedConnection, connect_kwargs: dict, bounds: Bounds):
        self.connection = connection
        self.bounds = bounds
        self.pid = connection.info.backend_pid
        self.lost: str | None = None
        self.trip = 0
        self.busy_since: float | None = None
        self.lock_timeout_s = 0.0  # the session's lock_timeout (SessionPolicy): a lock wait is sampled within it
        self.blockers: str | None = None  # who blocked this round trip's lock wait, when the probe saw one
        self._seen_pid = False  # the pid was once in pg_stat_activity: "gone" then means gone
        self._probe = _Probe(connect_kwargs, bounds.probe_timeout_s)
        self._stopped = threading.Event()
        self._wake = threading.Event()
        self._watching = False  # the thread is watching a slow round trip (end() must wake it)
        self._thread = threading.Thread(target=self._run, name=f"watch {connection.info.dbname}", daemon=True)
        connection.watch = self
        self._thread.start()

    def send_cancel(self) -> None:
        """Ask the server to cancel the running statement (blocks this thread, never the GIL)."""
        libpq = _libpq()
        if libpq is None or self.connection.closed:
            return  # no libpq to call: the caller closes the socket when its bound passes
        # PQgetCancel reads only what the connection's start-up fixed (address, pid, key): safe
        # while another thread waits in a query on it, as psycopg2's own cancel relies on
        handle = libpq.PQgetCancel(self.connection.pgconn_ptr)
        if handle:
            libpq.PQcancel(handle, ctypes.create_string_buffer(256), 256)
            libpq.PQfreeCancel(handle)

    def begin(self) -> None:
        self.trip += 1
        self.blockers = None
        self.busy_since = time.monotonic()

    def end(self) -> None:
        self.busy_since = None
        if self._watching:  # it lets go of its probe connection now (an idle thread holds none: not woken)
            self._wake.set()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()

    def close_socket(self, reason: str) -> None:
        """End the connection under a waiting round trip: it returns at once with ``AnswerLost``."""
        self.lost = self.lost or reason
        try:
            fd = os.dup(self.connection.fileno())
        except (OSError, psycopg2.Error):
            return  # already closed
        sock = socket.socket(fileno=fd)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        finally:
            sock.close()

    # ---- the thread ----
    def _run(self) -> None:
        try:
            while not self._stopped.is_set():
                since = self.busy_since
                wait = self.bounds.probe_after_s if since is None else since + self._patience() - time.monotonic()
                if since is not None and wait <= 0:
                    self._watching = True  # before _watch reads busy_since (end() clears it, then reads this)
                    try:
                        self._watch(self.trip)
                    except Exception:  # noqa: BLE001 - a watchdog that dies would leave the wait unbounded
                        self._stopped.wait(self.bounds.probe_timeout_s)
                    # the probe's connection lives only while a slow round trip does: it takes a slot
                    # of the role's (and database's) connection limit from the run and its neighbours
                    self._probe.close()
                    self._watching = False
                    continue
                self._wake.wait(min(max(wait, 0.05), 0.5))
                self._wake.clear()
        finally:
            self._probe.close()

    def _patience(self) -> float:
        if _hurry.is_set():
            return 1.0
        if self.lock_timeout_s > 0:
            # a lock wait ends in an error after lock_timeout: asked at least twice within it, the
            # probe sees it and who blocks it (pg_blocking_pids), for the error to name them
            return max(0.2, min(self.bounds.probe_after_s, self.lock_timeout_s / 2))
        return self.bounds.probe_after_s

    def _still_waiting(self, trip: int) -> bool:
        return self.trip == trip and self.busy_since is not None and not self._stopped.is_set()

    def _watch(self, trip: int) -> None:
        """Probe until this round trip ends or its answer is found lost."""
        heard = time.monotonic()  # the last sign of life
        idle_seen = None
        while self._still_waiting(trip):
            kind, detail = self._probe.ask(self.pid, hurried=_hurry.is_set())
            if not self._still_waiting(trip):
                return
            now = time.monotonic()
            pause = self.bounds.probe_timeout_s
            if kind == "active":
                self._seen_pid, heard, idle_seen = True, now, None
                self.blockers = self._probe.blockers or self.blockers
                pause = min(pause, self._patience())
            elif kind == "idle":
                self._seen_pid, heard = True, now
                if idle_seen == detail:
                    return self._lose("the server finished the statement and waits for us, but its answer never"
                                      " arrived; ended the session and closed the connection", terminate=True)
                idle_seen, pause = detail, 1.0
            elif kind == "gone" and self._seen_pid:
                return self._lose("the server no longer has this connection's session; closed the connection")
            elif kind == "silent":
                if now - heard >= self.bounds.silence_s or _hurry.is_set():
                    waited = now - (self.busy_since or now)
                    return self._lose(f"no answer for {waited:.0f}s, and a second connection got none either;"
                                      " closed the connection")
                pause = 0.5  # the probe itself took its timeout
            else:  # the server answered without showing our backend: alive, never cut on that
                heard = now
            self._wake.clear()
            if not self._still_waiting(trip):
                return
            self._wake.wait(pause if not _hurry.is_set() else min(pause, 0.5))  # end() and stop() wake it
            if self._stopped.is_set():
                return

    def _lose(self, reason: str, *, terminate: bool = False) -> None:
        if terminate:
            self._probe.terminate(self.pid)  # the server frees the session's locks now, not at its timeout
        self.close_socket(reason)


# A session as an error names the one that blocked it: pid, application_name, state and the first
# line of its query (at most 200 characters); ``b`` is its pg_stat_activity row (in SQL with parameters).
BLOCKER_SQL = ("string_agg(format('pid %%s (%%s, %%s): %%s', b.pid, coalesce(nullif(b.application_name, ''), '-'),"
               " coalesce(b.state, '?'), left(split_part(b.query, E'\\n', 1), 200)), '; ')")

# Our backend's state and, while it waits for a lock, each session blocking it (pg_blocking_pids).
_ASK_SQL = f"""
SELECT a.state, a.state_change,
       CASE WHEN a.wait_event_type = 'Lock' THEN
         (SELECT {BLOCKER_SQL}
            FROM pg_catalog.pg_stat_activity b WHERE b.pid = ANY (pg_catalog.pg_blocking_pids(a.pid)))
       END
  FROM pg_catalog.pg_stat_activity a WHERE a.pid = %s"""


class _Probe:
    """The watchdog's own connection, asynchronous so every answer is waited for with a bound."""

    def __init__(self, connect_kwargs: dict, timeout_s: float):
        kwargs = dict(connect_kwargs)
        kwargs["application_name"] = PROBE_APPLICATION_NAME
        kwargs.pop("connect_timeout", None)  # bounded here instead
        self.kwargs = with_keepalives(kwargs)
        self.timeout_s = timeout_s
        self.connection = None
        self.blockers: str | None = None

    def ask(self, pid: int, *, hurried: bool = False) -> tuple[str, object]:
        """("active"|"idle"|"gone"|"silent"|"answered", state_change); ``hurried``: a shorter bound.

        A backend waiting for a lock also leaves who blocks it in ``blockers``."""
        self.blockers = None
        try:
            row = self._query(_ASK_SQL, (pid,), timeout_s=min(self.timeout_s, HURRIED_PROBE_TIMEOUT_S) if hurried else None)
        except TimeoutError:
            self.close()
            return "silent", None
        except psycopg2.Error as err:
            self.close()
            spoke = getattr(err, "pgcode", None) or "FATAL" in str(err)
            return ("answered" if spoke else "silent"), None
        if row is None:
            return "gone", None
        state, changed, self.blockers = row
        if state in ("active", "fastpath function call"):
            return "active", changed
        if state in ("idle", "idle in transaction", "idle in transaction (aborted)"):
            return "idle", changed
        return "answered", None  # NULL: not allowed to see it

    def terminate(self, pid: int) -> None:
        try:
            self._query("SELECT pg_catalog.pg_terminate_backend(%s)", (pid,))
        except (TimeoutError, psycopg2.Error):
            self.close()

    def _query(self, sql: str, params, timeout_s: float | None = None) -> tuple | None:
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        if self.connection is None:
            self.connection = psycopg2.connect(async_=True, **self.kwargs)
            _wait(self.connection, deadline)
        cursor = self.connection.cursor()
        cursor.execute(sql, params)
        _wait(self.connection, deadline)
        return cursor.fetchone()

    def close(self) -> None:
        if self.connection is not None:
            with suppress(psycopg2.Error):
                self.connection.close()
            self.connection = None


def _wait(connection, deadline: float) -> None:
    """Drive an asynchronous connection until its current operation is done, or raise TimeoutError."""
    import select

    while True:
        state = connection.poll()
        if state == psycopg2.extensions.POLL_OK:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        poller = select.poll()
        poller.register(connection.fileno(), select.POLLIN if state == psycopg2.extensions.POLL_READ else select.POLLOUT)
        poller.poll(remaining * 1000)


def cancel_bounded(connections: list, timeout_s: float) -> None:
    """Send each connection's cancel request; one unanswered after ``timeout_s`` has its socket closed.

    A cancel request opens a new connection to the server: on a silent path it would hang as
    the statement does, so it runs on a thread of its own and is abandoned there.  psycopg2's
    ``cancel()`` keeps the GIL while it waits (the whole process would hang with it), so the
    request goes through libpq's ``PQcancel`` by ctypes, which lets go of the GIL.
    """
    threads = []
    for connection in connections:
        thread = threading.Thread(target=_cancel, args=(connection,), name="cancel", daemon=True)
        thread.start()
        threads.append((connection, thread))
    deadline = time.monotonic() + timeout_s
    for connection, thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
        watch = getattr(connection, "watch", None)
        if thread.is_alive() and watch is not None and not connection.closed:
            watch.close_socket(f"cancelled; the cancel request got no answer in {timeout_s:g}s, so the connection"
                               " was closed")


def _cancel(connection) -> None:
    watch = getattr(connection, "watch", None)
    if watch is not None:
        watch.send_cancel()
        return
    with suppress(Exception):  # already closed or broken: nothing left to cancel
        connection.cancel()
