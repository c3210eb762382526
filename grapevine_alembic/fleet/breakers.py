"""A circuit breaker per PostgreSQL server, for one run: stop knocking on a server that does not answer.

A tenant whose connection fails with a server-level reason (refused, timeout, too many
clients, starting up or shutting down) even after its retries counts against its server;
a tenant that connects resets the count.  After ``TRIP_AFTER`` such tenants in a row the
server is down for the rest of the run: its tenants not yet started are skipped with
``server HOST:PORT unreachable: <last reason>``, and those waiting to retry give up.

A server restarting (it answered before, or says it is starting or stopping) is not counted
while its retry window runs (``retrying``): the window is the server's, from its first
restart-like failure until a connection to it opens again, so a server that never comes back
costs one window, not one per tenant.

A connect *timeout* is not retried until the server has answered once in this run: a
server that lets the connect timeout pass is hung or unreachable, not restarting (a
restart refuses quickly, and that is retried), and each retry would cost the full
timeout again.  That keeps a hung server with 1,000 tenants to about two timeouts.

Until a server has answered, the fan-out's per-server cap bounds the connection
attempts in flight to it (``fanout.run_all(group=..., max_per_group=...)``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

from ..database.session.connection import ConnectionFailed
from ..database.state.result import DatabaseResult

TRIP_AFTER = 3


@dataclass
class _Server:
    answered: bool = False
    streak: int = 0  # tenants in a row that could not connect
    down: str | None = None  # the last reason, once the breaker has tripped
    restarting_since: float | None = None  # its first restart-like failure since it last answered


class Breakers:
    """The state of every server of one run; shared by all fan-out threads."""

    def __init__(self, trip_after: int = TRIP_AFTER):
        self.trip_after = trip_after
        self._lock = threading.Lock()
        self._servers: dict[str, _Server] = {}

    def _get(self, server: str) -> _Server:
        return self._servers.setdefault(server, _Server())

    def down(self, server: str) -> str | None:
        """The last reason when ``server`` is down, else None."""
        with self._lock:
            return self._get(server).down

    def answered(self, target) -> None:
        """A connection to the target's server was opened (or refused by the server itself, e.g. no database)."""
        with self._lock:
            state = self._get(target.server)
            state.answered, state.streak, state.restarting_since = True, 0, None

    def has_answered(self, target) -> bool:
        """Whether the target's server has answered in this run (a refusal from it now is a restart)."""
        with self._lock:
            return self._get(target.server).answered

    def restart_began(self, target, now: float) -> float:
        """When the server's current restart began (now, if this is its first sign): its retry window's start."""
        with self._lock:
            state = self._get(target.server)
            if state.restarting_since is None:
                state.restarting_since = now
            return state.restarting_since

    def went_silent(self, target) -> None:
        """A connection to the server stopped answering mid-statement: its path is silent until it answers again."""
        with self._lock:
            self._get(target.server).answered = False

    def may_retry(self, target, err: BaseException) -> bool:
        """Whether a transient failure of this target may be retried, given its server's state."""
        with self._lock:
            state = self._get(target.server)
            if state.down:
                return False
            return not (isinstance(err, ConnectionFailed) and err.timed_out and not state.answered)

    def gave_up(self, target, err: BaseException) -> str | None:
        """Record a target's final failure; returns the reason when it counts against the server."""
        if not isinstance(err, ConnectionFailed) or err.reason is None:
            return None  # connected, then failed: the server answered
        if not err.unreachable:
            self.answered(target)  # the server said no (missing database, authentication)
            return None
        with self._lock:
            state = self._get(target.server)
            state.streak += 1
            if state.streak >= self.trip_after and state.down is None:
                state.down = err.reason
        return err.reason

    def cap(self, server: str, limit: int) -> int:
        """How many of the server's targets may run at once: ``limit``, or 1 while it is failing unproven."""
        with self._lock:
            state = self._get(server)
            return 1 if state.streak and not state.answered and not state.down else limit

    def guard(self, job: Callable, skipped: Callable):
        """``job`` for the fan-out, that skips (``skipped(target, message, reason)``) targets of a down server."""

        def guarded(target):
            reason = self.down(target.server)
            if reason is not None:
                return skipped(target, f"server {target.server} unreachable: {reason}", reason)
            return job(target)

        return guarded

    def summary(self) -> dict[str, str | None]:
        """server -> the reason it is down (None for servers that stayed up)."""
        with self._lock:
            return {server: state.down for server, state in self._servers.items()}


def skipped_unreachable(target, message: str, reason: str):
    """The result of a target never attempted because its server is down: not ok, skipped, named."""
    result = DatabaseResult(target, skipped=True, unreachable=reason)
    return result.fail(message)
