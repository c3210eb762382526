"""The CLI as a subprocess against the test PostgreSQL: every command and flag, checked in the databases."""

from __future__ import annotations

import datetime as dt
import json
import re
import sys

import pytest

HEAD = "20250201080000"


@pytest.fixture
def tenants(project):
    """Control migrated; acme and globex provisioned, ghost provisioned without a database,
    sleepy suspended, gone soft-deleted."""
    project.migrate_control()
    project.add_tenant("acme")
    project.add_tenant("globex")
    project.add_tenant("ghost", create_db=False)
    project.add_tenant("sleepy", state="suspended")
    project.add_tenant("gone", deleted=True)
    return project


def _json(result) -> dict:
    assert result.stdout.lstrip().startswith("{"), result.stdout + result.stderr
    return json.loads(result.stdout)


# ---- create / list ----------------------------------------------------------------------------


@pytest.mark.files_only
def test_create_writes_a_timestamped_file_from_the_template(project):
    before = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d%H%M%S")
    result = project.cli("create", "tenant", "Add user preferences!")
    assert result.returncode == 0, result.stderr
    path = result.stdout.strip()
    name = path.rsplit("/", 1)[1]
    assert re.fullmatch(r"\d{14}_add_user_preferences\.sql", name)
    assert name[:14] >= before
    text = (project.migrations("tenant") / name).read_text()
    assert "BEGIN;" in text and "COMMIT;" in text
    listed = project.cli("list", "--tenant")
    assert name[:14] in listed.stdout


