"""`drift`'s fingerprints: a database unchanged since it was found equal is not read again; every change is."""

from __future__ import annotations

import json
import os
import subprocess

import pg
from grapevine_alembic.local.processes import postgres_bin_dir

FUNCTION_FILE = "20250301000000_add_task_count.sql"
FUNCTION_SQL = (
    "CREATE FUNCTION task_count(p bigint) RETURNS bigint LANGUAGE sql STABLE\n"
    "AS $$ SELECT count(*) FROM tasks WHERE project_id = p $$;\n"
)
# the same length as FUNCTION_SQL's body: only the operator differs
SAME_LENGTH_SQL = (
    "CREATE OR REPLACE FUNCTION task_count(p bigint) RETURNS bigint LANGUAGE sql STABLE\n"
    "AS $$ SELECT count(*) FROM tasks WHERE project_id < p $$"
)


def _fleet(project, ids):
    project.migrate_control()
    project.write("tenant", FUNCTION_FILE, FUNCTION_SQL)
    for tenant_id in ids:
        project.add_tenant(tenant_id)
    result = project.cli("migrate", "--all-tenants")
    assert result.returncode == 0, result.stderr


def _drift(project, *args):
    result = project.cli("drift", "--json", *args)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    document = json.loads(result.stdout)
    return document, {d["database"]: d for d in document["databases"]}


def _dump_and_restore(project, database: str, tmp_path) -> None:
    server = project.server
    env = {**os.environ, "PGPASSWORD": server.password or ""}
    login = ["-h", server.host, "-p", str(server.port), "-U", server.superuser]
    dump = tmp_path / f"{database}.dump"
    subprocess.run([str(postgres_bin_dir() / "pg_dump"), *login, "-Fc", "-f", str(dump), database], env=env, check=True)
    pg.query(server, None, f'DROP DATABASE "{database}"')
    pg.query(server, None, f'CREATE DATABASE "{database}"')
    subprocess.run([str(postgres_bin_dir() / "pg_restore"), *login, "-d", database, str(dump)], env=env, check=True,
                   capture_output=True)


CHANGES = {  # tenant -> (hand change, what drift then says: the differences' texts, or None: still equal)
    "idx": ("DROP INDEX tasks_project_id_idx",
            "missing index public.tasks_project_id_idx ON public.tasks USING btree (project_id)"),
    "typ": ("ALTER TABLE tasks ALTER COLUMN title TYPE varchar(200)",
            "changed column type public.tasks.title: text -> character varying(200)"),
    "fun": (SAME_LENGTH_SQL, "changed function definition public.task_count(p bigint)"),
    "full": ("CREATE INDEX idx_tmp ON tasks (title); VACUUM FULL pg_catalog.pg_class;"
             " VACUUM FULL pg_catalog.pg_index; VACUUM FULL pg_catalog.pg_attribute",
             "extra index public.idx_tmp ON public.tasks USING btree (title)"),
    "frz": ("ALTER TABLE tasks ALTER COLUMN done SET DEFAULT true; VACUUM (FREEZE) pg_catalog.pg_attrdef;"
            " VACUUM (FREEZE) pg_catalog.pg_attribute",
            "changed column default public.tasks.done: false -> true"),
    "con": ("ALTER TABLE tasks RENAME CONSTRAINT tasks_project_id_fkey TO tasks_project_fk",
            ["extra constraint tasks_project_fk ON public.tasks", "missing constraint tasks_project_id_fkey ON public.tasks"]),
    "seq": ("ALTER SEQUENCE tasks_id_seq CACHE 5", None),  # an identity's sequence: not compared, still read
    "cmt": ("COMMENT ON TABLE tasks IS 'changed by hand'", None),  # comments are not compared, but read again
    "back": ("ALTER TABLE tasks ALTER COLUMN done SET DEFAULT true",  # then changed back, below
             "changed column default public.tasks.done: false -> true"),
}


