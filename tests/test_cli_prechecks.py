"""``-- grapevine: precheck`` against real PostgreSQL: a false answer fails the database before anything of
its file runs, on both roads (migrate, plain alembic) and from the API; the checks run read-only and not
again in the body; --dry-run names the databases that would fail; check refuses a precheck that is not one
plain SELECT; the previous tool and psql run the same file as an ordinary one."""

from __future__ import annotations

import json
import subprocess

import pytest
from reference_applier import apply_like_previous_tool

from grapevine_alembic.api import migrate_fleet

VERSION = "20240101000000"
# The precheck answers false where a marker table exists ("fixing the data" drops it).  It calls a function
# that raises unless the transaction is read-only: the tool must run it read-only, and never in the body.
GUARDED = (
    "-- a release guarded by its data\n"
    "-- grapevine: precheck\n"
    "SELECT to_regclass('public.fail_here') IS NULL AND read_only_or_raise() AS no_marker;\n"
    "CREATE TABLE stamp (id int);\n"
)
READ_ONLY_OR_RAISE = (
    "CREATE FUNCTION read_only_or_raise() RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN"
    " IF current_setting('transaction_read_only') <> 'on' THEN RAISE EXCEPTION 'the precheck ran read-write'; END IF;"
    " RETURN true; END $$"
)


def _fleet(project, ids, failing=()):
    project.migrate_control()
    project.clear("tenant")
    project.write("tenant", f"{VERSION}_guarded.sql", GUARDED)
    for tenant_id in ids:
        database = project.add_tenant(tenant_id)
        project.query(database, READ_ONLY_OR_RAISE)
    for tenant_id in failing:
        project.query(f"db_{tenant_id}", "CREATE TABLE fail_here ()")


def _untouched(project, database):
    assert project.version(database) is None and "stamp" not in project.tables(database), database


@pytest.mark.parametrize("road", ["cli", "alembic"])
def test_a_false_precheck_fails_the_database_and_nothing_of_the_file_runs(project, road):
    _fleet(project, ["p1", "p2"], failing=["p2"])
    for tenant_id in ("p1", "p2"):
        if road == "cli":
            result = project.cli("migrate", "--tenant", tenant_id)
        else:
            result = project.alembic("-n", "tenant", "-x", f"tenant={tenant_id}", "upgrade", "head")
        if tenant_id == "p1":
            assert result.returncode == 0, result.stderr
        else:
            assert result.returncode != 0
            out = result.stdout + result.stderr
            assert f'{VERSION}_guarded.sql:3: precheck "no_marker" failed (false): nothing of the file ran' in out, out
            assert "Traceback" not in out
    assert project.version("db_p1") == VERSION and "stamp" in project.tables("db_p1")
    _untouched(project, "db_p2")
    project.query("db_p2", "DROP TABLE fail_here")  # the data fixed: the same command applies it
    again = project.cli("migrate", "--tenant", "p2") if road == "cli" else project.alembic(
        "-n", "tenant", "-x", "tenant=p2", "upgrade", "head")
    assert again.returncode == 0, again.stderr
    assert project.version("db_p2") == VERSION and project.ledger("db_p2")[0][0] == VERSION


def test_prechecks_guard_a_no_transaction_file_on_both_roads(project):
    project.migrate_control()
    project.clear("tenant")
    project.write("tenant", f"{VERSION}_concurrently.sql", "-- grapevine: no-transaction\n" + GUARDED.replace(
        "CREATE TABLE stamp (id int);\n", "CREATE TABLE stamp (id int);\nCREATE INDEX CONCURRENTLY stamp_id ON stamp (id);\n"))
    for tenant_id in ("n1", "n2", "n3", "n4"):
        project.query(project.add_tenant(tenant_id), READ_ONLY_OR_RAISE)
    for tenant_id in ("n2", "n4"):
        project.query(f"db_{tenant_id}", "CREATE TABLE fail_here ()")
    runs = {tenant_id: project.cli("migrate", "--tenant", tenant_id) for tenant_id in ("n1", "n2")}
    runs |= {t: project.alembic("-n", "tenant", "-x", f"tenant={t}", "upgrade", "head") for t in ("n3", "n4")}
    for tenant_id in ("n1", "n3"):
        assert runs[tenant_id].returncode == 0, runs[tenant_id].stdout + runs[tenant_id].stderr
        assert project.query(f"db_{tenant_id}", "SELECT count(*) FROM pg_indexes WHERE indexname = 'stamp_id'") == [(1,)]
    for tenant_id in ("n2", "n4"):
        out = runs[tenant_id].stdout + runs[tenant_id].stderr
        assert runs[tenant_id].returncode != 0 and 'precheck "no_marker" failed (false)' in out, out
        _untouched(project, f"db_{tenant_id}")


def test_a_precheck_failure_counts_toward_the_failure_budget(project):
    ids = [f"b{i}" for i in range(1, 6)]
    _fleet(project, ids, failing=["b2"])
    result = project.cli("migrate", "--all-tenants", "--waves", "1,1,rest", "--max-failures", "1", "--json")
    assert result.returncode == 1
    states = {d["tenant"]: "skipped" if d["skipped"] else ("ok" if d["ok"] else "failed")
              for d in json.loads(result.stdout)["databases"] if d["tenant"]}
    assert states == {"b1": "ok", "b2": "failed", "b3": "skipped", "b4": "skipped", "b5": "skipped"}
    assert "halted in wave 2: 1 failure(s) reached --max-failures 1" in result.stderr
    failed = next(d for d in json.loads(result.stdout)["databases"] if d["tenant"] == "b2")
    assert 'precheck "no_marker" failed (false)' in failed["error"]


