"""COPY ... FROM stdin with inline rows (pg_dump's data sections, psql scripts) goes through the COPY
protocol in the file's transaction, on both roads and in the API, with file:line errors."""

from __future__ import annotations

import os
import subprocess

import pg
import pytest

from grapevine_alembic.local.embedded import postgres_bin_dir

SEED = (
    "CREATE TABLE seeded (id int PRIMARY KEY, name text, note text);\n"
    "COPY seeded (id, name, note) FROM stdin;\n"
    "1\tone\t\\N\n"
    "2\ttwo; not a statement\tit's\n"
    "3\tthree\t-- not a comment\n"
    "\\.\n"
    "INSERT INTO seeded VALUES (4, 'four', NULL);\n"
)
ROWS = [(1, "one", None), (2, "two; not a statement", "it's"), (3, "three", "-- not a comment"), (4, "four", None)]
FILE = "20250301000000_seed.sql"


def _rows(project, database):
    return project.query(database, "SELECT id, name, note FROM seeded ORDER BY id")


@pytest.mark.parametrize("road", ["migrate", "alembic upgrade"])
def test_inline_copy_rows_are_applied(project, road):
    project.migrate_control()
    database = project.add_tenant("copyok")
    project.write("tenant", FILE, SEED)
    if road == "migrate":
        result = project.cli("migrate", "--tenant", "copyok")
    else:
        result = project.alembic("-n", "tenant", "-x", "tenant=copyok", "upgrade", "head")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _rows(project, database) == ROWS
    assert project.version(database) == "20250301000000"


def test_inline_copy_through_the_api(project, pg_server):
    from grapevine_alembic.api import migrate_database

    project.migrate_control()
    database = project.add_tenant("copyapi")
    project.write("tenant", FILE, SEED)
    result = migrate_database(pg.url_for(pg_server, database), project.migrations("tenant"), retries=0)
    assert result.ok, result.error
    assert _rows(project, database) == ROWS


@pytest.mark.parametrize("road", ["migrate", "alembic upgrade"])
def test_a_bad_copy_row_names_its_file_line_and_nothing_is_kept(project, road):
    project.migrate_control()
    database = project.add_tenant("copybad")
    project.write("tenant", FILE, SEED.replace("3\tthree", "x3\tthree"))
    if road == "migrate":
        result = project.cli("migrate", "--tenant", "copybad")
    else:
        result = project.alembic("-n", "tenant", "-x", "tenant=copybad", "upgrade", "head")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"{FILE}:5:" in output and "invalid input syntax for type integer" in output, output
    assert "seeded" not in project.tables(database)
    assert project.version(database) != "20250301000000"


def test_check_and_dry_run_accept_inline_copy(project):
    project.migrate_control()
    database = project.add_tenant("copycheck")
    project.write("tenant", FILE, SEED)
    check = project.cli("check")
    assert check.returncode == 0, check.stdout + check.stderr
    dry = project.cli("migrate", "--tenant", "copycheck", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "seeded" not in project.tables(database)


@pytest.mark.files_only
def test_copy_without_its_end_marker_is_a_file_error(project):
    project.write("tenant", FILE, "CREATE TABLE seeded (id int);\nCOPY seeded FROM stdin;\n1\n2\n")
    result = project.cli("check")
    assert result.returncode != 0
    assert f"{FILE}:2:" in result.stdout + result.stderr and "no end marker" in result.stdout + result.stderr


def test_a_plain_pg_dump_of_a_table_with_data_applies(project, make_db):
    source = make_db()
    project.query(source, "CREATE TABLE dumped (id int PRIMARY KEY, label text, made timestamptz DEFAULT now())")
    project.query(source, "INSERT INTO dumped (id, label) SELECT g, 'row ' || g || E'\\ttab' FROM generate_series(1, 500) g")
    server = project.server
    dump = subprocess.run(
        [str(postgres_bin_dir() / "pg_dump"), "-h", server.host, "-p", str(server.port), "-U", server.superuser,
         "--no-owner", "-t", "dumped", source],
        env={**os.environ, "PGPASSWORD": server.password or ""}, capture_output=True, text=True, check=True,
    ).stdout
    assert "COPY public.dumped" in dump and "FROM stdin;" in dump  # a data section, not --inserts
    project.migrate_control()
    database = project.add_tenant("fromdump")
    project.write("tenant", FILE, dump)
    result = project.cli("migrate", "--tenant", "fromdump")
    assert result.returncode == 0, result.stdout + result.stderr
    assert project.query(database, "SELECT count(*), min(label), max(id) FROM public.dumped") == [(500, "row 1\ttab", 500)]
    assert project.version(database) == "20250301000000"


def test_offline_sql_keeps_the_rows_right_after_their_copy(project, make_db):
    project.migrate_control()
    project.add_tenant("copyoff", create_db=False)
    project.clear("tenant")
    project.write("tenant", FILE, SEED)
    offline = project.alembic("-n", "tenant", "-x", "tenant=copyoff", "upgrade", "head", "--sql")
    assert offline.returncode == 0, offline.stderr
    assert "COPY seeded (id, name, note) FROM stdin;\n1\tone\t\\N\n" in offline.stdout
    database = make_db()
    server = project.server
    applied = subprocess.run(
        [str(postgres_bin_dir() / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", server.host, "-p", str(server.port),
         "-U", server.superuser, "-d", database],
        input=offline.stdout, env={**os.environ, "PGPASSWORD": server.password or ""}, capture_output=True, text=True,
    )
    assert applied.returncode == 0, applied.stderr
    assert _rows(project, database) == ROWS