def test_a_steady_run_reads_no_catalog_and_the_next_one_reads_every_changed_one(project, tmp_path):
    ids = [*CHANGES, "dump", "same", "undone"]
    _fleet(project, ids)
    first, _ = _drift(project, "--all-tenants")
    assert first["ok"] is True and first["catalogs_read"] == len(ids)  # nothing recorded yet: all read
    steady, by_db = _drift(project, "--all-tenants")
    assert steady["ok"] is True and steady["summary"]["match"] == len(ids)
    assert steady["catalogs_read"] == 0 and steady["references_built"] == 0, steady
    assert not any(d["catalog_read"] for d in by_db.values())

    for tenant_id, (sql, _) in CHANGES.items():
        for statement in sql.split("; "):  # one by one: VACUUM runs outside a transaction
            pg.query(project.server, f"db_{tenant_id}", statement)
    _dump_and_restore(project, "db_dump", tmp_path)  # the same schema, restored into a new database
    # an index created and dropped leaves exactly the rows that were verified: the same catalog, the same fingerprint
    pg.query(project.server, "db_undone", "CREATE INDEX idx_tmp ON tasks (title)")
    pg.query(project.server, "db_undone", "DROP INDEX idx_tmp")

    after, by_db = _drift(project, "--all-tenants")
    assert after["catalogs_read"] == len(ids) - 2, [(n, d["catalog_read"]) for n, d in by_db.items()]
    for untouched in ("db_same", "db_undone"):
        assert by_db[untouched]["catalog_read"] is False and by_db[untouched]["drift"] is False
    assert by_db["db_dump"]["catalog_read"] is True and by_db["db_dump"]["drift"] is False
    for tenant_id, (_, expected) in CHANGES.items():
        database = by_db[f"db_{tenant_id}"]
        assert database["catalog_read"] is True, tenant_id
        texts = [d["text"] for d in database["differences"]]
        assert texts == ([expected] if isinstance(expected, str) else expected or []), (tenant_id, texts)

    # changed back by hand: read again and equal; the others, equal or not, are remembered as they were
    found = {name: d["differences"] for name, d in by_db.items()}
    pg.query(project.server, "db_back", "ALTER TABLE tasks ALTER COLUMN done SET DEFAULT false")
    differing = sorted(f"db_{t}" for t, (_, expected) in CHANGES.items() if expected and t != "back")
    again, by_db = _drift(project, "--all-tenants")
    assert sorted(name for name, d in by_db.items() if d["catalog_read"]) == ["db_back"]
    assert by_db["db_back"]["drift"] is False
    assert again["summary"] == {"match": len(ids) - len(differing), "differ": len(differing), "failed": 0}
    last, by_db = _drift(project, "--all-tenants")
    assert last["catalogs_read"] == 0 and last["references_built"] == 0 and last["summary"] == again["summary"]
    assert {name: by_db[name]["differences"] for name in differing} == {name: found[name] for name in differing}


def test_a_migrated_database_is_read_again_and_full_reads_them_all(project):
    _fleet(project, ["m1", "m2"])
    assert _drift(project)[0]["catalogs_read"] == 3  # control and both tenants
    assert _drift(project)[0]["catalogs_read"] == 1  # control: the first run created the table of fingerprints
    assert _drift(project)[0]["catalogs_read"] == 0
    project.write("tenant", "20250401000000_notes.sql", "CREATE TABLE notes (id int);\n")
    result = project.cli("migrate", "--tenant", "m1")
    assert result.returncode == 0, result.stderr
    document, by_db = _drift(project)
    assert [name for name, d in by_db.items() if d["catalog_read"]] == ["db_m1"]
    assert document["ok"] is True and by_db["db_m1"]["version"] == "20250401000000"
    assert _drift(project, "--full")[0]["catalogs_read"] == 3


def test_a_run_with_privileges_does_not_trust_a_check_that_left_them_out(project):
    _fleet(project, ["p1"])
    project.query("db_p1", "CREATE ROLE fingerprint_reader_p1; GRANT SELECT ON tasks TO fingerprint_reader_p1")
    try:
        plain, _ = _drift(project, "--tenant", "p1")
        assert plain["ok"] is True and plain["catalogs_read"] == 1  # equal, owners and grants aside
        strict, by_db = _drift(project, "--tenant", "p1", "--privileges")
        assert strict["ok"] is False and by_db["db_p1"]["catalog_read"] is True
        assert [d["kind"] for d in by_db["db_p1"]["differences"]] == ["table privileges"]
    finally:
        project.query("db_p1", "REVOKE ALL ON tasks FROM fingerprint_reader_p1")
        project.query(None, "DROP ROLE fingerprint_reader_p1")


def test_the_record_lives_in_the_control_database_under_its_configured_name(project):
    ini = project.root / "alembic.ini"
    ini.write_text(ini.read_text().replace("[control]\n", "[control]\nverified_table = drift_seen\n", 1))
    _fleet(project, ["r1"])
    first, _ = _drift(project)
    assert first["ok"] is True and first["catalogs_read"] == 2
    rows = project.control("SELECT database, version FROM drift_seen")
    assert sorted(rows) == sorted([(project.control_db, "20250115120000"), ("db_r1", "20250301000000")]), rows
    assert project.control("SELECT to_regclass('grapevine_verified') IS NULL") == [(True,)]
    # the table it created is the tool's own: the control database does not drift because of it
    second, by_db = _drift(project)
    assert second["ok"] is True and by_db[project.control_db]["drift"] is False
    assert by_db[project.control_db]["catalog_read"] is True  # its catalog moved when the table was created
    assert _drift(project)[0]["catalogs_read"] == 0


