"""One psycopg2 connection per database per run: open, bound, lock, hand to SQLAlchemy.

The connection is opened with psycopg2 directly (no SQLAlchemy import on the
read-only paths) in autocommit mode, so taking the session-level advisory lock
never leaves a transaction open: an open transaction would make ``CREATE INDEX
CONCURRENTLY`` wait for us forever, and would make Alembic think it runs inside
an external transaction and stop committing per migration.  Session-level
advisory locks and ``SET`` survive the transactions Alembic opens later, which
is also why a transaction-pooling PgBouncer cannot be used: it would hand the
next transaction to another server connection that does not hold the lock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ...errors import DatabaseError
from ...settings import ConnectionSpec
from . import interrupts, transient
from .netbounds import bounds_from_environment, lease_settings, server_settings, with_keepalives

APPLICATION_NAME = "grapevine-migrations"
DEFAULT_CONNECT_TIMEOUT = 10

class ConnectionFailed(DatabaseError):
    """Could not connect, or the connection broke; ``transient`` says whether a retry may help."""

    def __init__(self, message: str, *, transient: bool, missing_database: bool = False, reason: str | None = None):
        super().__init__(message)
        self.transient = transient
        self.missing_database = missing_database
        self.reason = reason  # libpq's reason, set only when the connection could not be opened

    @property
    def unreachable(self) -> bool:
        """The server did not answer at all (refused, timed out, full, starting or stopping)."""
        return self.reason is not None and transient.unreachable(self.reason)

    @property
    def slots_taken(self) -> bool:
        """Refused for want of a connection slot (53300): the server's, the role's or the database's."""
        return self.reason is not None and transient.slots_taken(self.reason)

    @property
    def timed_out(self) -> bool:
        return self.reason is not None and "timeout expired" in self.reason.lower()


class LockTimeout(DatabaseError):
    """Another run held this database's migration lock for longer than the timeout."""

    transient = False


def describe_error(err: Exception) -> str:
    """The first meaningful line of a driver error (libpq messages never contain the password)."""
    text = str(getattr(err, "orig", None) or err).strip()  # SQLAlchemy wraps psycopg2's error
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    first = lines[0]
    # libpq puts the useful part after 'failed: '
    if " failed: " in first:
        first = first.split(" failed: ", 1)[1]
    return first.replace("FATAL:  ", "").replace("ERROR:  ", "")


def remote_peer(raw) -> str | None:
    """The address libpq really connected to when it is not on this machine; None for loopback or a Unix socket.

    Read from the socket itself: hostaddr, PGHOST, PGHOSTADDR and service files can all send libpq
    somewhere the URL does not say.
    """
    import ipaddress
    import os
    import socket

    with socket.socket(fileno=os.dup(raw.fileno())) as sock:  # a copy of the fd: closing it leaves libpq's open
        if sock.family == socket.AF_UNIX:
            return None
        address = sock.getpeername()[0]
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    mapped = getattr(ip, "ipv4_mapped", None)
    return None if (mapped or ip).is_loopback else address


def open_connection(spec: ConnectionSpec, *, connect_timeout: int = DEFAULT_CONNECT_TIMEOUT, bounds=None):
    """Connect with psycopg2 in autocommit mode, keepalives on and watched; failures become one masked line.

    ``bounds`` (``netbounds.Bounds``; default: from the environment) times the watchdog and the
    server's idle-in-transaction bound (see ``SessionPolicy``).
    """
    import psycopg2

    from .watchdog import Watch, WatchedConnection  # psycopg2 is loaded once a connection opens

    bounds = bounds or bounds_from_environment()
    kwargs = with_keepalives(spec.connect_kwargs())
    kwargs.setdefault("connect_timeout", connect_timeout)
    kwargs.setdefault("application_name", APPLICATION_NAME)
    try:
        raw = psycopg2.connect(connection_factory=WatchedConnection, **kwargs)
    except psycopg2.Error as err:
        reason = describe_error(err)
        missing = f'database "{spec.dbname}" does not exist' in reason
        if missing:
            reason = f"database {spec.dbname} does not exist"
        raise ConnectionFailed(
            f"cannot connect to {spec.display()}: {reason}",
            transient=transient.transient_failure(err.pgcode, reason),
            missing_database=missing,
            reason=reason,
        ) from None
    raw.autocommit = True
    Watch(raw, kwargs, bounds)
    interrupts.watch(raw)  # a second Ctrl-C cancels what it runs
    return raw


