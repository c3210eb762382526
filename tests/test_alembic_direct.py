"""Plain ``alembic -c alembic.ini -n control|tenant ...`` over the .sql chain, as a subprocess."""

from __future__ import annotations

import re

import pytest

TENANT_CHAIN = {
    "20240101000000_first.sql": "BEGIN;\nCREATE TABLE one (id int);\nCOMMIT;\n",
    "20240102000000_second.sql": "CREATE TABLE two (id int);\n",
    "20240103000000_third.sql": "BEGIN;\nCREATE TABLE three (id int);\nINSERT INTO nope VALUES (1);\nCOMMIT;\n",
}


def _versions_of(output: str) -> list[str]:
    return re.findall(r"\b(\d{14})\b", output)


def test_history_heads_current_follow_the_files(project):
    history = project.alembic("-n", "control", "history")
    assert history.returncode == 0, history.stderr
    assert "<base> -> 20250101090000, create tenants" in history.stdout
    assert "20250101090000 -> 20250115120000 (head), add tenant plan" in history.stdout
    heads = project.alembic("-n", "control", "heads")
    assert heads.stdout.strip() == "20250115120000 (head)"
    current = project.alembic("-n", "control", "current")
    assert current.returncode == 0 and _versions_of(current.stdout) == []


def test_upgrade_head_applies_in_order_with_ledger(project):
    result = project.alembic("-n", "control", "upgrade", "head")
    assert result.returncode == 0, result.stderr
    assert project.version(project.control_db) == "20250115120000"
    assert project.ledger(project.control_db) == [("20250101090000", "migrate"), ("20250115120000", "migrate")]
    checksums = project.control("SELECT checksum, applied_at IS NOT NULL FROM schema_migrations")
    assert all(len(c) == 64 and ok for c, ok in checksums)
    assert "plan" in {r[0] for r in project.control("SELECT column_name FROM information_schema.columns WHERE table_name = 'tenants'")}
    current = project.alembic("-n", "control", "current")
    assert "20250115120000 (head)" in current.stdout


def test_upgrade_to_a_middle_version_then_stamp(project):
    assert project.alembic("-n", "control", "upgrade", "20250101090000").returncode == 0
    assert project.version(project.control_db) == "20250101090000"
    assert "plan" not in {r[0] for r in project.control("SELECT column_name FROM information_schema.columns WHERE table_name = 'tenants'")}
    stamp = project.alembic("-n", "control", "stamp", "20250115120000")
    assert stamp.returncode == 0, stamp.stderr
    assert project.version(project.control_db) == "20250115120000"
    assert project.ledger(project.control_db) == [("20250101090000", "migrate"), ("20250115120000", "stamp")]
    # stamping back down unmarks the later version in the ledger too
    assert project.alembic("-n", "control", "stamp", "20250101090000").returncode == 0
    assert project.ledger(project.control_db) == [("20250101090000", "migrate")]


def test_offline_sql_prints_statements_and_version_table(project):
    result = project.alembic("-n", "tenant", "upgrade", "head", "--sql", env={"CONTROL_DATABASE_URL": None})
    assert result.returncode == 0, result.stderr
    sql = result.stdout
    assert "CREATE TABLE alembic_version" in sql
    assert "CREATE TABLE users" in sql
    assert "INSERT INTO alembic_version (version_num) VALUES ('20250101090000')" in sql
    assert "INSERT INTO schema_migrations" in sql
    # the CONCURRENTLY file is bracketed by COMMIT/BEGIN so it runs outside a transaction
    concurrently = sql.index("CREATE INDEX CONCURRENTLY")
    assert sql.rfind("COMMIT;", 0, concurrently) > sql.rfind("BEGIN;", 0, concurrently)


