"""Plain ``alembic upgrade`` runs the same per-database job as ``migrate`` (one road, one set of defaults).

Each test runs the real ``alembic -c alembic.ini -n tenant -x tenant=ID upgrade ...`` as a subprocess
against real PostgreSQL: a server restart is waited out, a lock timeout is retried, a target stops
the run where Alembic's revision map says, and a file sees the same session as under ``migrate``.
"""

from __future__ import annotations

import threading
import time

import pytest

import pg
from pg import connect

ROADS = ("migrate", "alembic")
CHAIN = {"20240101000000_runs.sql": "CREATE TABLE runs (file text);\n"}
CHAIN.update({
    f"2024010{i}000000_step{i}.sql": f"BEGIN;\nSELECT pg_sleep(0.3);\nINSERT INTO runs VALUES ('step{i}');\nCOMMIT;\n"
    for i in range(2, 7)
})
HEAD = max(name[:14] for name in CHAIN)


def _use_chain(project, chain: dict[str, str]) -> None:
    project.clear("tenant")
    for name, sql in chain.items():
        project.write("tenant", name, sql)


def _run(project, road: str, tenant: str, *alembic_x: str, target: str = "head", env: dict | None = None):
    if road == "migrate":
        return project.cli("migrate", "--tenant", tenant, env=env)
    xs = [arg for x in alembic_x for arg in ("-x", x)]
    return project.alembic("-n", "tenant", "-x", f"tenant={tenant}", *xs, "upgrade", target, env=env)


# ---- a server restart during `alembic upgrade head` is waited out, as under migrate ----------------


@pytest.fixture(scope="module")
def tenant_server(tmp_path_factory, pg_server):
    yield from pg.own_server(tmp_path_factory, pg_server, "restarting_alembic", "stops and starts a server of its own")


def test_alembic_upgrade_waits_out_a_server_restart(project, tenant_server, tally):
    project.migrate_control()
    _use_chain(project, CHAIN)
    project.add_tenant("rr", create_db=False)
    pg.create_database(tenant_server, "db_rr")
    log: dict = {}
    # 5 s outlasts --retries' quick attempts (3 backoffs, about 2 s): only the retry window carries the run
    outage = threading.Thread(target=pg.outage, args=(tenant_server, "db_rr", 5, log))
    outage.start()
    try:
        result = _run(project, "alembic", "rr", env={"PG_TENANT_DATABASE_PORT": str(tenant_server.port)})
    finally:
        outage.join(timeout=120)
        if not tenant_server.is_running():
            tenant_server.start()
    tally("faults injected")
    assert "stopped" in log and "started" in log, log
    assert result.returncode == 0, result.stdout + result.stderr
    assert "db_rr: attempt 1 failed" in result.stderr and "retrying in" in result.stderr  # the outage was met
    tally("databases checked")
    assert pg.version_on(tenant_server, "db_rr") == HEAD
    runs = pg.query(tenant_server, "db_rr", "SELECT file, count(*) FROM runs GROUP BY file ORDER BY file")
    assert runs == [(f"step{i}", 1) for i in range(2, 7)], runs  # each file exactly once
    pg.drop_database(tenant_server, "db_rr")


# ---- a lock timeout is retried on both roads -----------------------------------------------------


def _waiters(project, database: str) -> int:
    return project.query(database, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                                   " AND query LIKE '%%ALTER TABLE t ADD COLUMN y%%' AND pid <> pg_backend_pid()")[0][0]


