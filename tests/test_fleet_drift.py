"""`drift` over a fleet: hand-made changes named and grouped, each tenant against its own version, read-only."""

from __future__ import annotations

import json
import time

import pg

HEAD = "20250201080000"
FUNCTION_FILE = "20250301000000_add_task_count.sql"
FUNCTION_HEAD = "20250301000000"
FUNCTION_SQL = (
    "CREATE FUNCTION task_count(p bigint) RETURNS bigint LANGUAGE sql STABLE\n"
    "AS $$ SELECT count(*) FROM tasks WHERE project_id = p $$;\n"
)
REPLACED_SQL = (
    "CREATE OR REPLACE FUNCTION task_count(p bigint) RETURNS bigint LANGUAGE sql STABLE\n"
    "AS $$ SELECT count(*) FROM tasks WHERE project_id = p AND NOT done $$"
)


def _fleet(project, ids, *, older=()):
    """Tenants migrated to FUNCTION_HEAD; those in ``older`` stay at HEAD (migrated before the file came)."""
    project.migrate_control()
    for tenant_id in ids:
        project.add_tenant(tenant_id)
    result = project.cli("migrate", "--all-tenants")
    assert result.returncode == 0, result.stderr
    project.write("tenant", FUNCTION_FILE, FUNCTION_SQL)
    newer = [arg for t in ids if t not in older for arg in ("--tenant", t)]
    result = project.cli("migrate", *newer)
    assert result.returncode == 0, result.stderr


def test_hand_changes_are_named_and_grouped(project):
    ids = ["t01", "t02", "t03", "t04", "t05", "t06", "t07"]
    _fleet(project, ids, older=["t07"])
    project.query("db_t02", "CREATE INDEX idx_tmp ON tasks (title)")
    project.query("db_t03", "CREATE INDEX idx_tmp ON tasks (title)")
    project.query("db_t04", "ALTER TABLE users DROP COLUMN full_name")
    project.query("db_t05", "ALTER TABLE tasks ALTER COLUMN done SET DEFAULT true")
    project.query("db_t06", REPLACED_SQL)
    # the tool's own tables are not drift
    project.query("db_t01", "ALTER TABLE schema_migrations ADD COLUMN note text; CREATE INDEX ON alembic_version (version_num)")

    result = project.cli("drift", "--all-tenants")
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "2 match; 5 differ:", result.stdout
    assert lines[1:] == [
        "  db_t02, db_t03: extra index public.idx_tmp ON public.tasks USING btree (title)",
        "  db_t04: missing column public.users.full_name (text)",
        "  db_t05: changed column default public.tasks.done: false -> true",
        "  db_t06: changed function definition public.task_count(p bigint)",
    ], result.stdout

    # --full: every catalog read again (without it, db_t01 and db_t07, found equal above, are not)
    document = json.loads(project.cli("drift", "--all-tenants", "--json", "--full").stdout)
    by_db = {d["database"]: d for d in document["databases"]}
    assert document["ok"] is False and document["summary"] == {"match": 2, "differ": 5, "failed": 0}
    assert by_db["db_t07"]["version"] == HEAD and by_db["db_t07"]["differences"] == []  # its own version's schema
    assert by_db["db_t01"]["version"] == FUNCTION_HEAD and by_db["db_t01"]["drift"] is False
    [change] = by_db["db_t05"]["differences"]
    assert (change["change"], change["kind"], change["expected"], change["actual"]) == (
        "changed", "column default", "false", "true")
    [function] = by_db["db_t06"]["differences"]
    assert "AND NOT done" in function["actual"] and "AND NOT done" not in function["expected"]
    assert document["references_built"] == 2  # HEAD and FUNCTION_HEAD, once each for seven tenants


def test_older_tenant_is_compared_with_its_own_version(project):
    _fleet(project, ["new", "old"], older=["old"])
    project.query("db_old", "ALTER TABLE projects ALTER COLUMN name DROP NOT NULL")
    result = project.cli("drift", "--tenant", "old", "--tenant", "new")
    assert result.returncode == 1, result.stdout + result.stderr
    # compared with head it would also miss the function, which its version does not have yet
    assert result.stdout.splitlines() == [
        "1 match; 1 differ:", "  db_old: changed column nullability public.projects.name: NOT NULL -> NULL"]


