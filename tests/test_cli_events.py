"""``migrate --events FILE``: one JSON line per database start and finish, written as it happens, so a
platform team can tail it; error texts masked like every other output."""

from __future__ import annotations

import json
import time


def _events(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_events_are_written_as_they_happen(project, tmp_path, pg_server):
    project.migrate_control()
    for tenant_id in ("e0", "e1", "e2"):
        project.add_tenant(tenant_id)
    project.clear("tenant")
    secret = pg_server.password.replace("'", "''")  # as a SQL literal
    project.write("tenant", "20240101000000_a.sql",
                  "DO $$ BEGIN\n"
                  "  IF current_database() = 'db_e0' THEN\n"
                  f"    RAISE EXCEPTION USING MESSAGE = 'e0 refuses {secret}';\n  END IF;\n"
                  "  IF current_database() = 'db_e1' THEN PERFORM pg_sleep(3); END IF;\nEND $$;\n")
    path = tmp_path / "events.jsonl"
    run = project.spawn("migrate", "--control", "--all-tenants", "--max-parallel", "1", "--waves", "1,rest",
                        "--max-failures", "2", "--retries", "0", "--events", str(path))
    seen_while_running = []
    while run.poll() is None and not seen_while_running:
        seen_while_running = [e for e in _events(path) if e["event"] == "start" and e["database"] == "db_e1"]
        time.sleep(0.05)
    assert seen_while_running and run.poll() is None  # e1's start is readable while e1 still runs
    assert not [e for e in _events(path) if e["event"] == "finish" and e["database"] == "db_e1"]
    stdout, stderr = run.communicate(timeout=60)
    assert run.returncode == 1, stderr

    events = _events(path)
    databases = (project.control_db, "db_e0", "db_e1", "db_e2")  # --max-parallel 1: one after the other
    assert [(e["event"], e["database"]) for e in events] == [
        (kind, database) for database in databases for kind in ("start", "finish")], stderr
    finish = {e["database"]: e for e in events if e["event"] == "finish"}
    assert finish[project.control_db]["wave"] is None and finish[project.control_db]["tenant"] is None
    assert [finish[db]["wave"] for db in ("db_e0", "db_e1", "db_e2")] == [1, 2, 2]
    assert [finish[db]["outcome"] for db in ("db_e0", "db_e1", "db_e2")] == ["failed", "ok", "ok"]
    assert "e0 refuses ***" in finish["db_e0"]["error"] and finish["db_e1"]["error"] is None
    assert finish["db_e1"]["seconds"] >= 3 and finish["db_e1"]["applied"] == ["20240101000000"]
    assert finish["db_e1"]["tenant"] == "e1" and finish["db_e1"]["server"]
    assert len({e["run"] for e in events}) == 1
    assert pg_server.password not in path.read_text()


def test_events_file_that_cannot_be_written_is_refused_before_anything_runs(project, tmp_path):
    project.tenant_chain({"20240101000000_a.sql": "CREATE TABLE t (x int);\n"}, tenant="e1")
    result = project.cli("migrate", "--all-tenants", "--events", str(tmp_path / "no" / "such" / "events.jsonl"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: --events ") and "No such file or directory" in result.stderr
    assert project.version("db_e1") is None
