"""Which failures a retry may fix: one decision (``database/session/transient``) for every caller.

The table tests need no server: a SQLSTATE decides when there is one, libpq's text only when there
is none.  The last tests take real errors from a real PostgreSQL and ask the same question; that a
real terminated backend (57P01) is retried by a run is ``test_database_reliability.py::
test_connections_dropped_mid_fan_out_are_retried``.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import psycopg2
import pytest
import sqlalchemy.exc

import pg
from grapevine_alembic.database.apply.failures import StatementFailed
from grapevine_alembic.database.jobs.retrying import Retries
from grapevine_alembic.database.jobs.runner import RunOptions
from grapevine_alembic.database.session import transient
from grapevine_alembic.database.session.connection import ConnectionFailed, LockTimeout
from grapevine_alembic.database.session.watchdog import AnswerLost
from grapevine_alembic.database.state.target import Target
from grapevine_alembic.errors import MigrationFailed
from grapevine_alembic.files.migration import MigrationFile
from grapevine_alembic.settings import ConnectionSpec


@pytest.mark.parametrize(("sqlstate", "text", "expected"), [
    ("40001", None, True),  # serialization_failure
    ("40P01", None, True),  # deadlock_detected
    ("55P03", None, True),  # lock_not_available (lock_timeout)
    ("57P01", None, True),  # admin_shutdown (a terminated backend)
    ("57P02", None, True),  # crash_shutdown
    ("57P03", None, True),  # cannot_connect_now
    ("53300", None, True),  # too_many_connections
    ("08006", None, True),  # the connection class
    ("57014", None, False),  # query_canceled (statement_timeout): the same file would time out again
    ("22012", None, False),  # division_by_zero: the migration's own fault
    ("42P01", None, False),  # undefined_table
    ("23505", "server closed the connection unexpectedly", False),  # the SQLSTATE decides, not the text
    (None, "server closed the connection unexpectedly", True),
    (None, "Connection refused\n\tIs the server running on that host", True),
    (None, "FATAL:  the database system is starting up", True),
    (None, "FATAL:  the database system is not yet accepting connections", True),  # crash recovery
    (None, "terminating connection due to administrator command", True),
    (None, "timeout expired", True),
    (None, "the server stopped answering: no answer for 30 s", True),  # the watchdog's lost answer
    (None, "FATAL:  remaining connection slots are reserved for roles with the SUPERUSER attribute", True),
    (None, "FATAL:  password authentication failed for user \"app\"", False),
    (None, "database db_x does not exist", False),
    (None, None, False),
])
def test_sqlstate_first_and_the_text_only_without_one(sqlstate, text, expected):
    assert transient.transient_failure(sqlstate, text) is expected


def _statement_failed(error: Exception, committed=()) -> StatementFailed:
    return StatementFailed(MigrationFile("20240101000000", "a", Path("migrations/tenant/20240101000000_a.sql")), 1, error, list(committed))


@pytest.mark.parametrize(("error", "expected"), [
    (psycopg2.OperationalError("server closed the connection unexpectedly"), True),
    (psycopg2.OperationalError("FATAL:  password authentication failed"), False),
    (AnswerLost("the server stopped answering: no answer"), True),
    (sqlalchemy.exc.OperationalError("SELECT 1", {}, psycopg2.OperationalError("connection reset by peer")), True),
    (ConnectionFailed("cannot connect to db_a: timeout expired", transient=True, reason="timeout expired"), True),
    (ConnectionFailed("cannot connect to db_a: database db_a does not exist", transient=False), False),
    (LockTimeout("another run held the lock"), False),
    (MigrationFailed("file 1 failed"), False),
    (ValueError("connection refused"), False),  # not the driver's: never retried, whatever it says
])
def test_every_kind_of_error_gets_one_answer(error, expected):
    assert transient.is_transient(error) is expected


def test_a_statement_failure_with_committed_statements_is_never_retried():
    lost = psycopg2.OperationalError("server closed the connection unexpectedly")
    assert transient.is_transient(_statement_failed(lost)) is True
    assert transient.is_transient(_statement_failed(lost, committed=[SimpleNamespace(line=3)])) is False


@pytest.mark.parametrize(("error", "restart", "server_says"), [
    (psycopg2.OperationalError("FATAL:  the database system is shutting down"), True, True),
    (psycopg2.OperationalError("Connection refused"), True, False),
    (AnswerLost("the server stopped answering: no answer"), False, False),
    (ConnectionFailed("cannot connect", transient=True, reason="FATAL:  too many clients already"), False, False),
])
def test_a_restart_and_who_said_so(error, restart, server_says):
    assert transient.is_restart(error) is restart
    assert transient.server_says_restarting(error) is server_says


def test_a_server_still_recovering_is_waited_out_like_a_restart():
    """PostgreSQL 15+ refuses connections during crash recovery with "not yet accepting connections"."""
    target = Target("tenant", ConnectionSpec("127.0.0.9", 5433, "u", None, "db_a"), "a")
    refused = psycopg2.OperationalError('connection to server at "127.0.0.9", port 5433 failed:'
                                        " FATAL:  the database system is not yet accepting connections")
    assert Retries(target, RunOptions(lock_key=0, retries=0)).delay(refused) is not None
    assert Retries(target, RunOptions(lock_key=0, retries=0)).delay(psycopg2.OperationalError("FATAL:  no pg_hba.conf entry")) is None


def test_is_driver_error_knows_psycopg2_and_sqlalchemy_only():
    assert transient.is_driver_error(psycopg2.errors.DivisionByZero())
    assert transient.is_driver_error(sqlalchemy.exc.DBAPIError("SELECT 1", {}, psycopg2.Error("x")))
    assert not transient.is_driver_error(MigrationFailed("x"))
    assert not transient.is_driver_error(OSError("connection refused"))


def _raised(server, dbname: str, sql: str) -> psycopg2.Error:
    conn = pg.connect(server, dbname)
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql)
    except psycopg2.Error as err:
        return err
    finally:
        conn.close()
    raise AssertionError(f"{sql!r} did not fail")


def test_real_postgresql_errors_are_judged_by_their_sqlstate(pg_server, make_db):
    dbname = make_db()
    pg.query(pg_server, dbname, "CREATE TABLE t (x int)")
    holder = pg.connect(pg_server, dbname)
    holder.autocommit = False
    try:
        with holder.cursor() as cursor:
            cursor.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
        timed_out = _raised(pg_server, dbname, "SET lock_timeout = '50ms'; SELECT * FROM t")
    finally:
        holder.close()
    assert timed_out.pgcode == "55P03" and transient.is_transient(timed_out)
    broken = _raised(pg_server, dbname, "SELECT 1 / 0")
    assert broken.pgcode == "22012" and not transient.is_transient(broken)


def test_a_real_terminated_backend_is_transient_and_a_restart(pg_server, make_db):
    dbname = make_db()
    victim = pg.connect(pg_server, dbname)
    pid = victim.get_backend_pid()
    assert pg.query(pg_server, None, f"SELECT pg_terminate_backend({pid})") == [(True,)]
    try:
        with victim.cursor() as cursor:
            cursor.execute("SELECT 1")
    except psycopg2.Error as err:
        terminated = err
    else:
        raise AssertionError("the terminated backend still answered")
    finally:
        victim.close()
    assert transient.is_transient(terminated) and transient.is_restart(terminated), (terminated.pgcode, terminated)