def test_the_api_runs_prechecks_in_a_rollout_and_resumes(project):
    ids = [f"a{i}" for i in range(1, 5)]
    _fleet(project, ids, failing=["a2"])
    url = project.env["CONTROL_DATABASE_URL"]
    result = migrate_fleet(project.root, control_url=url, waves="1,rest", max_failures=1, max_parallel=1, retries=0)
    assert (result.halted, result.reason) == (True, "budget")
    failed = next(d for d in result.databases if d.tenant == "a2")
    assert 'precheck "no_marker" failed (false)' in failed.error
    _untouched(project, "db_a2")
    project.query("db_a2", "DROP TABLE fail_here")
    again = migrate_fleet(project.root, control_url=url, waves="1,rest", max_failures=1)
    assert again.ok and [d.applied for d in again.databases if d.tenant] == [(), (VERSION,), (VERSION,), (VERSION,)]


@pytest.mark.parametrize("check, message", [
    ("SELECT nextval('seq') > 0 AS writes", 'precheck "writes" failed: cannot execute nextval() in a read-only transaction'),
    ("SELECT 1 AS one", 'precheck "one" failed: it must return one boolean, it returned 1'),
    ("SELECT true AS many FROM generate_series(1, 2)", 'precheck "many" failed: it must return one boolean, it returned 2 rows'),
    ("SELECT NULL::boolean AS unknown", 'precheck "unknown" failed (NULL)'),
])
def test_a_precheck_that_writes_or_does_not_answer_one_boolean_fails(project, check, message):
    database = project.tenant_chain({f"{VERSION}_x.sql": f"-- grapevine: precheck\n{check};\nCREATE TABLE stamp ();\n"})
    project.query(database, "CREATE SEQUENCE seq")
    result = project.cli("migrate", "--tenant", "acme")
    assert result.returncode == 1 and message in result.stdout, result.stdout + result.stderr
    _untouched(project, database)
    assert project.query(database, "SELECT last_value, is_called FROM seq") == [(1, False)]


def test_dry_run_runs_the_prechecks_and_names_the_databases_that_would_fail(project):
    _fleet(project, ["d1", "d2", "d3"], failing=["d2"])
    result = project.cli("migrate", "--all-tenants", "--dry-run", "--json")
    assert result.returncode == 1
    failed = {d["tenant"]: d["error"] for d in json.loads(result.stdout)["databases"] if d["tenant"] and not d["ok"]}
    assert list(failed) == ["d2"] and 'precheck "no_marker" failed (false)' in failed["d2"]
    for tenant_id in ("d1", "d2", "d3"):
        _untouched(project, f"db_{tenant_id}")


@pytest.mark.parametrize("body, message", [
    ("-- grapevine: precheck\nUPDATE t SET a = 1;\n", "the precheck is UPDATE, not a SELECT"),
    ("-- grapevine: precheck\nSELECT count(*) = 0 FROM t;\n", "the precheck must return one column named with AS"),
    ("-- grapevine: precheck\nSELECT true AS ok INTO kept;\n", "SELECT ... INTO creates a table"),
    ("-- grapevine: precheck\nWITH gone AS (DELETE FROM t RETURNING 1) SELECT true AS ok;\n", "the precheck's WITH query writes"),
    ("-- grapevine: precheck\nSELECT true AS ok FROM t FOR UPDATE;\n", "the precheck locks rows"),
    ("CREATE TABLE t2 ();\n-- grapevine: precheck\nSELECT true AS ok;\n", "a precheck must come before the file's first other statement"),
])
def test_check_and_migrate_refuse_a_precheck_that_is_not_one_read_only_select(project, body, message):
    database = project.tenant_chain({f"{VERSION}_bad.sql": body})
    check = project.cli("check")
    assert check.returncode != 0 and message in check.stdout + check.stderr, check.stdout + check.stderr
    migrate = project.cli("migrate", "--tenant", "acme")
    out = migrate.stdout + migrate.stderr
    assert migrate.returncode != 0 and message in out and "Traceback" not in out, out
    _untouched(project, database)


def test_the_previous_tool_and_psql_run_the_same_file_as_an_ordinary_one(project, pg_server):
    for tool in ("previous", "psql"):
        database = project.make_db()
        project.query(database, READ_ONLY_OR_RAISE.replace("RAISE EXCEPTION", "RAISE NOTICE"))
        if tool == "previous":
            apply_like_previous_tool(pg_server, database, GUARDED, VERSION)
        else:
            subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", "-q", "-h", pg_server.host, "-p", str(pg_server.port),
                            "-U", pg_server.superuser, "-d", database, "-f", "-"], input=GUARDED, text=True, check=True,
                           capture_output=True, env={"PGPASSWORD": pg_server.password or "", "PATH": "/usr/bin:/bin"})
        assert "stamp" in project.tables(database), tool


def test_a_precheck_line_inside_a_statement_is_not_one_and_the_checks_leave_the_body():
    from grapevine_alembic.files.parsing import parse_sql

    parsed = parse_sql("-- grapevine: precheck\nSELECT true AS first;\n--  GRAPEVINE: precheck\nSELECT false AS second;\n"
                       "DO $$ BEGIN\n-- grapevine: precheck\nEND $$;\nSELECT 1;\n")
    assert [(c.name, c.line) for c in parsed.prechecks] == [("first", 2), ("second", 4)]
    assert [s.line for s in parsed.statements] == [5, 8]  # the DO block and the plain SELECT stay in the body
