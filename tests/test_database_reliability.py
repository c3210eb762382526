"""Concurrency, injected faults, drift, ordering and legacy adoption, against the real test PostgreSQL.

Every test checks the databases afterwards: a migration is either wholly applied with its version
and ledger row, or not at all.  The counters feed docs/guarantees.md.
"""

from __future__ import annotations

import json
import re
import threading
import time

from pg import connect

HEAD = "20250201080000"
SLOW_CHAIN = {
    "20240101000000_base.sql": "BEGIN;\nCREATE TABLE runs (file text, at timestamptz DEFAULT now());\nCOMMIT;\n",
    "20240102000000_slow.sql": "BEGIN;\nINSERT INTO runs (file) VALUES ('slow');\nSELECT pg_sleep(0.3);\n"
                               "CREATE TABLE slow_done (a int);\nCOMMIT;\n",
    "20240103000000_index.sql": "CREATE INDEX CONCURRENTLY IF NOT EXISTS runs_file_idx ON runs (file);\n",
    "20240104000000_last.sql": "BEGIN;\nINSERT INTO runs (file) VALUES ('last');\nCOMMIT;\n",
}


def _use_chain(project, chain: dict[str, str]) -> None:
    project.clear("tenant")
    for name, sql in chain.items():
        project.write("tenant", name, sql)


def _tenants(project, count: int, prefix: str = "t") -> list[str]:
    project.migrate_control()
    ids = [f"{prefix}{i:02d}" for i in range(1, count + 1)]
    for tenant_id in ids:
        project.add_tenant(tenant_id)
    return ids


def _check_exactly_once(project, ids, tally, head="20240104000000"):
    """Every tenant at head, each migration's effect present exactly once, ledger complete."""
    for tenant_id in ids:
        database = f"db_{tenant_id}"
        tally("databases checked")
        runs = sorted(r[0] for r in project.query(database, "SELECT file FROM runs"))
        ledger = [v for v, _ in project.ledger(database)]
        ok = runs == ["last", "slow"] and project.version(database) == head and ledger == [n[:14] for n in sorted(SLOW_CHAIN)]
        if not ok:
            tally("lost")
        assert ok, (database, runs, ledger)


def _json(result) -> dict:
    return json.loads(result.stdout)


# ---- concurrency -----------------------------------------------------------------------------