def test_unreadable_fingerprints_cost_a_full_read_and_one_notice(project):
    _fleet(project, ["u1"])
    project.control("CREATE TABLE grapevine_verified (server text)")  # not the table the tool would create
    result = project.cli("drift", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["catalogs_read"] == 2
    notices = [line for line in result.stderr.splitlines() if "grapevine_verified" in line]
    assert len(notices) == 1 and notices[0].startswith("notice: the fingerprints in grapevine_verified could not be read")
    assert "Traceback" not in result.stderr


def test_a_renamed_object_that_a_definition_names_is_caught(project):
    # the index's definition names the configuration; renaming it changes no row of the index's own
    project.write("tenant", "20250201090000_search.sql", "CREATE TEXT SEARCH CONFIGURATION app_search (COPY = simple);\n"
                  "CREATE INDEX tasks_search_idx ON tasks USING gin (to_tsvector('app_search', title));\n")
    _fleet(project, ["ts"])
    assert _drift(project, "--tenant", "ts")[0]["ok"] is True
    assert _drift(project, "--tenant", "ts")[0]["catalogs_read"] == 0
    project.query("db_ts", "ALTER TEXT SEARCH CONFIGURATION app_search RENAME TO app_search_renamed")
    document, by_db = _drift(project, "--tenant", "ts")
    assert by_db["db_ts"]["catalog_read"] is True and document["ok"] is False
    [difference] = by_db["db_ts"]["differences"]
    assert difference["kind"] == "index definition" and "app_search_renamed" in difference["actual"], difference


# Catalogs drift's query reads that the fingerprint leaves out (see schema/fingerprint.py): a change to
# one of them always writes rows of a catalog it keeps (pg_depend, and pg_type, pg_class or pg_attribute too).
LEFT_OUT_FILE = ("20250201090000_views_ranges_partitions.sql",
                 "CREATE VIEW open_tasks AS SELECT id, title FROM tasks WHERE NOT done;\n"
                 "CREATE TYPE score_range AS RANGE (subtype = int4);\n"
                 "CREATE TABLE events (id bigint NOT NULL, at date NOT NULL) PARTITION BY RANGE (at);\n"
                 "CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');\n")
LEFT_OUT_CHANGES = {  # tenant -> (hand change, the kind of a difference drift then names)
    "rewrite": ("CREATE OR REPLACE VIEW open_tasks AS SELECT id, title FROM tasks WHERE done", "view definition"),
    "range": ("DROP TYPE score_range; CREATE TYPE score_range AS RANGE (subtype = int8)", "type"),
    "inherits": ("ALTER TABLE events DETACH PARTITION events_2025", "table"),
    "extension": ("CREATE EXTENSION citext", "extension"),
    "attrdef": ("ALTER TABLE tasks ALTER COLUMN done DROP DEFAULT", "column default"),
}


def test_changes_to_catalogs_the_fingerprint_leaves_out_are_caught_by_the_ones_it_keeps(project):
    project.write("tenant", *LEFT_OUT_FILE)
    ids = [*LEFT_OUT_CHANGES, "same"]
    _fleet(project, ids)
    assert _drift(project, "--all-tenants")[0]["ok"] is True
    steady, _ = _drift(project, "--all-tenants")
    assert steady["ok"] is True and steady["catalogs_read"] == 0, steady["summary"]
    for tenant_id, (sql, _) in LEFT_OUT_CHANGES.items():
        for statement in sql.split("; "):
            pg.query(project.server, f"db_{tenant_id}", statement)
    after, by_db = _drift(project, "--all-tenants")
    assert sorted(name for name, d in by_db.items() if d["catalog_read"]) == sorted(f"db_{t}" for t in LEFT_OUT_CHANGES)
    for tenant_id, (_, kind) in LEFT_OUT_CHANGES.items():
        differences = by_db[f"db_{tenant_id}"]["differences"]
        assert kind in [d["kind"] for d in differences], (tenant_id, [d["text"] for d in differences])
    assert after["summary"] == {"match": 1, "differ": len(LEFT_OUT_CHANGES), "failed": 0}  # db_same


def test_the_steady_round_trip_opens_none_of_the_catalogs_the_fingerprint_leaves_out(project):
    from grapevine_alembic.schema.fingerprint import FINGERPRINT_SQL

    _fleet(project, ["plan"])
    [[plan]] = pg.query(project.server, "db_plan", f"EXPLAIN (FORMAT JSON) SELECT {FINGERPRINT_SQL}")

    def relations(node):
        yield from ([node["Relation Name"]] if "Relation Name" in node else [])
        for child in node.get("Plans", ()):
            yield from relations(child)

    opened = set(relations(plan[0]["Plan"]))
    # each catalog a fresh backend opens costs it about 0.1 to 0.25 ms of planning (bench/drift_backend.py)
    assert {"pg_class", "pg_attribute", "pg_depend", "pg_database"} <= opened and len(opened) <= 17, sorted(opened)
    assert not opened & {"pg_attrdef", "pg_rewrite", "pg_inherits", "pg_extension", "pg_range"}, sorted(opened)