def _release_after_one_lock_timeout(project, database: str, holder, log: dict) -> None:
    """Hold the table lock until the run's first wait for it has timed out, then let the retry have it."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not _waiters(project, database):
        time.sleep(0.05)
    log["waited"] = time.monotonic()
    while time.monotonic() < deadline and _waiters(project, database):
        time.sleep(0.05)
    log["timed out"] = time.monotonic()
    holder.rollback()


@pytest.mark.parametrize("road", ROADS)
def test_lock_timeout_is_retried_on_both_roads(project, road, tally):
    project.migrate_control()
    database = project.add_tenant("lk")
    _use_chain(project, {"20240101000000_t.sql": "CREATE TABLE t (x int);\n"})
    assert _run(project, road, "lk").returncode == 0
    project.write("tenant", "20240102000000_alter.sql", "ALTER TABLE t ADD COLUMN y int;\n")
    holder = connect(project.server, database)
    holder.autocommit = False
    holder.cursor().execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
    log: dict = {}
    release = threading.Thread(target=_release_after_one_lock_timeout, args=(project, database, holder, log))
    release.start()
    try:
        result = _run(project, road, "lk")  # the default lock timeout (5 s) on both roads
    finally:
        release.join(timeout=120)
        holder.close()
    tally("faults injected")
    output = result.stdout + result.stderr
    assert "waited" in log and log["timed out"] - log["waited"] >= 4, log  # the wait really ran into the timeout
    assert result.returncode == 0, output
    assert "db_lk: attempt 1 failed" in output and "lock timeout" in output, output
    tally("databases checked")
    assert project.version(database) == "20240102000000"
    assert [v for v, _ in project.ledger(database)] == ["20240101000000", "20240102000000"]


# ---- `alembic upgrade <target>` stops where Alembic's revision map says ----------------------------

TARGETS = {"a version": ("20240103000000", "20240103000000"), "a prefix": ("2024010400", "20240104000000"),
           "relative +2": ("+2", "20240102000000"), "head": ("head", HEAD), "heads": ("heads", HEAD)}


@pytest.mark.parametrize("case", TARGETS, ids=list(TARGETS))
def test_alembic_upgrade_to_a_target_stops_there(project, case):
    target, reached = TARGETS[case]
    project.migrate_control()
    database = project.add_tenant("tg")
    _use_chain(project, {name: "SELECT 1;\n" for name in CHAIN})
    result = _run(project, "alembic", "tg", target=target)
    assert result.returncode == 0, result.stdout + result.stderr
    assert project.version(database) == reached
    assert [v for v, _ in project.ledger(database)] == [name[:14] for name in CHAIN if name[:14] <= reached]
    assert f"Running upgrade  -> 20240101000000, runs" in result.stderr
    assert f"-> {reached}," in result.stderr and "->" not in result.stderr.split(f"-> {reached},")[1]


def test_alembic_upgrade_to_an_unknown_target_is_one_line(project):
    project.migrate_control()
    database = project.add_tenant("tu")
    result = _run(project, "alembic", "tu", target="29990101")
    assert result.returncode != 0 and "Traceback" not in result.stdout + result.stderr
    assert "Can't locate revision identified by '29990101'" in result.stdout
    assert project.tables(database) == set()


# ---- a file sees the same session on both roads --------------------------------------------------

SETTINGS = ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout", "search_path",
            "transaction_isolation", "transaction_read_only", "synchronous_commit", "client_min_messages",
            "application_name", "role", "session_authorization", "TimeZone", "DateStyle")
SEEN = "CREATE TABLE seen AS SELECT name, current_setting(name) AS value FROM unnest(ARRAY[{}]) AS name;\n".format(
    ", ".join(f"'{name}'" for name in SETTINGS))


def test_a_file_sees_the_same_session_on_both_roads(project):
    project.migrate_control()
    _use_chain(project, {"20240101000000_a.sql": "BEGIN;\nSET LOCAL search_path TO pg_catalog;\nCOMMIT;\n",
                         "20240102000000_seen.sql": "BEGIN;\n" + SEEN + "COMMIT;\n"})
    seen = {}
    for road in ROADS:
        database = project.add_tenant(f"s_{road}")
        result = _run(project, road, f"s_{road}")
        assert result.returncode == 0, result.stdout + result.stderr
        seen[road] = dict(project.query(database, "SELECT name, value FROM public.seen"))
    assert set(seen["migrate"]) == set(SETTINGS)
    assert seen["alembic"] == seen["migrate"]