def test_two_concurrent_runs_apply_every_migration_exactly_once(project, tally):
    ids = _tenants(project, 20)
    _use_chain(project, SLOW_CHAIN)
    procs = [project.spawn("migrate", "--all-tenants", "--json") for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    tally("concurrent runs", 2)
    ran = []
    for proc, (stdout, stderr) in zip(procs, outputs):
        if proc.returncode == 2:  # the second rollout over the same tenants refuses while the first runs
            assert re.search(r"rollout \d+ \(pid \d+ on .*\) is running over some of these tenants", stderr), stderr
            continue
        assert proc.returncode == 0, stderr
        ran.append(stdout)
    assert ran  # at least one ran; the other either refused or came after it and found nothing to do
    applied = [sum(len(d["applied"]) for d in json.loads(out)["databases"]) for out in ran]
    assert sum(applied) == 20 * 4  # between them, every migration once
    _check_exactly_once(project, ids, tally)


def test_lock_wait_keeps_no_transaction_open(project, tally):
    """A run waiting for the lock must not sit 'idle in transaction': CONCURRENTLY would wait for it."""
    [tenant] = _tenants(project, 1)
    _use_chain(project, SLOW_CHAIN)
    holder = connect(project.server, f"db_{tenant}")
    holder.cursor().execute("SELECT pg_advisory_lock(%s)", (_lock_key(project),))
    proc = project.spawn("migrate", "--tenant", tenant)
    try:
        # idle after a pg_try_advisory_lock: the run has tried the held lock and is waiting (not merely connected)
        waiting = _wait_for(project, f"db_{tenant}", "application_name = 'grapevine-migrations' "
                            "AND state = 'idle' AND query LIKE '%%pg_try_advisory_lock%%'")
        states = {r[0] for r in project.query(
            f"db_{tenant}", "SELECT state FROM pg_stat_activity WHERE application_name = 'grapevine-migrations'")}
        assert waiting and states <= {"idle", "active"}, states
    finally:
        holder.close()
    stdout, stderr = proc.communicate(timeout=120)
    tally("concurrent runs", 1)
    assert proc.returncode == 0, stderr
    assert "waiting for another migration run" in stderr
    _check_exactly_once(project, [tenant], tally)


def test_cli_commits_each_migration_on_its_own(project, tally):
    """The lock is taken before Alembic starts, without leaving Alembic an 'external' transaction."""
    [tenant] = _tenants(project, 1)
    _use_chain(project, {
        "20240101000000_a.sql": "CREATE TABLE a (x int);\n",
        "20240102000000_b.sql": "CREATE TABLE b (x int);\n",
        "20240103000000_c.sql": "BEGIN;\nCREATE TABLE c (x int);\nSELECT 1/0;\nCOMMIT;\n",
    })
    result = project.cli("migrate", "--tenant", tenant)
    tally("faults injected")
    tally("databases checked")
    assert result.returncode == 1
    assert project.version(f"db_{tenant}") == "20240102000000"
    assert {"a", "b"} <= project.tables(f"db_{tenant}") and "c" not in project.tables(f"db_{tenant}")


def _lock_key(project) -> int:
    from grapevine_alembic.settings import load_project

    return load_project(project.root / "alembic.ini").lock_key


def _wait_for(project, database: str, condition: str, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sql = f"SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid() AND {condition}"
        if project.query(database, sql, (database,))[0][0]:
            return True
        time.sleep(0.05)
    return False


# ---- faults ----------------------------------------------------------------------------------


def test_sigkill_mid_migration_leaves_all_or_nothing(project, tally):
    [tenant] = _tenants(project, 1)
    database = f"db_{tenant}"
    _use_chain(project, {
        "20240101000000_a.sql": "CREATE TABLE a (x int);\n",
        "20240102000000_slow.sql": "BEGIN;\nCREATE TABLE b (x int);\nSELECT pg_sleep(4);\nCREATE TABLE c (x int);\nCOMMIT;\n",
    })
    proc = project.spawn("migrate", "--tenant", tenant)
    assert _wait_for(project, database, "query LIKE '%%pg_sleep(4)%%'")
    proc.kill()
    proc.wait()
    tally("kills")
    # the server notices the dead client (client_connection_check_interval) and rolls back
    deadline = time.monotonic() + 20
    while _wait_for(project, database, "application_name = 'grapevine-migrations'", timeout=0.1):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    tally("databases checked")
    tables = project.tables(database)
    whole = {"b", "c"} <= tables and project.version(database) == "20240102000000"
    nothing = not ({"b", "c"} & tables) and project.version(database) == "20240101000000"
    if not (whole or nothing):
        tally("lost")
    assert nothing or whole, (tables, project.version(database))
    again = project.cli("migrate", "--tenant", tenant)
    assert again.returncode == 0, again.stderr
    assert {"a", "b", "c"} <= project.tables(database) and project.version(database) == "20240102000000"


def test_failure_on_one_tenant_of_ten_leaves_the_others_migrated(project, tally):
    ids = _tenants(project, 10)
    _use_chain(project, {
        "20240101000000_a.sql": "CREATE TABLE a (x int);\n",
        "20240102000000_picky.sql": "BEGIN;\nCREATE TABLE b (x int);\nDO $$\nBEGIN\n"
                                   "  IF current_database() = 'db_t03' THEN\n"
                                   "    RAISE EXCEPTION 'tenant three is different';\n  END IF;\nEND\n$$;\nCOMMIT;\n",
    })
    result = project.cli("migrate", "--all-tenants", "--json")
    tally("faults injected")
    assert result.returncode == 1
    doc = _json(result)
    failed = [d for d in doc["databases"] if not d["ok"]]
    assert [d["tenant"] for d in failed] == ["t03"]
    assert "20240102000000_picky.sql:3:" in failed[0]["error"] and "tenant three is different" in failed[0]["error"]
    assert failed[0]["attempts"] == 1
    for tenant_id in ids:
        tally("databases checked")
        tables = project.tables(f"db_{tenant_id}")
        if tenant_id == "t03":
            assert project.version("db_t03") == "20240101000000" and "b" not in tables
        else:
            assert project.version(f"db_{tenant_id}") == "20240102000000" and "b" in tables
    human = project.cli("migrate", "--all-tenants")
    assert "t03" in human.stdout and "tenant three is different" in human.stdout


def test_connections_dropped_mid_fan_out_are_retried(project, tally):
    ids = _tenants(project, 8)
    _use_chain(project, SLOW_CHAIN)
    killer_done = threading.Event()

    terminated = []

    def terminate_once():
        # the sessions inside the slow (transactional) file: a retry runs it again from the start.  A fixed
        # delay sometimes hit the CONCURRENTLY file after its index committed, which is rightly not retried
        # in the same run (its statement stayed committed; the next run starts it again).
        deadline = time.monotonic() + 60
        while not terminated and time.monotonic() < deadline:
            terminated.extend(project.query(
                "postgres", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name ="
                " 'grapevine-migrations' AND state = 'active' AND query LIKE '%pg_sleep(0.3)%'"))
            time.sleep(0.02)
        tally("faults injected", len(terminated))
        killer_done.set()

    thread = threading.Thread(target=terminate_once)
    thread.start()
    result = project.cli("migrate", "--all-tenants", "--max-parallel", "4", "--retries", "5", "--json")
    thread.join()
    assert killer_done.is_set() and terminated
    assert result.returncode == 0, result.stdout + result.stderr
    assert any(d["attempts"] > 1 for d in _json(result)["databases"])
    _check_exactly_once(project, ids, tally)


def test_server_restart_mid_fan_out_is_retried(project, pg_server, tally):
    ids = _tenants(project, 6)
    _use_chain(project, SLOW_CHAIN)

    def restart():
        # mid fan-out for sure: while a tenant's slow file runs (a fixed delay hit the tenants read under load)
        deadline = time.monotonic() + 60
        while not project.query("postgres", "SELECT 1 FROM pg_stat_activity WHERE datname LIKE 'db\\_t%'"
                                            " AND query LIKE '%pg_sleep(0.3)%'"):
            assert time.monotonic() < deadline and proc.poll() is None, "the fan-out never ran the slow file"
            time.sleep(0.02)
        pg_server.restart()
        tally("faults injected")

    proc = project.spawn("migrate", "--all-tenants", "--max-parallel", "2", "--retries", "8", "--json")
    restart()
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stdout + stderr
    assert any(d["attempts"] > 1 for d in json.loads(stdout)["databases"])
    _check_exactly_once(project, ids, tally)


def test_unreachable_tenant_server_is_reported_per_tenant(project, tally):
    ids = _tenants(project, 2)
    result = project.cli("migrate", "--control", "--all-tenants", "--retries", "1", "--json",
                         env={"PG_TENANT_DATABASE_PORT": "1"})
    tally("faults injected")
    assert result.returncode == 1
    doc = _json(result)
    assert doc["databases"][0]["ok"] is True  # control
    for tenant in doc["databases"][1:]:
        assert "Connection refused" in tenant["error"] and tenant["attempts"] == 2
    for tenant_id in ids:
        tally("databases checked")
        assert project.tables(f"db_{tenant_id}") == set()


def test_failed_concurrent_index_is_rebuilt_not_skipped(project, tally):
    [tenant] = _tenants(project, 1)
    database = f"db_{tenant}"
    _use_chain(project, {
        "20240101000000_t.sql": "CREATE TABLE t (a int);\nINSERT INTO t VALUES (1), (1);\n",
        "20240102000000_idx.sql": "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_a ON t (a);\n"
                                  "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS t_u ON t (a);\n",
    })
    first = project.cli("migrate", "--tenant", tenant, "--json")
    tally("faults injected")
    assert first.returncode == 1
    [db] = _json(first)["databases"]
    assert "20240102000000_idx.sql:2:" in db["error"] and "line 1 of this file already ran" in db["error"]
    assert project.version(database) == "20240101000000"
    assert project.query(database, "SELECT indisvalid FROM pg_index WHERE indexrelid = 't_u'::regclass") == [(False,)]
    project.query(database, "DELETE FROM t WHERE ctid <> (SELECT min(ctid) FROM t)")
    second = project.cli("migrate", "--tenant", tenant)
    assert second.returncode == 0, second.stderr
    assert "dropping INVALID index t_u" in second.stderr
    tally("databases checked")
    assert project.query(database, "SELECT indisvalid FROM pg_index WHERE indexrelid = 't_u'::regclass") == [(True,)]
    assert project.version(database) == "20240102000000"


# ---- drift, ordering, adoption ----------------------------------------------------------------


def test_out_of_order_file_is_named_then_applied_on_request(project, tally):
    [tenant] = _tenants(project, 1)
    database = f"db_{tenant}"
    assert project.cli("migrate", "--tenant", tenant).returncode == 0
    project.write("tenant", "20250110000000_late_from_a_branch.sql", "CREATE TABLE late (a int);\n")
    status = project.cli("status", "--tenant", tenant, "--exit-code")
    assert status.returncode == 3
    assert "out of order, never applied: 20250110000000_late_from_a_branch.sql" in status.stdout
    refused = project.cli("migrate", "--tenant", tenant, "--refuse-out-of-order")  # the default applies it
    assert refused.returncode == 1 and "20250110000000_late_from_a_branch.sql" in refused.stdout
    assert "late" not in project.tables(database)
    applied = project.cli("migrate", "--tenant", tenant, "--out-of-order")
    assert applied.returncode == 0, applied.stderr
    tally("databases checked")
    assert "late" in project.tables(database)
    assert ("20250110000000", "out-of-order") in project.ledger(database)
    assert project.version(database) == HEAD
    assert project.cli("status", "--tenant", tenant).returncode == 0


def test_out_of_order_file_can_be_marked_instead(project):
    [tenant] = _tenants(project, 1)
    assert project.cli("migrate", "--tenant", tenant).returncode == 0
    project.write("tenant", "20250110000000_late.sql", "CREATE TABLE late (a int);\n")
    marked = project.cli("mark", "--apply", "20250110000000", "--tenant", tenant)
    assert marked.returncode == 0, marked.stderr
    assert ("20250110000000", "mark") in project.ledger(f"db_{tenant}")
    assert "late" not in project.tables(f"db_{tenant}")
    assert project.version(f"db_{tenant}") == HEAD
    assert project.cli("status", "--tenant", tenant).returncode == 0


def test_edited_and_unknown_migrations_are_reported(project):
    [tenant] = _tenants(project, 1)
    database = f"db_{tenant}"
    assert project.cli("migrate", "--tenant", tenant).returncode == 0
    edited = project.migrations("tenant") / "20250108100000_create_tasks.sql"
    edited.write_text(edited.read_text() + "-- tweaked after deploy\n")
    project.query(database, "INSERT INTO schema_migrations (version, applied_at) VALUES ('20240606000000', now())")
    status = project.cli("status", "--tenant", tenant)
    assert status.returncode == 1
    assert "20250108100000_create_tasks.sql was edited after it was applied" in status.stdout
    assert "the database records 20240606000000, which no migration file has" in status.stdout
    doc = json.loads(project.cli("status", "--tenant", tenant, "--json").stdout)
    [db] = doc["databases"]
    assert db["edited"] == ["20250108100000"] and db["unknown"] == ["20240606000000"]


LEGACY_TABLE = "CREATE TABLE schema_migrations (version VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ)"


def _legacy(project, database: str, versions: list[str]) -> None:
    for path in sorted(project.migrations("tenant").glob("2*.sql")):
        if path.name[:14] in versions:
            connection = connect(project.server, database)
            connection.cursor().execute(path.read_text())
            connection.close()
    project.query(database, LEGACY_TABLE)
    for version in versions:
        project.query(database, "INSERT INTO schema_migrations VALUES (%s, '2023-05-06 07:08:09+00')", (version,))


def test_legacy_prefix_is_adopted_keeping_applied_at(project, tally):
    [tenant] = _tenants(project, 1)
    database = f"db_{tenant}"
    _legacy(project, database, ["20250101090000", "20250108100000"])
    result = project.cli("migrate", "--tenant", tenant, "--json")
    assert result.returncode == 0, result.stderr
    [db] = _json(result)["databases"]
    assert db["applied"] == ["20250120143000", HEAD]
    tally("databases checked")
    assert project.version(database) == HEAD
    rows = project.query(database, "SELECT version, applied_at::text, applied_by, checksum IS NOT NULL"
                                   " FROM schema_migrations ORDER BY version")
    assert rows[:2] == [("20250101090000", "2023-05-06 07:08:09+00", "adopt", True),
                        ("20250108100000", "2023-05-06 07:08:09+00", "adopt", True)]
    assert [r[2] for r in rows[2:]] == ["migrate", "migrate"]


def test_legacy_with_unknown_versions_stops_with_the_fixing_command(project):
    [tenant] = _tenants(project, 1)
    database = f"db_{tenant}"
    _legacy(project, database, ["20250101090000", "20250120143000", "20240101000000"])
    result = project.cli("migrate", "--tenant", tenant, "--json")
    assert result.returncode == 1
    [db] = _json(result)["databases"]
    assert "versions no migration file has: 20240101000000" in db["error"]
    command = f"grapevine-migrations mark --unapply 20240101000000 --tenant {tenant}"
    assert command in db["error"]
    status = project.cli("status", "--tenant", tenant, "--json")
    assert command in _json(status)["databases"][0]["error"]  # status names the target too
    assert "alembic_version" not in project.tables(database)
    columns = project.query(database, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'schema_migrations'")
    assert columns == [(2,)]  # nothing written: not even the new ledger columns
    # the suggested command works when pasted; then migrate adopts, and the gap is named with its fixes
    pasted = project.cli(*command.split()[1:])
    assert pasted.returncode == 0, pasted.stdout + pasted.stderr
    assert "alembic_version" not in project.tables(database)
    gap = project.cli("migrate", "--tenant", tenant, "--refuse-out-of-order", "--json")
    assert gap.returncode == 1
    assert f"migrate --tenant {tenant} --out-of-order" in _json(gap)["databases"][0]["error"]
    assert project.cli("migrate", "--tenant", tenant, "--out-of-order").returncode == 0
    assert project.version(database) == HEAD
    assert [row[1] for row in project.ledger(database)] == ["adopt", "out-of-order", "adopt", "migrate"]


def test_version_table_changed_under_the_run_rolls_the_file_back(project, tally):
    """The version update must move exactly the expected head, or the whole file is undone."""
    [tenant] = _tenants(project, 1)
    database = f"db_{tenant}"
    _use_chain(project, {
        "20240101000000_a.sql": "CREATE TABLE a (x int);\n",
        "20240102000000_meddles.sql": (  # built at run time: the refusal of files that write the tool's tables cannot see it
            "BEGIN;\nCREATE TABLE b (x int);\nDO $$ BEGIN EXECUTE 'DELETE FROM ' || 'alembic_version'; END $$;\nCOMMIT;\n"
        ),
    })
    result = project.cli("migrate", "--tenant", tenant, "--json")
    tally("faults injected")
    tally("databases checked")
    assert result.returncode == 1
    [db] = _json(result)["databases"]
    assert "did not move exactly the expected head" in db["error"] and db["attempts"] == 1
    assert project.version(database) == "20240101000000"
    assert "b" not in project.tables(database)
    assert [v for v, _ in project.ledger(database)] == ["20240101000000"]


def test_plain_alembic_refuses_a_legacy_database_and_points_to_adoption(project):
    [tenant] = _tenants(project, 1)
    database = f"db_{tenant}"
    _legacy(project, database, ["20250101090000"])
    result = project.alembic("-n", "tenant", "-x", f"tenant={tenant}", "upgrade", "head")
    assert result.returncode != 0
    assert "run `grapevine-migrations migrate` for it first" in result.stdout + result.stderr
    assert "alembic_version" not in project.tables(database)
    assert project.cli("migrate", "--tenant", tenant).returncode == 0
    assert project.alembic("-n", "tenant", "-x", f"tenant={tenant}", "current").stdout.strip().endswith("(head)")


def test_status_of_a_legacy_database_shows_where_its_ledger_reaches(project):
    [tenant] = _tenants(project, 1)
    database = f"db_{tenant}"
    _legacy(project, database, ["20250101090000", "20250108100000"])
    result = project.cli("status", "--tenant", tenant, "--exit-code")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "20250108100000" in result.stdout and "(none)" not in result.stdout
    assert "2 pending" in result.stdout and "`migrate` adopts it" in result.stdout
    [db] = _json(project.cli("status", "--tenant", tenant, "--json"))["databases"]
    assert db["version"] == "20250108100000" and db["pending"] == ["20250120143000", HEAD]
    assert "alembic_version" not in project.tables(database)  # status only reads