def session_settings(raw, *, statement_timeout_s: float, lock_timeout_s: float) -> list[tuple[str, str]]:
    """Bounds for every statement and every lock wait of the session (0 disables a bound)."""
    policy = SessionPolicy.for_connection(raw, statement_timeout_s=statement_timeout_s, lock_timeout_s=lock_timeout_s)
    return policy.settings()


# Marks the error raised inside a file's transaction when this run no longer holds its lock.
LOCK_LOST_MARKER = "grapevine: this run lost its migration lock"


@dataclass(frozen=True)
class SessionPolicy:
    """The tool's own session state, put back before every file and checked after each.

    Every file starts from the same session: whatever the previous file set (search_path,
    role, session user, timeouts, ``set_config(...)``, default transaction modes) is reset, and
    the tool's timeouts hold again.  The reset runs before the file's first transaction opens
    (``executor.FileRun._reset_session``): ``BEGIN`` fixes the transaction's read-only mode and isolation
    level from the defaults in force, so a reset inside it would come too late.
    """

    statement_timeout_s: float
    lock_timeout_s: float
    lock_key: int | None = None  # the advisory lock this run holds (None: it holds none)
    check_interval: bool = True  # PostgreSQL 14+: client_connection_check_interval
    server_bounds: tuple[tuple[str, str], ...] = ()  # netbounds.server_settings: idle in transaction, keepalives

    @classmethod
    def for_connection(cls, raw, *, statement_timeout_s: float, lock_timeout_s: float, lock_key: int | None = None):
        watch = getattr(raw, "watch", None)
        bounds = watch.bounds if watch is not None else bounds_from_environment()
        if watch is not None:
            watch.lock_timeout_s = lock_timeout_s  # it samples a lock wait within that, to name the blocker
        return cls(statement_timeout_s, lock_timeout_s, lock_key, raw.server_version >= 140000,
                   tuple(server_settings(bounds)))

    def settings(self) -> list[tuple[str, str]]:
        pairs = [
            ("statement_timeout", f"{int(self.statement_timeout_s * 1000)}ms"),
            ("lock_timeout", f"{int(self.lock_timeout_s * 1000)}ms"),
        ]
        if self.check_interval:
            # the server checks every 2 s that we are still there, so a killed run's
            # half-done transaction is rolled back (and its lock freed) promptly
            pairs.append(("client_connection_check_interval", "2s"))
        # an abandoned transaction of ours (a silent network) ends on the server, releasing its locks
        pairs += self.server_bounds
        return pairs

    def restore_sql(self) -> str:
        """The tool's settings, as plain SET statements."""
        return ";\n".join(f"SET {name} = '{value}'" for name, value in self.settings())

    def reset_sql(self) -> str:
        """Back to the connection's own state, then the tool's settings."""
        return "SET SESSION AUTHORIZATION DEFAULT;\nRESET ALL;\n" + self.restore_sql()

    def lock_check_sql(self) -> str | None:
        """Fails the transaction unless this session (still, or again) holds the run's lock.

        A file can release it (``DISCARD ALL``, ``pg_advisory_unlock_all()``); taking it again
        succeeds unless another run took it meanwhile, and then nothing of the file commits.
        """
        if self.lock_key is None:
            return None
        return (
            f"SELECT CASE WHEN pg_catalog.pg_try_advisory_lock({int(self.lock_key)}) THEN 0"
            f" ELSE ('{LOCK_LOST_MARKER}: ' || pg_catalog.pg_backend_pid())::int END"
        )


