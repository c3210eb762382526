"""`drift` reads the next databases while a reference is being built, instead of every worker waiting for the
build: against real PostgreSQL, a build held up by a lock on pg_database (which its CREATE DATABASE needs) does not
keep one worker (--max-parallel 1) from reading every tenant meanwhile, and the comparisons come out as before."""

from __future__ import annotations

import json
import time

import pg
from test_fleet_drift_fingerprints import _fleet

IDS = ["o1", "o2", "o3", "o4"]


def _sessions(project) -> dict:
    """Sessions each tenant database has had (counted when a session ends)."""
    rows = project.query(None, "SELECT datname, sessions FROM pg_catalog.pg_stat_database WHERE datname = ANY (%s)",
                         ([f"db_{t}" for t in IDS],))
    return dict(rows)


def _scratch_waiting(project) -> bool:
    rows = project.query(None, "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE wait_event_type = 'Lock'"
                               " AND query ILIKE 'CREATE DATABASE%%'")
    return rows[0][0] > 0


def test_the_other_databases_are_read_while_the_reference_is_built(project):
    _fleet(project, IDS)
    project.query("db_o3", "CREATE INDEX idx_tmp ON tasks (title)")
    before = _sessions(project)
    holder = pg.connect(project.server)
    holder.autocommit = False
    try:
        with holder.cursor() as cursor:  # the build's CREATE DATABASE waits for this; reading a database does not
            cursor.execute("LOCK TABLE pg_catalog.pg_database IN EXCLUSIVE MODE")
        process = project.spawn("drift", "--all-tenants", "--max-parallel", "1", "--full", "--json")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not _scratch_waiting(project):
            time.sleep(0.05)
        assert _scratch_waiting(project), "the reference build never reached its CREATE DATABASE"
        while time.monotonic() < deadline and not all(_sessions(project)[f"db_{t}"] > before[f"db_{t}"] for t in IDS):
            time.sleep(0.05)
        read = sorted(t for t in IDS if _sessions(project)[f"db_{t}"] > before[f"db_{t}"])
        assert _scratch_waiting(project)  # the build was held up all along
    finally:
        holder.rollback()
        holder.close()
    stdout, stderr = process.communicate(timeout=60)
    assert read == IDS, read  # every tenant read while the one worker's reference was still being built
    assert process.returncode == 1 and "Traceback" not in stderr, stdout + stderr
    document = json.loads(stdout)
    by_db = {d["database"]: d for d in document["databases"]}
    assert document["references_built"] == 1 and document["summary"] == {"match": 3, "differ": 1, "failed": 0}
    assert [d["text"] for d in by_db["db_o3"]["differences"]] == [
        "extra index public.idx_tmp ON public.tasks USING btree (title)"]