def test_tenant_environment_with_x_argument(project):
    project.migrate_control()
    database = project.add_tenant("acme")
    result = project.alembic("-n", "tenant", "-x", "tenant=acme", "upgrade", "head")
    assert result.returncode == 0, result.stderr
    assert project.version(database) == "20250201080000"
    assert {"users", "projects", "tasks", "schema_migrations", "alembic_version"} <= project.tables(database)
    assert "db_acme 20250120143000: NOTICE: backfilled preferences for 0 users" in result.stderr
    valid = project.query(database, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'tasks_open_due_idx'::regclass")
    assert valid == [(True,)]


def test_tenant_environment_requires_a_tenant(project):
    result = project.alembic("-n", "tenant", "current")
    assert result.returncode != 0
    assert "-x tenant=<id>" in result.stderr
    assert "Traceback" not in result.stderr


def test_failing_third_file_leaves_first_two_applied(project):
    project.migrate_control()
    database = project.add_tenant("acme")
    project.clear("tenant")
    for name, sql in TENANT_CHAIN.items():
        project.write("tenant", name, sql)
    result = project.alembic("-n", "tenant", "-x", "tenant=acme", "upgrade", "head")
    assert result.returncode != 0
    assert "20240103000000_third.sql:3:" in result.stderr
    assert 'relation "nope" does not exist' in result.stderr
    assert "Traceback" not in result.stderr
    assert project.version(database) == "20240102000000"
    assert {"one", "two"} <= project.tables(database)
    assert "three" not in project.tables(database)
    assert [v for v, _ in project.ledger(database)] == ["20240101000000", "20240102000000"]


def test_do_blocks_strings_and_comments_with_semicolons(project):
    project.migrate_control()
    database = project.add_tenant("acme")
    project.clear("tenant")
    project.write(
        "tenant",
        "20240101000000_tricky.sql",
        "-- a comment; with a semicolon\n"
        "BEGIN;\n"
        "CREATE TABLE notes (body text);\n"
        "INSERT INTO notes VALUES ('a;b'), ('100% :name ?');\n"
        "/* block; comment */\n"
        "DO $$\nBEGIN\n  INSERT INTO notes VALUES ('from; do');\n  RAISE NOTICE 'step one; done';\n"
        "  RAISE NOTICE 'step two';\nEND\n$$;\n"
        "CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $fn$ SELECT 'x;y' $fn$;\n"
        "COMMIT;\n",
    )
    result = project.alembic("-n", "tenant", "-x", "tenant=acme", "upgrade", "head")
    assert result.returncode == 0, result.stderr
    bodies = sorted(r[0] for r in project.query(database, "SELECT body FROM notes"))
    assert bodies == ["100% :name ?", "a;b", "from; do"]
    assert project.query(database, "SELECT f()") == [("x;y",)]
    assert "db_acme 20240101000000: NOTICE: step one; done" in result.stderr
    assert result.stderr.index("step one") < result.stderr.index("step two")


def test_concurrently_file_runs_outside_a_transaction(project):
    project.migrate_control()
    database = project.add_tenant("acme")
    project.clear("tenant")
    project.write("tenant", "20240101000000_t.sql", "BEGIN;\nCREATE TABLE t (a int, b int);\nCOMMIT;\n")
    project.write(
        "tenant",
        "20240102000000_idx.sql",
        "CREATE INDEX CONCURRENTLY t_a_idx ON t (a);\nCREATE INDEX CONCURRENTLY t_b_idx ON t (b);\n",
    )
    result = project.alembic("-n", "tenant", "-x", "tenant=acme", "upgrade", "head")
    assert result.returncode == 0, result.stderr
    assert project.version(database) == "20240102000000"
    valid = project.query(database, "SELECT count(*) FROM pg_index WHERE indisvalid AND indrelid = 't'::regclass")
    assert valid == [(2,)]


def test_failing_concurrently_file_records_no_version_and_reruns(project):
    project.migrate_control()
    database = project.add_tenant("acme")
    project.clear("tenant")
    project.write("tenant", "20240101000000_t.sql", "CREATE TABLE t (a int);\nINSERT INTO t VALUES (1), (1);\n")
    project.write(
        "tenant",
        "20240102000000_idx.sql",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_plain ON t (a);\nCREATE UNIQUE INDEX CONCURRENTLY t_unique ON t (a);\n",
    )
    result = project.alembic("-n", "tenant", "-x", "tenant=acme", "upgrade", "head")
    assert result.returncode != 0
    assert "20240102000000_idx.sql:2:" in result.stderr
    assert "line 1 of this file already ran" in result.stderr
    assert project.version(database) == "20240101000000"
    project.query(database, "DELETE FROM t")
    project.query(database, "DROP INDEX IF EXISTS t_unique")  # the invalid leftover of the failed build
    again = project.alembic("-n", "tenant", "-x", "tenant=acme", "upgrade", "head")
    assert again.returncode == 0, again.stderr
    assert project.version(database) == "20240102000000"


def test_duplicate_versions_are_an_error_naming_both_files(project):
    project.write("control", "20250101090000_again.sql", "SELECT 1;\n")
    result = project.alembic("-n", "control", "history")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "20250101090000_create_tenants.sql" in output
    assert "20250101090000_again.sql" in output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    "name",
    ["2025010109_short.sql", "20250101090000.sql", "20250101090000_x.SQL", "20251301090000_bad_month.sql"],
)
def test_near_miss_names_warn_and_are_not_revisions(project, name):
    project.write("control", name, "SELECT 1;\n")
    result = project.alembic("-n", "control", "history")
    assert result.returncode == 0, result.stderr
    assert f"warning: ignoring" in result.stderr and name in result.stderr
    assert sorted(set(_versions_of(result.stdout))) == ["20250101090000", "20250115120000"]