# The tool's own statements at the end of a file's transaction resolve names as the session
# did when it connected, and run as the login role, whatever search_path, role or session user
# the file set (pg_dump --use-set-session-authorization writes SET SESSION AUTHORIZATION, which
# SET ROLE NONE does not undo).  The SESSION AUTHORIZATION line goes first: it also resets the role.
TOOL_SCOPE_SQL = "SET LOCAL SESSION AUTHORIZATION DEFAULT;\nSET LOCAL search_path TO DEFAULT;\nSET LOCAL ROLE NONE"


def set_config_sql(settings: list[tuple[str, str]]) -> tuple[str, list[str]]:
    """``set_config(...)`` select-list items and their parameters, to ride along another query."""
    return ", ".join("set_config(%s, %s, false)" for _ in settings), [v for pair in settings for v in pair]


def configure_session(raw, *, statement_timeout_s: float, lock_timeout_s: float) -> None:
    """Apply ``session_settings`` in a round trip of its own."""
    sql, params = set_config_sql(
        session_settings(raw, statement_timeout_s=statement_timeout_s, lock_timeout_s=lock_timeout_s)
    )
    with raw.cursor() as cursor:
        cursor.execute("SELECT " + sql, params)


def leased(raw, also: list[tuple[str, str]] = ()):
    """``raw`` with the server's bounds of a lease (``netbounds.lease_settings``): its session, and any
    session-level lock it takes, ends once it has said nothing for ``lease_s``. ``also``: the holder's own
    session settings, in the same round trip. Closed if that fails."""
    watch = getattr(raw, "watch", None)
    sql, params = set_config_sql([*lease_settings(watch.bounds if watch is not None else bounds_from_environment(),
                                                  raw.server_version), *also])
    try:
        with raw.cursor() as cursor:
            cursor.execute("SELECT " + sql, params)
    except BaseException:
        raw.close()
        raise
    return raw


def acquire_lock(raw, key: int, *, timeout_s: float, on_wait=None) -> None:
    """Take this tool's session-level advisory lock on the database, waiting at most ``timeout_s``.

    Polls ``pg_try_advisory_lock`` in autocommit mode: no transaction stays open while waiting.
    A ``timeout_s`` of 0 means no limit, as it does for ``statement_timeout``.
    """
    deadline = time.monotonic() + timeout_s if timeout_s > 0 else float("inf")
    delay = 0.05
    while True:
        with raw.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", (key,))
            if cursor.fetchone()[0]:
                return
        if on_wait is not None:
            on_wait()
            on_wait = None  # say it once
        if interrupts.cancelling():
            raise LockTimeout(f"cancelled while waiting for another migration run's lock on {raw.info.dbname}")
        if time.monotonic() + delay > deadline:
            held_by = _lock_holder(raw, key)
            raise LockTimeout(
                f"another migration run holds the lock on {raw.info.dbname} for more than {timeout_s:g}s"
                + (f" (held by {held_by})" if held_by else "")
            )
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def _lock_holder(raw, key: int) -> str | None:
    """The session holding the advisory lock ``key`` (pg_advisory_lock(bigint): classid, objid, 1)."""
    from .watchdog import BLOCKER_SQL

    with raw.cursor() as cursor:
        cursor.execute(
            f"SELECT {BLOCKER_SQL} FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity b USING (pid)"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
            " AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())"
            " AND l.classid = ((%s::bigint >> 32) & 4294967295)::oid AND l.objid = (%s::bigint & 4294967295)::oid",
            (key, key),
        )
        return cursor.fetchone()[0]


def release_lock(raw, key: int) -> None:
    if not raw.closed:
        with raw.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", (key,))


def sqlalchemy_connection(raw):
    """A SQLAlchemy connection over this one already-open connection (for Alembic's MigrationContext)."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import StaticPool

    raw.autocommit = False  # SQLAlchemy and Alembic manage transactions from here
    engine = create_engine(
        "postgresql+psycopg2://", creator=lambda: raw, poolclass=StaticPool, use_native_hstore=False
    )
    return engine.connect()
