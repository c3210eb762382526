"""How far a fan-out has come, in a form a person can plan with: done/total, failures so far, the
rate, an ETA and the current wave.

At a terminal: rich's live bar (on the Output's terminal only, gone when the run ends).  Piped or in
CI: one plain line every ``interval()`` seconds on stderr (``412/1000 done, 1 failed, 38/s, ETA 15 s``),
no control characters, so a CI log or a Kubernetes Job's log shows the run while it goes.
"""

from __future__ import annotations

import os
import threading
import time

INTERVAL_VARIABLE = "GRAPEVINE_PROGRESS_INTERVAL"
DEFAULT_INTERVAL_S = 10.0


def interval() -> float:
    """Seconds between two plain progress lines (and metrics-file rewrites); tests shorten it."""
    try:
        value = float(os.environ.get(INTERVAL_VARIABLE, DEFAULT_INTERVAL_S))
    except ValueError:
        return DEFAULT_INTERVAL_S
    return value if value > 0 else DEFAULT_INTERVAL_S


class Tally:
    """done, failed, total and the clock: what every progress view is made of (thread-safe)."""

    def __init__(self, total: int):
        self.total, self.done, self.failed = total, 0, 0
        self.wave = ""
        self.started = time.monotonic()
        self.lock = threading.Lock()

    def count(self, result) -> None:
        with self.lock:
            self.done += 1
            self.failed += result is not None and not result.ok

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def eta(self) -> str:
        rate = self.rate()
        if not self.done or rate <= 0:
            return "unknown"
        return duration_text((self.total - self.done) / rate)

    def line(self) -> str:
        wave = f"{self.wave}: " if self.wave else ""
        return (f"{wave}{self.done}/{self.total} done, {self.failed} failed, {rate_text(self.rate())}/s,"
                f" ETA {self.eta()}")


def rate_text(rate: float) -> str:
    return f"{rate:.0f}" if rate >= 10 else f"{rate:.1f}"


def duration_text(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


class Progress:
    """A context manager and the callable a fan-out advances per result; ``wave`` may be set any time."""

    def __init__(self, say, total: int, label: str, *, interactive: bool):
        self.tally = Tally(total)
        self.label, self.say = label, say
        self.bar = self.ticker = None
        self.stopped = threading.Event()
        if total <= 1:
            return  # one database: its own line says all there is
        if interactive:
            # lazy: rich loads only for a run at a terminal
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn

            self.bar = RichProgress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[failed]} failed  {task.fields[rate]}/s  ETA {task.fields[eta]}"),
                transient=True,
            )
            self.task = self.bar.add_task(label, total=total, failed=0, rate="0.0", eta="unknown")
        else:
            self.ticker = threading.Thread(target=self._tick, name="progress", daemon=True)

    @property
    def wave(self) -> str:
        return self.tally.wave

    @wave.setter
    def wave(self, text: str) -> None:
        self.tally.wave = text
        if self.bar:
            self.bar.update(self.task, description=f"{self.label} {text}")

    def __enter__(self):
        self.tally.started = time.monotonic()
        if self.bar:
            self.bar.start()
        if self.ticker:
            self.ticker.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        if self.bar:
            self.bar.stop()
        if self.ticker:
            self.ticker.join()

    def advance(self, result=None) -> None:
        tally = self.tally
        tally.count(result)
        if self.bar:
            self.bar.update(self.task, advance=1, failed=tally.failed, rate=rate_text(tally.rate()), eta=tally.eta())

    __call__ = advance

    def _tick(self) -> None:
        every = interval()
        while not self.stopped.wait(every):
            self.say(self.tally.line())
