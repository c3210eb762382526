"""Which driver failures a retry may fix: the one place that decides, for every caller.

SQLSTATE first: when PostgreSQL names the condition, its code decides.  libpq's message text only
where the driver gives no SQLSTATE (a connection that could not open or broke, an answer the
watchdog gave up on).  ``jobs/retrying`` decides *when* to run again (which budget, how long); this
module only says *whether* a retry may help and what kind of failure it is (the server restarting,
every connection slot taken, a server that did not answer at all).  It imports no driver, so the
CLI can ask it before anything loaded psycopg2.
"""

from __future__ import annotations

import sys

# SQLSTATEs (and classes) worth a retry: the database or the connection failed, not the migration.
TRANSIENT_SQLSTATES = frozenset({
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "55P03",  # lock_not_available (lock_timeout)
    "57P01",  # admin_shutdown
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now
    "53300",  # too_many_connections
})
TRANSIENT_CLASSES = frozenset({"08"})  # connection exceptions
RESTART_SQLSTATES = frozenset({"57P01", "57P02", "57P03"})  # admin shutdown, crash shutdown, cannot connect now

# The watchdog's words when it closed a connection whose answer was lost (``watchdog.AnswerLost``).
LOST_MARKER = "the server stopped answering"

# The texts of SQLSTATE 53300 (too_many_connections): every slot the server, the role or the
# database allows is taken.  Slots free as other sessions end.
_SLOTS_TAKEN_TEXT = (
    "too many clients",
    "too many connections for role",
    "too many connections for database",
    "remaining connection slots are reserved",
)
# libpq's words (no SQLSTATE) for a server going away or not back yet ...
_RESTART_TEXT = (
    "connection refused",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
    "the database system is not accepting connections",
    "server closed the connection unexpectedly",
    "terminating connection",
    "connection reset",
    "no connection to the server",
    "ssl syscall error",
)
# ... of which these come from the server itself: it is there, starting or stopping
_SERVER_SAYS = ("the database system is", "terminating connection")
# Every text worth a retry: a restart, a connect that failed or timed out, a lost answer, a full server.
_TRANSIENT_TEXT = (*_RESTART_TEXT, "could not connect", "timeout expired", LOST_MARKER, *_SLOTS_TAKEN_TEXT)
# Connection failures that say the server itself is not answering (they count against its circuit breaker).
_UNREACHABLE_TEXT = (
    "connection refused",
    "could not connect",
    "timeout expired",
    "too many clients",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "server closed the connection unexpectedly",
    "connection reset",
    "no route to host",
    "network is unreachable",
    "could not translate host name",
)


def _says(text: str | None, markers: tuple[str, ...]) -> bool:
    lowered = (text or "").lower()
    return any(marker in lowered for marker in markers)


def transient_failure(sqlstate: str | None, text: str | None) -> bool:
    """Whether a failure with this SQLSTATE (or, without one, this message) may pass if tried again."""
    if sqlstate:
        return sqlstate in TRANSIENT_SQLSTATES or sqlstate[:2] in TRANSIENT_CLASSES
    return _says(text, _TRANSIENT_TEXT)


def slots_taken(text: str | None) -> bool:
    """Refused for want of a connection slot (53300): the server's, the role's or the database's."""
    return _says(text, _SLOTS_TAKEN_TEXT)


def unreachable(text: str | None) -> bool:
    """The server did not answer at all (refused, timed out, full, starting or stopping)."""
    return _says(text, _UNREACHABLE_TEXT)


def is_driver_error(err: BaseException) -> bool:
    """An error of psycopg2 (or of SQLAlchemy around it) that no layer turned into one of ours.

    psycopg2 is loaded if it raised one, so asking never imports it (``--help`` stays fast).
    """
    psycopg2 = sys.modules.get("psycopg2")
    if psycopg2 is not None and isinstance(err, psycopg2.Error):
        return True
    return type(err).__module__.startswith("sqlalchemy")


def _facts(err: BaseException) -> tuple[str | None, str]:
    """The SQLSTATE and the message of a driver error or of ours (``StatementFailed``, ``ConnectionFailed``)."""
    driver = getattr(err, "orig", None) or err  # SQLAlchemy wraps psycopg2's error
    sqlstate = getattr(driver, "sqlstate", None) or getattr(driver, "pgcode", None)
    text = getattr(err, "pg_message", None) or getattr(err, "reason", None) or str(driver)
    return sqlstate, text


def is_transient(err: BaseException) -> bool:
    """Whether an error a database job raised may pass if the job runs again."""
    decided = getattr(err, "transient", None)
    if isinstance(decided, bool):  # ours (ConnectionFailed, StatementFailed, LockTimeout) decided when raised
        return decided
    return is_driver_error(err) and transient_failure(*_facts(err))


def is_restart(err: BaseException) -> bool:
    """The server is going away or coming back (not: a lost answer, a timeout, a full server)."""
    sqlstate, text = _facts(err)
    if sqlstate:
        return sqlstate in RESTART_SQLSTATES
    return LOST_MARKER not in text.lower() and _says(text, _RESTART_TEXT)


def server_says_restarting(err: BaseException) -> bool:
    """The server itself answered that it is starting or stopping (so it is there)."""
    sqlstate, text = _facts(err)
    return sqlstate in RESTART_SQLSTATES or _says(text, _SERVER_SAYS)
