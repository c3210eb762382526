"""Every file starts from the same session, and no file can break the tool's own guarantees.

Each case is a defect found by writing legal SQL against the runner; each runs on both
roads where both apply: ``grapevine-migrations migrate`` and ``alembic upgrade``.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from grapevine_alembic.settings import DEFAULT_LOCK_KEY
from pg import connect
from project import BIN

ROADS = ["migrate", "alembic"]


def _run(project, road: str, tenant: str = "acme", *, timeout: str | None = None, lock_timeout: str | None = None,
         retries: str | None = None):
    if road == "migrate":
        args = ["migrate", "--tenant", tenant, "--json"]
        for flag, value in (("--timeout", timeout), ("--lock-timeout", lock_timeout), ("--retries", retries)):
            if value is not None:
                args += [flag, value]
        return project.cli(*args)
    args = ["-n", "tenant", "-x", f"tenant={tenant}"]
    for key, value in (("timeout", timeout), ("lock_timeout", lock_timeout)):
        if value is not None:
            args += ["-x", f"{key}={value}"]
    return project.alembic(*args, "upgrade", "head")


def _spawn(project, road: str, tenant: str = "acme") -> subprocess.Popen:
    """Either road started in the background, for watching it from another session."""
    if road == "migrate":
        return project.spawn("migrate", "--tenant", tenant, "--json", "--retries", "0")
    return subprocess.Popen(
        [str(BIN / "alembic"), "-c", "alembic.ini", "-n", "tenant", "-x", f"tenant={tenant}", "upgrade", "head"],
        cwd=project.root, env=project.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _error(result, road: str) -> str:
    if road == "migrate":
        return json.loads(result.stdout)["databases"][0]["error"] or ""
    return result.stderr


def _where(project, database: str, table: str) -> list[str]:
    rows = project.query(database, "SELECT schemaname FROM pg_tables WHERE tablename = %s", (table,))
    return [row[0] for row in rows]


# ---- 1. session state never leaks from one file into the next ----------------------------------


@pytest.mark.parametrize("road", ROADS)
def test_search_path_set_by_a_file_ends_with_that_file(project, road):
    database = project.tenant_chain({
        "20250101000000_app.sql": "CREATE SCHEMA app;\nSET search_path = app, public;\nCREATE TABLE a_t (x int);\n",
        "20250102000000_b.sql": "CREATE TABLE b (x int);\n",
    })
    result = _run(project, road)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _where(project, database, "a_t") == ["app"]
    assert _where(project, database, "b") == ["public"]  # as in a run that applies b alone


@pytest.mark.parametrize("road", ROADS)
@pytest.mark.parametrize("lift", ["SET statement_timeout = 0;", "RESET ALL;", "SELECT set_config('statement_timeout', '0', false);"])
def test_a_file_cannot_lift_the_timeout_for_the_next_file(project, road, lift):
    database = project.tenant_chain({
        "20250101000000_lift.sql": f"{lift}\nCREATE TABLE lifted (x int);\n",
        "20250102000000_slow.sql": "SELECT pg_sleep(3);\n",
    })
    result = _run(project, road, timeout="1", retries="0")
    assert result.returncode != 0
    assert "statement timeout" in _error(result, road)
    assert "20250102000000_slow.sql:1" in _error(result, road)
    assert project.version(database) == "20250101000000"


# ---- 2. DISCARD ALL / unlocking cannot take the lock or the timeouts away ------------------------


@pytest.mark.parametrize("road", ROADS)
def test_discard_all_keeps_the_timeouts_and_the_lock(project, road):
    database = project.tenant_chain({
        "20250101000000_discard.sql": "DISCARD ALL;\n",
        "20250102000000_slow.sql": "SELECT pg_sleep(3);\n",
    })
    result = _run(project, road, timeout="1", retries="0")
    assert result.returncode != 0 and "statement timeout" in _error(result, road)
    assert project.version(database) == "20250101000000"
    # the lock is held again right after the DISCARD ALL: a file that sleeps shows it
    project.write("tenant", "20250102000000_slow.sql", "SELECT pg_sleep(2);\n")
    run = _spawn(project, road)
    pid = _wait_for_query(project, database, "pg_sleep(2)")
    held = project.query(database, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = %s AND granted",
                         (pid,))
    run.communicate(timeout=60)
    assert run.returncode == 0
    assert held[0][0] >= 1


@pytest.mark.parametrize("road", ROADS)
def test_a_file_that_releases_the_lock_to_another_run_is_rolled_back(project, road):
    database = project.tenant_chain({
        "20250101000000_unlock.sql": "CREATE TABLE stolen (x int);\nSELECT pg_advisory_unlock_all();\nSELECT pg_sleep(2);\n",
    })
    run = _spawn(project, road)
    _wait_for_query(project, database, "pg_sleep(2)")
    other = connect(project.server, database)  # "another run" takes the released lock
    try:
        assert other.cursor().execute("SELECT pg_try_advisory_lock(%s)", (DEFAULT_LOCK_KEY,)) is None
        stdout, stderr = run.communicate(timeout=60)
    finally:
        other.close()
    assert run.returncode != 0
    message = json.loads(stdout)["databases"][0]["error"] if road == "migrate" else stderr
    assert "lost its migration lock" in message
    assert "stolen" not in project.tables(database) and project.version(database) is None


def _wait_for_query(project, database: str, text: str, bound: float = 30.0) -> int:
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        rows = project.query("postgres", "SELECT pid FROM pg_stat_activity WHERE datname = %s AND query LIKE %s"
                             " AND state = 'active'", (database, f"%{text}%"))
        if rows:
            return rows[0][0]
        time.sleep(0.05)
    raise AssertionError(f"no session ran {text} within {bound}s")


# ---- 8. a file's own savepoints --------------------------------------------------------------------


SAVEPOINT_FILES = {
    "named like the tool's": (
        "CREATE TABLE t (x int PRIMARY KEY);\nSAVEPOINT grapevine_batch;\nINSERT INTO t VALUES (1);\n"
        "INSERT INTO t VALUES (1);\n",
        4, "duplicate key value",
    ),
    "rolled back past a SELECT, then an error": (
        "CREATE TABLE t (x int PRIMARY KEY);\nSAVEPOINT s1;\nINSERT INTO t VALUES (1);\nSELECT count(*) FROM t;\n"
        "ROLLBACK TO SAVEPOINT s1;\nINSERT INTO t VALUES (2);\nINSERT INTO t VALUES (2);\n",
        7, "duplicate key value",
    ),
    "rolled back, then an error": (
        "CREATE TABLE t (x int PRIMARY KEY);\nSAVEPOINT s1;\nINSERT INTO t VALUES (1);\nROLLBACK TO SAVEPOINT s1;\n"
        "INSERT INTO t VALUES (2);\nRELEASE SAVEPOINT s1;\nINSERT INTO t VALUES (2);\n",
        7, "duplicate key value",
    ),
}


@pytest.mark.parametrize("road", ROADS)
@pytest.mark.parametrize("sql, line, message", SAVEPOINT_FILES.values(), ids=SAVEPOINT_FILES.keys())
def test_a_files_own_savepoints_do_not_confuse_the_error(project, road, sql, line, message):
    database = project.tenant_chain({"20250101000000_sp.sql": sql})
    result = _run(project, road)
    assert result.returncode != 0
    error = _error(result, road)
    assert f"20250101000000_sp.sql:{line}: " in error and message in error, error
    assert "savepoint" not in error.lower().replace("savepoint s1", "")
    assert "t" not in project.tables(database)


# ---- 10. a pg_dump header: the tool's SQL works whatever search_path the file sets ------------------


@pytest.mark.parametrize("road", ROADS)
def test_pg_dump_header_then_a_failure_names_the_real_line(project, road):
    database = project.tenant_chain({
        "20250101000000_dump.sql": (
            "SELECT pg_catalog.set_config('search_path', '', false);\nSET client_min_messages = warning;\n"
            "CREATE TABLE public.dumped (id int);\nINSERT INTO public.dumped VALUES (1);\n"
        ),
        "20250102000000_after.sql": "CREATE TABLE after_dump (x int);\nINSERT INTO missing_table VALUES (1);\n",
    })
    result = _run(project, road)
    assert result.returncode != 0
    error = _error(result, road)
    assert "20250102000000_after.sql:2:" in error and "missing_table" in error, error
    assert project.version(database) == "20250101000000"  # the dump file applied and was recorded
    assert _where(project, database, "dumped") == ["public"]


# ---- 11. a no-transaction file whose own block fails at COMMIT ---------------------------------


@pytest.mark.parametrize("road", ROADS)
def test_no_transaction_block_failing_at_commit_names_file_line_and_what_ran(project, road):
    database = project.tenant_chain({
        "20250101000000_deferred.sql": (
            "CREATE TABLE parent (id int PRIMARY KEY);\n"
            "CREATE TABLE child (pid int REFERENCES parent DEFERRABLE INITIALLY DEFERRED);\n"
            "CREATE INDEX CONCURRENTLY child_pid ON child (pid);\n"
            "BEGIN;\nINSERT INTO child VALUES (1);\nCOMMIT;\n"
        ),
    })
    result = _run(project, road, retries="0")
    assert result.returncode != 0
    error = _error(result, road)
    assert "Traceback" not in result.stderr
    assert "20250101000000_deferred.sql:6: at COMMIT: " in error and "foreign key" in error, error
    assert "lines 1, 2, 3 of this file already ran" in error
    assert project.version(database) is None
    assert project.query(database, "SELECT count(*) FROM child") == [(0,)]


# ---- 12. a no-transaction file is never retried over committed statements ----------------------


def test_no_transaction_file_is_not_retried_over_what_committed(project):
    database = project.tenant_chain({"20250101000000_locked.sql": "CREATE TABLE locked (x int);\n"})
    assert project.cli("migrate", "--tenant", "acme").returncode == 0
    project.write("tenant", "20250102000000_notx.sql",
                  "-- grapevine: no-transaction\nCREATE TABLE t1 (x int);\nALTER TABLE locked ADD COLUMN y int;\n")
    holder = connect(project.server, database)
    holder.autocommit = False
    holder.cursor().execute("LOCK TABLE locked IN ACCESS SHARE MODE")
    try:
        result = project.cli("migrate", "--tenant", "acme", "--json", "--lock-timeout", "0.3", "--retries", "3")
    finally:
        holder.rollback()
        holder.close()
    assert result.returncode == 1
    [db] = json.loads(result.stdout)["databases"]
    assert db["attempts"] == 1  # a retry would run line 2 again
    assert "20250102000000_notx.sql:3:" in db["error"] and "lock timeout" in db["error"]
    assert "line 2 of this file already ran" in db["error"]
    assert "already exists" not in db["error"]
    assert "t1" in project.tables(database)  # committed once, and said so
    assert project.version(database) == "20250101000000"
