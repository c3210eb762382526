"""Ctrl-C (SIGINT) and SIGTERM during a fan-out: stop starting, then cancel, always report.

The first signal stops new databases from starting and says so at once; databases already
running finish (or roll back) on their own.  A second signal cancels the statements still
running (psycopg2 ``connection.cancel()``: the server rolls their transaction back).  Either
way the command still prints its per-database summary and exits 130.

Signal handlers run on the main thread, so the work must run on worker threads while the
main thread waits (``fanout.run_all`` does exactly that).
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

EXIT_INTERRUPTED = 130


class Interrupts:
    """What the signal handler has seen, and the connections it may have to cancel."""

    def __init__(self) -> None:
        self.count = 0
        self._connections: list = []
        self._lock = threading.Lock()

    @property
    def stopping(self) -> bool:
        return self.count > 0

    @property
    def cancelling(self) -> bool:
        return self.count > 1

    def watch(self, connection) -> None:
        """A connection whose running statement a second signal should cancel."""
        with self._lock:
            self._connections = [c for c in self._connections if not c.closed]
            self._connections.append(connection)
        if self.cancelling:
            connection.cancel()

    def handle(self, signum, _frame) -> None:
        self.count += 1
        name = signal.Signals(signum).name
        if self.count == 1:
            _say(f"{name}: not starting any more databases; waiting for the running ones to finish"
                 " (press Ctrl-C again to cancel them)")
            return
        _say(f"{name}: cancelling the running statements (their transactions roll back)")
        with self._lock:
            running = [c for c in self._connections if not c.closed]
        for connection in running:
            try:
                connection.cancel()
            except Exception:  # already closed or broken: nothing left to cancel  # noqa: BLE001
                pass


_active: Interrupts | None = None


def _say(text: str) -> None:
    from .report import Output

    Output().info(text)


def watch(connection) -> None:
    """Register a freshly opened connection with the active handler, if any (a no-op otherwise)."""
    if _active is not None:
        _active.watch(connection)


def stopping() -> bool:
    return _active is not None and _active.stopping


def cancelling() -> bool:
    """A second signal came: statements are being cancelled, so nothing should be re-run."""
    return _active is not None and _active.cancelling


@contextmanager
def graceful():
    """Install the two-stage handler for SIGINT and SIGTERM for the duration of a fan-out."""
    global _active
    if threading.current_thread() is not threading.main_thread():
        yield Interrupts()
        return
    state = Interrupts()
    previous = {sig: signal.signal(sig, state.handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    _active = state
    try:
        yield state
    finally:
        _active = None
        for sig, handler in previous.items():
            signal.signal(sig, handler)