def test_a_database_with_the_previous_tools_ledger_alone_is_read_at_its_ledgers_version(project):
    # no alembic_version on the search path: drift locates the ledger and reads the version from it
    _fleet(project, ["ledger", "both"], older=["ledger"])
    project.query("db_ledger", "DROP TABLE alembic_version; CREATE INDEX idx_tmp ON tasks (title)")
    result = project.cli("drift", "--tenant", "ledger", "--tenant", "both", "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    by_db = {d["database"]: d for d in json.loads(result.stdout)["databases"]}
    assert by_db["db_ledger"]["version"] == HEAD  # the ledger's newest row
    assert [(d["change"], d["kind"]) for d in by_db["db_ledger"]["differences"]] == [("extra", "index")]
    assert by_db["db_both"]["version"] == FUNCTION_HEAD and by_db["db_both"]["drift"] is False


def test_clean_fleet_does_not_drift(project):
    _fleet(project, ["c1", "c2", "c3"], older=["c3"])
    result = project.cli("drift")  # control and every tenant
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == ["4 match"]
    assert not [name for (name,) in pg.query(project.server, None, "SELECT datname FROM pg_database")
                if name.startswith("grapevine_scratch_")]


def test_each_kind_of_object_is_named(project):
    _fleet(project, ["k1"])
    project.query("db_k1", """
        CREATE TYPE mood AS ENUM ('sad', 'ok');
        CREATE SEQUENCE counter;
        CREATE VIEW open_tasks AS SELECT id FROM tasks WHERE NOT done;
        CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
        CREATE TRIGGER tasks_touch BEFORE UPDATE ON tasks FOR EACH ROW EXECUTE FUNCTION touch();
        ALTER TABLE tasks ALTER COLUMN title TYPE varchar(200);
        ALTER TABLE projects ADD CONSTRAINT name_not_empty CHECK (name <> '');
        DROP INDEX tasks_project_id_idx;
        CREATE TABLE scratchpad (note text);
        ALTER TABLE users ALTER COLUMN email TYPE text COLLATE "C";
    """)
    result = project.cli("drift", "--tenant", "k1", "--json")
    assert result.returncode == 1, result.stderr
    [database] = json.loads(result.stdout)["databases"]
    texts = [d["text"] for d in database["differences"]]
    assert texts == [
        "extra table public.scratchpad",
        "changed column type public.tasks.title: text -> character varying(200)",
        'changed column collation public.users.email: none -> "C"',
        "missing index public.tasks_project_id_idx ON public.tasks USING btree (project_id)",
        "extra constraint name_not_empty ON public.projects",
        "extra view public.open_tasks",
        "extra function public.touch()",
        "extra trigger tasks_touch ON public.tasks",
        "extra sequence public.counter",
        "extra type public.mood",
    ], texts


def test_owners_and_grants_count_only_with_privileges(project):
    _fleet(project, ["p1"])
    project.query("db_p1", "CREATE ROLE drift_reader_p1; GRANT SELECT ON tasks TO drift_reader_p1")
    try:
        plain = project.cli("drift", "--tenant", "p1")
        assert plain.returncode == 0, plain.stdout + plain.stderr
        strict = project.cli("drift", "--tenant", "p1", "--privileges")
        assert strict.returncode == 1
        assert strict.stdout.splitlines()[1].startswith("  db_p1: changed table privileges public.tasks: acl none -> ")
        assert "drift_reader_p1=r/" in strict.stdout
    finally:
        project.query("db_p1", "REVOKE ALL ON tasks FROM drift_reader_p1")
        project.query(None, "DROP ROLE drift_reader_p1")


def _writes(server, database: str) -> tuple[int, int]:
    rows = pg.query(server, None, "SELECT tup_inserted + tup_updated + tup_deleted, xact_commit FROM"
                    " pg_stat_database WHERE datname = %s", (database,))
    return rows[0]


def _settled(server, database: str, previous: tuple | None = None, timeout: float = 10.0) -> tuple[int, int]:
    """The counters once the server has flushed them (they move when a backend ends)."""
    deadline = time.monotonic() + timeout
    value = _writes(server, database)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        again = _writes(server, database)
        if again == value and (previous is None or again[1] != previous[1]):
            return again
        value = again
    return value


def test_drift_never_writes(project):
    _fleet(project, ["ro"])
    before = _settled(project.server, "db_ro")
    result = project.cli("drift", "--tenant", "ro")
    assert result.returncode == 0, result.stdout + result.stderr
    after = _settled(project.server, "db_ro", before)
    assert after[1] > before[1], "drift's transactions were not counted: the check would prove nothing"
    assert after[0] == before[0], "drift wrote to the tenant database"
    project.query("db_ro", "INSERT INTO users (email, full_name) VALUES ('a@x', 'A')")  # the check can fail
    assert _settled(project.server, "db_ro", after)[0] > after[0]


def test_unreadable_database_fails_the_run(project):
    _fleet(project, ["ok1"])
    project.add_tenant("gone", create_db=False)
    result = project.cli("drift", "--all-tenants")
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == "1 match; 1 could not be compared:", result.stdout
    assert "db_gone" in result.stdout and "does not exist" in result.stdout
    assert "Traceback" not in result.stderr


def test_a_chain_that_fails_to_build_names_the_version(project):
    _fleet(project, ["b1"])
    project.write("tenant", "20250401000000_broken.sql", "SELEC 1;\n")
    project.query("db_b1", "CREATE TABLE alembic_fake (x int)")  # drift, but its reference cannot be built
    project.query("db_b1", "UPDATE alembic_version SET version_num = '20250401000000'")
    result = project.cli("drift", "--tenant", "b1")
    assert result.returncode == 1
    assert "scratch database failed" in result.stdout and "20250401000000" in result.stdout, result.stdout
    assert "Traceback" not in result.stderr