def test_missing_control_url_is_one_line(project):
    result = project.alembic("-n", "control", "upgrade", "head", env={"CONTROL_DATABASE_URL": None})
    assert result.returncode != 0
    assert "CONTROL_DATABASE_URL is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_downgrade_is_refused_and_changes_nothing(project):
    assert project.alembic("-n", "control", "upgrade", "head").returncode == 0
    result = project.alembic("-n", "control", "downgrade", "base")
    assert result.returncode != 0
    assert "forward-only" in result.stderr
    assert project.version(project.control_db) == "20250115120000"
    assert len(project.ledger(project.control_db)) == 2
    assert "tenants" in project.tables(project.control_db)


def test_alembic_revision_writes_the_next_sql_file_from_creates_template(project):
    before = set(project.migrations("tenant").iterdir())
    result = project.alembic("-n", "tenant", "revision", "-m", "add labels")
    assert result.returncode == 0, result.stderr
    [written] = set(project.migrations("tenant").iterdir()) - before
    assert re.fullmatch(r"\d{14}_add_labels\.sql", written.name) and written.name[:14] > max(p.name[:14] for p in before if p.name[0].isdigit())
    assert f"wrote {written}" in result.stdout
    created = project.cli("create", "tenant", "add labels")  # the CLI's file, for comparison
    assert written.read_text() == (project.root / created.stdout.strip()).read_text()
    (project.root / created.stdout.strip()).unlink()
    assert not list(project.migrations("tenant").glob("*.py"))
    history = project.alembic("-n", "tenant", "heads")
    assert history.returncode == 0 and history.stdout.startswith(written.name[:14]), history.stdout + history.stderr
    written.write_text("BEGIN;\nALTER TABLE projects ADD COLUMN labels text[];\nCOMMIT;\n")
    project.migrate_control()
    db = project.add_tenant("acme")
    upgraded = project.alembic("-n", "tenant", "-x", "tenant=acme", "upgrade", "head")
    assert upgraded.returncode == 0, upgraded.stderr
    assert project.version(db) == written.name[:14]
    empty = project.alembic("-n", "control", "revision")  # no -m: one line, no file
    assert empty.returncode != 0 and empty.stdout.startswith("FAILED: the description is empty"), empty.stdout
    assert "Traceback" not in empty.stderr


