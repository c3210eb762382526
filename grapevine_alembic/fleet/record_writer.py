"""The rollout record's results, written on a thread of their own: a slow or silent control database
never holds up the fan-out that hands them over (see ``record``)."""

from __future__ import annotations

import threading
import time
from typing import Callable

FLUSH_ROWS, FLUSH_S = 200, 1.0  # a batch is written when it is this big or this old
MOST_S = 8.0  # the longest pause between two tries of a control database that does not answer
# With nothing to write, an empty batch this often: the record's session is a lease the server ends when the
# tool says nothing for netbounds.Bounds.lease_s (10 s at the least), so a live rollout keeps its lock.
HEARTBEAT_S = 2.0


class BatchWriter:
    """Rows given to ``add`` are written by ``write(rows)`` (False or an error: not written) on a thread
    started by ``start`` or with the first row, in batches of ``FLUSH_ROWS`` or every ``FLUSH_S``, and an
    empty batch every ``HEARTBEAT_S`` when there is nothing to write. Rows not written stay for the next try,
    which comes after a pause doubling up to ``MOST_S``: a control database that does not answer costs one
    connection attempt at a time, never one per batch."""

    def __init__(self, write: Callable[[list], bool]):
        self._write = write
        self._rows: list = []
        self._wake = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self._wake:
            self._started()

    def add(self, row) -> None:
        with self._wake:
            self._rows.append(row)
            if not self._started() and len(self._rows) >= FLUSH_ROWS:
                self._wake.notify()

    def _started(self) -> bool:
        """Start the thread unless it runs (or has stopped); True if it was started now."""
        if self._thread is not None or self._closing:
            return False
        self._thread = threading.Thread(target=self._run, name="grapevine-record", daemon=True)
        self._thread.start()
        return True

    def close(self, wait_s: float) -> list | None:
        """The rows left unwritten once the thread has stopped (it finishes a write under way, within
        ``wait_s``), for the caller to write with its last statement; None: it is still waiting on the
        network, and they stay its own."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(wait_s)
            if self._thread.is_alive():
                return None
        return self._rows

    def _run(self) -> None:
        pause, written, spoke = FLUSH_S, True, time.monotonic()
        while True:
            with self._wake:  # after a failed try a full batch waits for the pause too
                self._wake.wait_for(lambda: self._closing or (written and len(self._rows) >= FLUSH_ROWS),
                                    timeout=pause)
                if self._closing:  # what is left goes with the caller's last statement
                    return
                rows, self._rows = self._rows, []
            due = bool(rows) or time.monotonic() - spoke >= HEARTBEAT_S
            written = not due or self._tried(rows)
            if not written:
                with self._wake:
                    self._rows[:0] = rows
            elif due:
                spoke = time.monotonic()
            pause = FLUSH_S if written else min(pause * 2, MOST_S)

    def _tried(self, rows: list) -> bool:
        try:
            return bool(self._write(rows))
        except Exception:  # noqa: BLE001 - the record never fails the run: tried again later
            return False
