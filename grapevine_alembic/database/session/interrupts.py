"""Ctrl-C (SIGINT) and SIGTERM during a fan-out: stop starting, then cancel, always report.

The first signal stops new databases from starting and says so at once (through the ``say`` callback
the command line hands to ``graceful``: this module imports no output); databases already
running finish (or roll back) on their own, and none is retried.  A second signal cancels the
statements still running (a cancel request: the server rolls their transaction back).  Either
way the command still prints its per-database summary and exits 130.

Whatever the network does: after the first signal the watchdog (``watchdog.hurry``) closes a
connection whose server does not answer its probe (a statement the server shows as running
still finishes), and a cancel request unanswered within ``CANCEL_TIMEOUT_S`` has its
connection's socket closed instead, so a silent network never keeps the process alive.

Why a thread of its own: a Python signal handler runs only on the main thread, and only once
that thread wakes up; while it sleeps in a lock wait (waiting for the workers), a signal the
kernel hands to a worker thread would wait unseen.  So during the fan-out both signals are
blocked in every thread (threads inherit the mask) and one thread takes them with ``sigwait``,
where printing and cancelling are ordinary code.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

EXIT_INTERRUPTED = 130
CANCEL_TIMEOUT_S = 2.0
SIGNALS = {signal.SIGINT, signal.SIGTERM}


class Interrupts:
    """What the signals have asked for, and the connections a second one cancels."""

    def __init__(self, say=None, *, cancel_first: bool = False) -> None:
        self.say = say or (lambda line: None)  # the CLI hands in its output: this layer prints nothing itself
        self.cancel_first = cancel_first  # nothing worth finishing (a scratch build): the first signal cancels
        self.count = 0
        self.closing = False
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
            from . import watchdog

            watchdog.cancel_bounded([connection], CANCEL_TIMEOUT_S)

    def wait_for_signals(self) -> None:
        """The signal thread: take each SIGINT/SIGTERM as it comes, until the fan-out is over."""
        while True:
            signum = signal.sigwait(SIGNALS)
            if self.closing:
                return
            self.handle(signal.Signals(signum).name)

    def handle(self, name: str) -> None:
        from . import watchdog  # psycopg2 is loaded only once a signal comes

        self.count += 2 if self.cancel_first and not self.count else 1
        watchdog.hurry()
        if self.count == 1:
            self.say(f"{name}: not starting any more databases; waiting for the running ones to finish"
                          " (press Ctrl-C again to cancel them)")
            return
        self.say(f"{name}: cancelling the running statements (their transactions roll back)")
        with self._lock:
            running = [c for c in self._connections if not c.closed]
        watchdog.cancel_bounded(running, CANCEL_TIMEOUT_S)


_active: Interrupts | None = None


def watch(connection) -> None:
    """Register a freshly opened connection with the active fan-out, if any (a no-op otherwise)."""
    if _active is not None:
        _active.watch(connection)


def stopping() -> bool:
    return _active is not None and _active.stopping


def cancelling() -> bool:
    """A second signal came: statements are being cancelled, so nothing should be re-run."""
    return _active is not None and _active.cancelling


@contextmanager
def graceful(say=None, *, cancel_first: bool = False):
    """Take SIGINT and SIGTERM on a thread of their own for the duration of a fan-out; ``say`` prints a line."""
    global _active
    if threading.current_thread() is not threading.main_thread():
        yield Interrupts(say, cancel_first=cancel_first)
        return
    state = Interrupts(say, cancel_first=cancel_first)
    previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)  # threads started from here inherit it
    taker = threading.Thread(target=state.wait_for_signals, name="signals", daemon=True)
    _active = state
    taker.start()
    try:
        yield state
    finally:
        _active = None
        from . import watchdog

        watchdog.hurry(False)
        state.closing = True
        signal.pthread_kill(taker.ident, signal.SIGINT)  # wakes sigwait; ignored because closing
        taker.join()
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