def test_alembic_check_and_autogenerate_say_what_to_run_instead(project):
    files = sorted(project.migrations("tenant").iterdir())
    unset = {"CONTROL_DATABASE_URL": None}  # nothing connects: the answer needs no database
    for args, instead in ((["check"], "run `grapevine-migrations check` (the files) or `grapevine-migrations drift`"),
                          (["revision", "--autogenerate", "-m", "x"],
                           'run `alembic -c alembic.ini -n tenant revision -m "description"` and write its SQL')):
        result = project.alembic("-n", "tenant", *args, env=unset)
        assert result.returncode != 0, (args, result.stdout)
        [line] = (result.stdout + result.stderr).strip().splitlines()  # Alembic prints FAILED on stdout
        assert line.startswith("FAILED: ") and instead in line, (args, result.stdout, result.stderr)
        assert sorted(project.migrations("tenant").iterdir()) == files


def test_wrong_password_is_one_line_without_the_password(project, pg_server):
    from pg import url_for

    url = url_for(pg_server, project.control_db, password=pg_server.password + "x")
    result = project.alembic("-n", "control", "upgrade", "head", env={"CONTROL_DATABASE_URL": url})
    assert result.returncode != 0
    assert "password authentication failed" in result.stderr
    assert pg_server.password not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_batched_statements_with_trailing_comments_and_a_late_failure(project):
    """Statements go to the server in batches; comments cannot swallow a separator, and a failure
    inside a batch still names its own line and leaves nothing of the file behind."""
    project.migrate_control()
    database = project.add_tenant("acme")
    project.clear("tenant")
    project.write("tenant", "20240101000000_ok.sql",
                  "CREATE TABLE a (x int) -- trailing comment\n;\nCREATE TABLE b (x int); -- another\n"
                  "INSERT INTO a VALUES (1);\n")
    project.write("tenant", "20240102000000_fails.sql",
                  "BEGIN;\nCREATE TABLE c (x int);\nINSERT INTO c VALUES (1);\nINSERT INTO a VALUES ('nope');\n"
                  "CREATE TABLE d (x int);\nCOMMIT;\n")
    result = project.alembic("-n", "tenant", "-x", "tenant=acme", "upgrade", "head")
    assert result.returncode != 0
    assert "20240102000000_fails.sql:4:" in result.stderr and "invalid input syntax for type integer" in result.stderr
    assert project.version(database) == "20240101000000"
    assert {"a", "b"} <= project.tables(database) and not {"c", "d"} & project.tables(database)
    assert project.query(database, "SELECT x FROM a") == [(1,)]


def test_alembic_and_the_cli_share_one_version_table_and_ledger(project):
    """Half the chain through plain alembic, the rest through the CLI, then back: one history."""
    project.migrate_control()
    database = project.add_tenant("acme")
    half = project.alembic("-n", "tenant", "-x", "tenant=acme", "upgrade", "20250108100000")
    assert half.returncode == 0, half.stderr
    rest = project.cli("migrate", "--tenant", "acme", "--json")
    assert rest.returncode == 0, rest.stderr
    assert '"applied": [\n        "20250120143000",\n        "20250201080000"\n      ]' in rest.stdout
    current = project.alembic("-n", "tenant", "-x", "tenant=acme", "current")
    assert "20250201080000 (head)" in current.stdout
    again = project.alembic("-n", "tenant", "-x", "tenant=acme", "upgrade", "head")
    assert again.returncode == 0 and "Running upgrade" not in again.stderr
    assert [v for v, _ in project.ledger(database)] == [
        "20250101090000", "20250108100000", "20250120143000", "20250201080000"]
    assert project.query(database, "SELECT count(*) FROM alembic_version") == [(1,)]
    status = project.cli("status", "--tenant", "acme")
    assert status.returncode == 0, status.stdout
