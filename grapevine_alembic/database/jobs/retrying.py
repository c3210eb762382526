"""Whether, and when, one database's failed attempt is run again.

Two budgets.  A server that is restarting or failing over (connection refused, "the database
system is starting up / shutting down / in recovery", an admin shutdown ``57P01``, a connection
lost mid-file before its commit) is waited out: retried with backoff for as long as the retry
window (``--retry-window``, default 60 s) since that database's first such failure, whatever
the number of attempts (with a circuit breaker, the window is the server's: see ``breakers``).  Every other transient error (a lock timeout, a deadlock, a connect
timeout, an answer lost on a silent network) has ``--retries`` attempts.  A connection refused
for want of a slot (53300: too many clients, or too many connections for the role or the
database, or only reserved slots left) is waited for within the retry window too, as other
sessions end.

A refusal counts as a restart only from a server that answered before in this run or that
says it is starting or stopping: a server refusing from the start is dead or misplaced, and its
circuit breaker (``breakers``) should learn it quickly.  Nothing is retried once a file partly
committed (the error is then not transient) or once Ctrl-C/SIGTERM asked the run to stop.
"""

from __future__ import annotations

import random
import time
import traceback
from typing import Any, Protocol

from ..session import interrupts
from ..session.connection import ConnectionFailed, describe_error
from ..session.transient import LOST_MARKER, is_driver_error, is_restart, is_transient, server_says_restarting
from ..state.result import DatabaseResult
from ..state.target import Target
from ...errors import GrapevineError

class RetryOptions(Protocol):
    """What a retry reads of a run's options (``runner.RunOptions`` has it; runner imports this module)."""

    retries: int
    retry_window_s: float
    debug: bool
    servers: Any  # fleet/breakers.Breakers (a layer above), or None
    on_retry: Any  # callable(database, attempt, error, delay_s), or None
    word_fix: Any  # callable(fix, target) -> str: the way in's words for an error's ``errors.Fix``, or None


def backoff(attempt: int) -> float:
    return min(0.25 * 2 ** (attempt - 1), 5.0) * (0.75 + random.random() / 2)


class Retries:
    """The retry budget of one database in one run."""

    def __init__(self, target: Target, options: RetryOptions):
        self.target = target
        self.options = options
        self.counted = 0  # attempts spent from --retries
        self.restarting_since: float | None = None  # the first restart-like failure
        self.slots_taken_since: float | None = None  # the first refusal for want of a connection slot
        self.waits = 0

    def delay(self, err: BaseException) -> float | None:
        """Seconds to wait before the next attempt, or None: give up with ``err``."""
        if interrupts.stopping() or not is_transient(err):
            return None
        if isinstance(err, ConnectionFailed) and err.missing_database:
            return None
        breakers = self.options.servers
        if breakers and not breakers.may_retry(self.target, err):
            return None
        if breakers and LOST_MARKER in str(err):
            breakers.went_silent(self.target)  # a connect timeout next is this silence again: not retried
        now = time.monotonic()
        if isinstance(err, ConnectionFailed) and err.slots_taken:
            # a slot frees when another session ends: waited for like a restart, within the window
            self.slots_taken_since = self.slots_taken_since or now
            if now - self.slots_taken_since >= self.options.retry_window_s:
                return None
            self.waits += 1
            return backoff(self.waits)
        restart = is_restart(err) and (
            server_says_restarting(err) or not isinstance(err, ConnectionFailed)  # lost mid-file: it answered
            or breakers is None or breakers.has_answered(self.target)
        )
        if restart:
            self.restarting_since = self.restarting_since or now
            since = breakers.restart_began(self.target, now) if breakers else self.restarting_since
            if now - since >= self.options.retry_window_s:
                return None
        else:
            self.counted += 1
            if self.counted > self.options.retries:
                return None
        self.waits += 1
        return backoff(self.waits)


def sleep(seconds: float) -> None:
    """Wait before a retry, but not past a Ctrl-C/SIGTERM (the caller then gives up)."""
    deadline = time.monotonic() + seconds
    while not interrupts.stopping():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.2))


def with_retries(target: Target, options: RetryOptions, attempt_fn) -> DatabaseResult:
    """Run ``attempt_fn(result)`` and re-run it after transient errors, with jittered backoff (``Retries``)."""
    result = DatabaseResult(target)
    started = time.monotonic()
    if target.problem:
        result.seconds = 0.0
        return result.fail(target.problem)
    budget = Retries(target, options)
    while True:
        result.attempts += 1
        try:
            attempt_fn(result)
            break
        except Exception as err:  # one database's failure never stops the others
            delay = budget.delay(err)
            if delay is not None:
                if options.on_retry:
                    options.on_retry(target.database, result.attempts, failure_text(err, False), delay)
                sleep(delay)
                continue
            breakers = options.servers
            result.missing = isinstance(err, ConnectionFailed) and err.missing_database
            result.unreachable = breakers.gave_up(target, err) if breakers else None
            result.fix = getattr(err, "fix", None)
            worded = options.word_fix(result.fix, target) if result.fix is not None and options.word_fix else ""
            result.fail(failure_text(err, options.debug, worded=worded))
            break
    result.seconds = time.monotonic() - started
    return result


def failure_text(err: BaseException, debug: bool, *, worded: str = "") -> str:
    """The one line a database's failure is told in (``worded``: the way in's words for the error's fix, after
    its facts), and with ``debug`` the traceback."""
    if isinstance(err, GrapevineError):
        text = str(err) + worded
    elif is_driver_error(err):
        text = describe_error(err)
    else:
        text = f"{type(err).__name__}: {err}"
    if debug:
        text += "\n" + "".join(traceback.format_exception(err)).rstrip()
    return text
