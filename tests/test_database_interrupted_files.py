"""A transactional file interrupted by anything but a driver error leaves nothing of itself behind.

The interruptions are real: an exception raised from a signal handler (as Celery's soft time
limit raises one into the Python API), a KeyboardInterrupt from SIGINT, and text the database's
encoding cannot hold.  Each file sleeps in the server between its first statement and the rest,
so the interruption lands inside its open transaction, after an earlier file of the same run
committed (that earlier commit is what made the run "make it durable" on the same connection).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from psycopg2 import sql as pgsql

import pg

FIRST = ("20250101000000_first.sql", "CREATE TABLE first_file (x int);\n")
# the notice tells the program its transaction is open: it then arms the interruption
SLEEPER = ("20250102000000_sleeper.sql",
           "CREATE TABLE half (x int);\n"
           "DO $$ BEGIN RAISE NOTICE 'sleeping now'; END $$;\n"
           "SELECT pg_sleep(1.5);\n"
           "CREATE TABLE rest (x int);\n")

PROGRAM = textwrap.dedent(
    """
    import json, logging, os, signal, sys
    from grapevine_alembic.api import migrate_database

    class SoftTimeLimitExceeded(Exception):  # what Celery raises from its SIGUSR1 handler
        pass

    def soft_limit(signum, frame):
        raise SoftTimeLimitExceeded("soft time limit exceeded")

    how = sys.argv[3]
    signal.signal(signal.SIGALRM, soft_limit)

    class Arm(logging.Handler):
        def emit(self, record):
            if "sleeping now" in record.getMessage():
                if how == "signal handler":
                    signal.setitimer(signal.ITIMER_REAL, 0.3)  # fires while pg_sleep runs
                else:
                    import threading
                    threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()

    logger = logging.getLogger("grapevine_alembic")
    logger.setLevel(logging.INFO)
    logger.addHandler(Arm())
    try:
        result = migrate_database(sys.argv[1], sys.argv[2], retries=0)
        print(json.dumps({"ok": result.ok, "error": result.error, "version": result.version}))
    except KeyboardInterrupt:
        print(json.dumps({"interrupted": True}))
    """
)


def _nothing_of_the_sleeper(project, database: str) -> None:
    tables = project.tables(database)
    assert "half" not in tables, "the interrupted file's first statement committed"
    assert "rest" not in tables
    assert "first_file" in tables
    assert project.version(database) == "20250101000000"
    assert [row[0] for row in project.ledger(database)] == ["20250101000000"]


@pytest.mark.parametrize("how", ["signal handler", "KeyboardInterrupt"])
def test_api_interrupted_inside_a_files_transaction_keeps_nothing_of_that_file(project, pg_server, how):
    database = project.tenant_chain(dict([FIRST, SLEEPER]))
    run = subprocess.run(
        [sys.executable, "-c", PROGRAM, pg.url_for(pg_server, database), str(project.migrations("tenant")), how],
        capture_output=True, text=True, timeout=120, cwd=project.root,
    )
    assert run.returncode == 0, run.stderr
    outcome = json.loads(run.stdout)
    if how == "signal handler":
        assert outcome["ok"] is False and "soft time limit exceeded" in outcome["error"], outcome
    else:
        assert outcome == {"interrupted": True}
    _nothing_of_the_sleeper(project, database)


def test_alembic_upgrade_stopped_by_sigint_inside_a_files_transaction_keeps_nothing_of_it(project):
    database = project.tenant_chain(dict([FIRST, SLEEPER]))
    merged = {k: v for k, v in project.env.items() if v is not None}
    from project import BIN

    child = subprocess.Popen(
        [str(BIN / "alembic"), "-c", "alembic.ini", "-n", "tenant", "-x", "tenant=acme", "upgrade", "head"],
        cwd=project.root, env=merged, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not project.query("postgres", "SELECT 1 FROM pg_stat_activity WHERE datname = %s AND state = 'active'"
                                " AND query LIKE 'SELECT pg_sleep%%'", (database,)):
            assert time.monotonic() < deadline and child.poll() is None, "the file never reached its pg_sleep"
            time.sleep(0.02)
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode != 0
    _nothing_of_the_sleeper(project, database)


EURO = ("20250102000000_euro.sql",
        "CREATE TABLE half (x int);\n"
        "SELECT 1;\n"
        "COMMENT ON TABLE half IS 'costs 5 €';\n")


def _tenant_in(project, pg_server, tenant: str, encoding: str) -> str:
    project.migrate_control()
    project.clear("tenant")
    for name, text in (FIRST, EURO):
        project.write("tenant", name, text)
    database = project.add_tenant(tenant, create_db=False)
    pg.query(pg_server, None, pgsql.SQL("CREATE DATABASE {} ENCODING {} TEMPLATE template0 LC_COLLATE 'C'"
                                        " LC_CTYPE 'C'").format(pgsql.Identifier(database), pgsql.Literal(encoding)))
    project.make_db.created.append(database)  # dropped after the test
    return database


@pytest.mark.parametrize("road", ["grapevine-migrations", "alembic"])
@pytest.mark.parametrize("encoding", ["LATIN1", "SQL_ASCII"])
def test_text_the_database_encoding_cannot_hold_fails_before_the_file_runs(project, pg_server, road, encoding):
    tenant = f"enc_{encoding.lower()}"
    database = _tenant_in(project, pg_server, tenant, encoding)
    if road == "alembic":
        result = project.alembic("-n", "tenant", "-x", f"tenant={tenant}", "upgrade", "head")
    else:
        result = project.cli("migrate", "--tenant", tenant)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "half" not in project.tables(database), "the file's first statement committed"
    assert project.version(database) != "20250102000000"
    assert "Traceback" not in output, output
    assert "migrations/tenant/20250102000000_euro.sql:3:" in output, output
    assert f"'€' (U+20AC) cannot be stored in this database's encoding ({encoding})" in output, output
    if road == "grapevine-migrations":
        # checked with the others before anything runs: the run writes nothing
        assert project.version(database) is None and "first_file" not in project.tables(database)