@pytest.mark.files_only
@pytest.mark.parametrize(
    "args, message",
    [
        (("create", "tenant", "  "), "description is empty"),
        (("create", "billing", "x"), "Invalid value"),
    ],
)
def test_create_rejects_bad_input(project, args, message):
    result = project.cli(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_create_takes_the_next_free_second_when_this_one_is_taken(project):
    now = dt.datetime.now(dt.timezone.utc)
    taken = set()
    for seconds in range(0, 4):
        version = (now + dt.timedelta(seconds=seconds)).strftime("%Y%m%d%H%M%S")
        project.write("control", f"{version}_taken.sql", "SELECT 1;\n")
        taken.add(version)
    result = project.cli("create", "control", "taken too")
    assert result.returncode == 0, result.stderr
    created = result.stdout.strip().rsplit("/", 1)[-1]
    assert created.endswith("_taken_too.sql") and created[:14] not in taken and created[:14] > min(taken)
    again = [project.cli("create", "tenant", "same second").stdout.strip() for _ in range(3)]
    assert len({path.rsplit("/", 1)[-1][:14] for path in again}) == 3  # each its own version


def test_list_shows_both_chains_in_order(project):
    result = project.cli("list")
    assert result.returncode == 0
    lines = [line.split() for line in result.stdout.splitlines()[1:]]
    assert [(l[0], l[1]) for l in lines] == [
        ("control", "20250101090000"), ("control", "20250115120000"),
        ("tenant", "20250101090000"), ("tenant", "20250108100000"),
        ("tenant", "20250120143000"), ("tenant", HEAD),
    ]
    only = _json(project.cli("list", "--control", "--json"))
    assert list(only) == ["control"]
    assert only["control"][1]["description"] == "add tenant plan"
    assert "\x1b[" not in result.stdout  # piped: no colour codes


# ---- status -----------------------------------------------------------------------------------


def test_status_default_view_lists_control_and_problem_tenants(tenants):
    result = tenants.cli("status")
    assert result.returncode == 1, result.stdout + result.stderr  # ghost's database is missing
    out = result.stdout
    assert "control" in out and "up to date" in out
    assert "acme" in out and "globex" in out and "4 pending" in out
    assert "database db_ghost does not exist" in out
    assert "sleepy" not in out and "gone" not in out


def test_status_exit_codes_pending_then_up_to_date(tenants):
    assert tenants.cli("status", "--tenant", "acme").returncode == 0  # pending: 0, as the previous tool
    assert tenants.cli("status", "--tenant", "acme", "--exit-code").returncode == 3
    assert tenants.cli("migrate", "--tenant", "acme").returncode == 0
    result = tenants.cli("status", "--tenant", "acme", "--verbose")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("applied") >= 4
    assert re.search(rf"{HEAD}\s+applied\s+\d{{4}}-\d\d-\d\dT", result.stdout)


def test_status_json_has_every_database_and_applied_times(tenants):
    assert tenants.cli("migrate", "--tenant", "acme").returncode == 0
    doc = _json(tenants.cli("status", "--json"))
    by_db = {d["database"]: d for d in doc["databases"]}
    assert set(by_db) == {tenants.control_db, "db_acme", "db_globex", "db_ghost"}
    assert by_db["db_acme"]["version"] == HEAD and by_db["db_acme"]["pending"] == []
    assert all(m["applied_at"] for m in by_db["db_acme"]["migrations"])
    assert by_db["db_globex"]["pending"] == ["20250101090000", "20250108100000", "20250120143000", HEAD]
    assert by_db["db_ghost"]["missing"] is True and not by_db["db_ghost"]["ok"]
    assert doc["versions"] == {HEAD: 1, "(none)": 1, "missing": 1}  # ghost has no database


# ---- migrate ----------------------------------------------------------------------------------


def test_migrate_needs_a_target(project):
    result = project.cli("migrate")
    assert result.returncode == 1  # as the previous tool
    assert "migrate needs a target" in result.stderr


def test_migrate_control_and_all_tenants(tenants):
    result = tenants.cli("migrate", "--control", "--all-tenants", "--json")
    assert result.returncode == 1  # ghost
    doc = _json(result)
    by_db = {d["database"]: d for d in doc["databases"]}
    assert doc["databases"][0]["target"] == "control"
    assert by_db["db_acme"]["applied"] == ["20250101090000", "20250108100000", "20250120143000", HEAD]
    assert by_db["db_ghost"]["error"].endswith("database db_ghost does not exist")
    assert by_db["db_ghost"]["attempts"] == 1  # a missing database is not retried
    for database in ("db_acme", "db_globex"):
        assert tenants.version(database) == HEAD
        assert len(tenants.ledger(database)) == 4
    assert doc["summary"] == {"databases": 4, "ok": 3, "failed": 1, "skipped": 0, "applied": 8, "retries": 0}


def test_dry_run_writes_nothing(tenants):
    result = tenants.cli("migrate", "--tenant", "acme", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "would apply" in result.stdout and "20250101090000_create_users_and_projects.sql" in result.stdout
    assert tenants.tables("db_acme") == set()  # not even the version table


@pytest.mark.parametrize(
    "tenant, message",
    [("nobody", "unknown tenant nobody"), ("bad'id", "invalid tenant id")],
)
def test_explicit_tenant_must_exist_and_be_valid(tenants, tenant, message):  # any state: test_fleet_named_tenants
    result = tenants.cli("migrate", "--tenant", tenant)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_parallel_fan_out_runs_each_migration_in_its_own_database(project):
    project.migrate_control()
    project.clear("tenant")
    project.write(
        "tenant",
        "20240101000000_where_am_i.sql",
        "BEGIN;\nCREATE TABLE whoami (db name, at timestamptz DEFAULT clock_timestamp());\n"
        "INSERT INTO whoami (db) SELECT current_database();\nSELECT pg_sleep(0.2);\nCOMMIT;\n",
    )
    ids = [f"p{i:02d}" for i in range(16)]
    for tenant_id in ids:
        project.add_tenant(tenant_id)
    result = project.cli("migrate", "--all-tenants", "--max-parallel", "8", "--json")
    assert result.returncode == 0, result.stderr
    starts = []
    for tenant_id in ids:
        rows = project.query(f"db_{tenant_id}", "SELECT db, at FROM whoami")
        assert [r[0] for r in rows] == [f"db_{tenant_id}"]
        starts.append(rows[0][1])
    # 16 databases, 0.2 s each, 8 at a time: overlapping, so well under the serial 3.2 s span
    assert (max(starts) - min(starts)).total_seconds() < 2.5


def test_sql_error_is_not_retried_and_names_file_and_line(tenants):
    tenants.clear("tenant")
    tenants.write("tenant", "20240101000000_bad.sql", "BEGIN;\nCREATE TABLE ok (a int);\nSELEC 1;\nCOMMIT;\n")
    result = tenants.cli("migrate", "--tenant", "acme", "--json")
    assert result.returncode == 1
    [db] = _json(result)["databases"]
    assert db["attempts"] == 1
    assert "20240101000000_bad.sql:3:" in db["error"] and 'syntax error at or near "SELEC"' in db["error"]
    assert "ok" not in tenants.tables("db_acme")


def test_statement_timeout_bounds_each_statement(tenants):
    tenants.clear("tenant")
    tenants.write("tenant", "20240101000000_slow.sql", "SELECT pg_sleep(5);\n")
    result = tenants.cli("migrate", "--tenant", "acme", "--timeout", "1", "--json")
    assert result.returncode == 1
    [db] = _json(result)["databases"]
    assert "statement timeout" in db["error"]
    assert db["seconds"] < 4


def test_lock_timeout_fails_fast_and_is_retried(tenants):
    import psycopg2

    from pg import connect

    assert tenants.cli("migrate", "--tenant", "acme").returncode == 0
    tenants.write("tenant", "20260101000000_touch_users.sql", "ALTER TABLE users ADD COLUMN nickname text;\n")
    holder = connect(tenants.server, "db_acme")
    holder.autocommit = False
    holder.cursor().execute("LOCK TABLE users IN ACCESS SHARE MODE")
    try:
        result = tenants.cli("migrate", "--tenant", "acme", "--lock-timeout", "0.3", "--retries", "2", "--json")
    finally:
        holder.rollback()
        holder.close()
    assert result.returncode == 1
    [db] = _json(result)["databases"]
    assert db["attempts"] == 3 and _json(result)["summary"]["retries"] == 2
    assert "lock timeout" in db["error"]
    assert "HINT: another session held a lock this statement needed: raise --lock-timeout" in db["error"]
    retried = [line for line in result.stderr.splitlines() if "retrying in" in line]  # shown as they happen
    assert len(retried) == 2 and retried[0].startswith("db_acme: attempt 1 failed (")
    columns = tenants.query("db_acme", "SELECT column_name FROM information_schema.columns WHERE table_name = 'users'")
    assert ("nickname",) not in columns
    assert tenants.version("db_acme") == HEAD
    assert psycopg2  # the holder used a real second session


# ---- mark -------------------------------------------------------------------------------------


def test_mark_apply_marks_one_version_and_range_marks_the_earlier_pending(tenants):
    single = tenants.cli("mark", "--apply", "20250108100000", "--tenant", "acme")
    assert single.returncode == 0, single.stderr
    assert tenants.version("db_acme") is None  # the first file is still pending
    assert tenants.ledger("db_acme") == [("20250108100000", "mark")]
    wide = tenants.cli("mark", "--apply", "20250120143000", "--range", "--tenant", "acme")
    assert wide.returncode == 0, wide.stderr
    assert tenants.version("db_acme") == "20250120143000"
    assert tenants.ledger("db_acme") == [
        ("20250101090000", "mark"), ("20250108100000", "mark"), ("20250120143000", "mark"),
    ]
    assert "users" not in tenants.tables("db_acme")  # stamped, not run


def test_mark_unapply_and_dry_run(tenants):
    assert tenants.cli("migrate", "--tenant", "acme").returncode == 0
    dry = tenants.cli("mark", "--unapply", "20250120143000", "--tenant", "acme", "--dry-run", "--range", "--json")
    assert dry.returncode == 0
    [db] = _json(dry)["databases"]
    assert db["unmarked"] == ["20250120143000", HEAD]
    assert tenants.version("db_acme") == HEAD
    single = tenants.cli("mark", "--unapply", HEAD, "--tenant", "acme")
    assert single.returncode == 0, single.stderr
    assert tenants.version("db_acme") == "20250120143000"
    assert [v for v, _ in tenants.ledger("db_acme")] == ["20250101090000", "20250108100000", "20250120143000"]


def test_mark_unknown_version_shows_closest(tenants):
    result = tenants.cli("mark", "--apply", "20250120143001", "--tenant", "acme")
    assert result.returncode == 2
    assert "unknown version 20250120143001" in result.stderr and "20250120143000" in result.stderr


def test_mark_apply_all_refuses_without_terminal_then_forced(tenants):
    refused = tenants.cli("mark", "--DANGEROUS-apply-all", "--tenant", "acme")
    assert refused.returncode == 2
    assert "no terminal" in refused.stderr
    assert tenants.tables("db_acme") == set()
    forced = tenants.cli("mark", "--DANGEROUS-apply-all", "--tenant", "acme", "--force", "--json")
    assert forced.returncode == 0, forced.stderr
    assert tenants.version("db_acme") == HEAD
    assert len(tenants.ledger("db_acme")) == 4


def test_mark_needs_exactly_one_mode(tenants):
    result = tenants.cli("mark", "--apply", HEAD, "--DANGEROUS-apply-all", "--tenant", "acme")
    assert result.returncode == 2 and "exactly one" in result.stderr


# ---- reset ------------------------------------------------------------------------------------


def test_reset_drops_everything_tenants_and_control(tenants):
    assert tenants.cli("migrate", "--tenant", "acme").returncode == 0
    dry = tenants.cli("reset", "--tenant", "acme", "--dry-run")
    assert dry.returncode == 0 and "would: drop schema public" in dry.stdout
    assert "users" in tenants.tables("db_acme")
    refused = tenants.cli("reset", "--tenant", "acme")
    assert refused.returncode == 2 and "no terminal" in refused.stderr
    result = tenants.cli("reset", "--tenant", "acme", "--force")
    assert result.returncode == 0, result.stderr
    assert tenants.tables("db_acme") == set()
    again = tenants.cli("migrate", "--tenant", "acme")
    assert again.returncode == 0 and tenants.version("db_acme") == HEAD


def test_reset_refuses_remote_hosts_even_with_force(project, pg_server):
    from pg import url_for

    remote = url_for(pg_server, project.control_db).replace("127.0.0.1", "db.example.com")
    result = project.cli("reset", "--control", "--force", env={"CONTROL_DATABASE_URL": remote})
    assert result.returncode == 2
    assert "only local servers" in result.stderr


# ---- connections and secrets -------------------------------------------------------------------


def test_sslmode_require_against_a_server_without_tls_fails_clearly(project, pg_server):
    from pg import url_for

    url = url_for(pg_server, project.control_db) + "?sslmode=require"
    result = project.cli("migrate", "--control", "--retries", "0", env={"CONTROL_DATABASE_URL": url}, timeout=30)
    assert result.returncode == 1
    assert "server does not support SSL" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_connection_options_carry_over_to_tenants(tenants, pg_server):
    from pg import url_for

    url = url_for(pg_server, tenants.control_db) + "?application_name=deploy-42&connect_timeout=5"
    env = {"CONTROL_DATABASE_URL": url}
    tenants.write("tenant", "20260101000000_who.sql",
                  "CREATE TABLE who AS SELECT current_setting('application_name') AS app;\n")
    assert tenants.cli("migrate", "--tenant", "acme", env=env).returncode == 0
    assert tenants.query("db_acme", "SELECT app FROM who") == [("deploy-42",)]


def test_password_never_printed(tenants, pg_server):
    from pg import url_for

    wrong = url_for(pg_server, tenants.control_db, password=pg_server.password + "Z")
    runs = [
        tenants.cli("status"),
        tenants.cli("migrate", "--all-tenants", "--json"),
        tenants.cli("status", "--debug", env={"CONTROL_DATABASE_URL": wrong}),
        tenants.cli("migrate", "--control", "--json", env={"CONTROL_DATABASE_URL": wrong}),
    ]
    for result in runs:
        assert pg_server.password not in result.stdout + result.stderr
    assert "***" in runs[2].stderr + runs[2].stdout


def test_python_module_entry_point(project):
    result = project.run(sys.executable, "-m", "grapevine_alembic", "list", "--control")
    assert result.returncode == 0 and "20250101090000" in result.stdout


def test_terminal_output_uses_tables_and_progress(tenants):
    """On a real terminal (and outside CI) the rich path runs: it must render, not crash."""
    import shlex
    import shutil

    if not shutil.which("script"):
        pytest.skip("util-linux `script` is needed to give the CLI a terminal")
    command = " ".join(shlex.quote(a) for a in ["grapevine-migrations", "migrate", "--all-tenants"])
    result = tenants.run("script", "-qec", command, "/dev/null", env={"CI": None, "TERM": "xterm", "COLUMNS": "120"})
    assert result.returncode == 1, result.stdout  # ghost's database is missing
    assert "\x1b[" in result.stdout  # styled output: the terminal path, not the plain one
    assert "db_acme" in result.stdout and "Traceback" not in result.stdout
    assert tenants.version("db_acme") == HEAD


def test_tenant_sslmode_overrides_the_control_urls(tenants, pg_server):
    from pg import url_for

    env = {"CONTROL_DATABASE_URL": url_for(pg_server, tenants.control_db) + "?sslmode=disable",
           "PG_TENANT_DATABASE_SSLMODE": "require"}
    result = tenants.cli("migrate", "--control", "--tenant", "acme", "--retries", "0", "--json", env=env)
    doc = _json(result)
    assert doc["databases"][0]["ok"] is True  # control: sslmode=disable
    assert "server does not support SSL" in doc["databases"][1]["error"]  # tenant: sslmode=require
