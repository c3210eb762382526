"""Differential test: every file applies here exactly as the previous tool applied it.

For each file of the table, a reference applier (``reference_applier.py``: the whole
text inside one transaction, then the version row) and this tool (``grapevine-migrations
migrate``; ``alembic upgrade`` runs the same job, see tests/test_alembic_one_road.py) each get a fresh database;
the schemas (``pg_dump --schema-only``, version tables left out) and the data must be
identical, with exactly one ledger row.  The shapes come from real migration sets
(see docs/previous-tool.md), rewritten as minimal files of our own.
"""

from __future__ import annotations

import itertools

import pytest

import pg
from project import ScratchProject
from reference_applier import apply_like_previous_tool, dump, ledger_versions

VERSION = "20300101000000"

CASES = {
    "BEGIN without COMMIT": "BEGIN;\nCREATE TABLE a (id int);\nINSERT INTO a VALUES (1);\n",
    "COMMIT without BEGIN": "CREATE TABLE a (id int);\nINSERT INTO a VALUES (1);\nCOMMIT;\n",
    "END without BEGIN": "CREATE TABLE a (id int);\nEND;\n",
    "only comments": "-- nothing to do yet\n/* still; nothing; COMMIT; */\n",
    "only BEGIN and COMMIT": "BEGIN;\n-- placeholder\nCOMMIT;\n",
    "nested BEGIN": "BEGIN;\nCREATE TABLE a (id int);\nBEGIN;\nINSERT INTO a VALUES (2);\nCOMMIT;\n",
    "BEGIN after a statement": "CREATE TABLE a (id int);\nBEGIN;\nINSERT INTO a VALUES (3);\nCOMMIT;\n",
    "enum value used after COMMIT": (
        "BEGIN;\nCREATE TYPE mood AS ENUM ('calm');\nCOMMIT;\n"
        "BEGIN;\nALTER TYPE mood ADD VALUE 'busy';\nCOMMIT;\n"
        "BEGIN;\nCREATE TABLE m (x mood DEFAULT 'busy');\nINSERT INTO m DEFAULT VALUES;\nCOMMIT;\n"
    ),
    "statements after the last COMMIT": "BEGIN;\nCREATE TABLE x1 (a int);\nCOMMIT;\nCREATE TABLE x2 (a int);\n",
    "BEGIN ISOLATION LEVEL": (
        "BEGIN ISOLATION LEVEL SERIALIZABLE;\n"
        "CREATE TABLE iso AS SELECT current_setting('transaction_isolation') AS level;\nCOMMIT;\n"
    ),
    "START TRANSACTION ... END": "START TRANSACTION READ WRITE;\nCREATE TABLE st (a int);\nEND;\n",
    "COMMIT AND CHAIN": (
        "BEGIN ISOLATION LEVEL REPEATABLE READ;\nCREATE TABLE ch (level text);\nCOMMIT AND CHAIN;\n"
        "INSERT INTO ch SELECT current_setting('transaction_isolation');\nCOMMIT;\n"
    ),
    "ROLLBACK undoes its transaction": "BEGIN;\nCREATE TABLE gone (x int);\nROLLBACK;\nCREATE TABLE kept (x int);\n",
    "plpgsql body with BEGIN, COMMIT words and semicolons": (
        "CREATE FUNCTION f() RETURNS text LANGUAGE plpgsql AS $$\nBEGIN\n  -- COMMIT; here is a comment\n"
        "  RETURN 'BEGIN; COMMIT;';\nEND;\n$$;\nCREATE TABLE uses_f AS SELECT f() AS v;\n"
    ),
    "dollar-tagged body": (
        "CREATE FUNCTION g() RETURNS int LANGUAGE plpgsql AS $body$\nDECLARE x int := 1;\nBEGIN\n"
        "  RETURN x; -- $$ inside\nEND;\n$body$;\nCREATE TABLE uses_g AS SELECT g() AS v;\n"
    ),
    "BEGIN ATOMIC function": (
        "CREATE TABLE nums (n int);\n"
        "CREATE FUNCTION add_num(v int) RETURNS void LANGUAGE sql\nBEGIN ATOMIC\n  INSERT INTO nums VALUES (v);\n"
        "  INSERT INTO nums VALUES (v + 1);\nEND;\nSELECT add_num(10);\n"
    ),
    "strings and comments holding ; BEGIN COMMIT": (
        "CREATE TABLE s (t text);\nINSERT INTO s VALUES ('a;b'), ('BEGIN; COMMIT;');\n-- COMMIT;\n"
        "/* BEGIN; /* nested; */ ROLLBACK; */\nINSERT INTO s VALUES (E'x\\';y'), ($q$COMMIT;$q$);\n"
    ),
    "CRLF line endings": "BEGIN;\r\nCREATE TABLE crlf (a int);\r\nINSERT INTO crlf VALUES (1);\r\nCOMMIT;\r\n",
    "byte-order mark": "\ufeffCREATE TABLE bom (a int);\nINSERT INTO bom VALUES (1);\n",
    "no final semicolon": "CREATE TABLE nosemi (a int);\nINSERT INTO nosemi VALUES (1)",
    "SET and SET LOCAL": (
        "SET LOCAL lock_timeout = '2s';\nSET work_mem = '8MB';\n"
        "CREATE TABLE settings_seen AS SELECT current_setting('lock_timeout') AS lt, current_setting('work_mem') AS wm;\n"
    ),
    "schema and search_path": (
        "CREATE SCHEMA app;\nSET search_path = app, public;\nCREATE TABLE app_t (x int);\n"
        "INSERT INTO app_t VALUES (1);\n"
    ),
    "pg_dump header": (
        "SET statement_timeout = 0;\nSET lock_timeout = 0;\nSET client_encoding = 'UTF8';\n"
        "SET standard_conforming_strings = on;\nSELECT pg_catalog.set_config('search_path', '', false);\n"
        "SET check_function_bodies = false;\nSET client_min_messages = warning;\n"
        "CREATE TABLE public.dumped (id integer NOT NULL, note text);\n"
        "ALTER TABLE ONLY public.dumped ADD CONSTRAINT dumped_pkey PRIMARY KEY (id);\n"
        "INSERT INTO public.dumped VALUES (1, 'from a dump');\n"
    ),
    "DO blocks: nested, exception, notices": (
        "CREATE TABLE log (msg text);\n"
        "DO $$\nBEGIN\n  BEGIN\n    PERFORM 1 / 0;\n  EXCEPTION WHEN division_by_zero THEN\n"
        "    RAISE NOTICE 'caught; going on';\n    INSERT INTO log VALUES ('caught');\n  END;\n"
        "  RAISE NOTICE 'done';\nEND\n$$;\n"
    ),
    "data changes": (
        "CREATE TABLE d (id serial PRIMARY KEY, v text);\n"
        "INSERT INTO d (v) SELECT 'row ' || g FROM generate_series(1, 50) g;\n"
        "UPDATE d SET v = upper(v) WHERE id % 2 = 0;\nDELETE FROM d WHERE id > 40;\n"
    ),
    "unnamed index": "CREATE TABLE u (x int);\nCREATE INDEX ON u (x);\nCREATE UNIQUE INDEX ON u (x);\n",
    "savepoints of its own": (
        "BEGIN;\nCREATE TABLE sp (x int);\nSAVEPOINT s1;\nINSERT INTO sp VALUES (1);\nROLLBACK TO SAVEPOINT s1;\n"
        "INSERT INTO sp VALUES (2);\nRELEASE SAVEPOINT s1;\nCOMMIT;\n"
    ),
    "savepoint named like the tool's": (
        "CREATE TABLE spg (x int);\nSAVEPOINT grapevine_batch;\nINSERT INTO spg VALUES (1);\n"
        "ROLLBACK TO SAVEPOINT grapevine_batch;\nINSERT INTO spg VALUES (2);\n"
    ),
    "temporary table within the file": "CREATE TEMP TABLE tmp AS SELECT 7 AS x;\nCREATE TABLE from_tmp AS SELECT x FROM tmp;\n",
    "prepared statement": "CREATE TABLE ps (x int);\nPREPARE ins(int) AS INSERT INTO ps VALUES ($1);\nEXECUTE ins(5);\nDEALLOCATE ins;\n",
    "deferred constraint": (
        "CREATE TABLE parent (id int PRIMARY KEY);\n"
        "CREATE TABLE child (pid int REFERENCES parent DEFERRABLE INITIALLY DEFERRED);\n"
        "INSERT INTO child VALUES (1);\nINSERT INTO parent VALUES (1);\n"
    ),
    "RESET ALL inside": "SET search_path = pg_temp;\nRESET ALL;\nCREATE TABLE after_reset (x int);\n",
    "SET TRANSACTION first": (
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ;\n"
        "CREATE TABLE iso2 AS SELECT current_setting('transaction_isolation') AS level;\n"
    ),
    "enum created and extended in one transaction": (
        "CREATE TYPE colour AS ENUM ('red');\nALTER TYPE colour ADD VALUE 'blue';\n"
        "CREATE TABLE paint (c colour DEFAULT 'blue');\nINSERT INTO paint DEFAULT VALUES;\n"
    ),
    # A file that alters the ledger table (schema_migrations) applied under the previous tool; it is now
    # refused unless ledger_table is renamed: tests/test_database_tool_tables.py covers it.
    "percent signs and colons": "CREATE TABLE pc (t text);\nINSERT INTO pc VALUES ('100%'), (':name'), ('%s'), ('?');\n",
}


_numbers = itertools.count()


@pytest.fixture(scope="module")
def shared_project(tmp_path_factory, pg_server):
    """One project and control database for the whole table (each case gets fresh tenant databases)."""
    factory = pg.DatabaseFactory(pg_server)
    root = tmp_path_factory.mktemp("differential")
    project = ScratchProject(root, pg_server, factory)
    project.migrate_control()
    yield project
    factory.close()


@pytest.mark.parametrize("text", CASES.values(), ids=CASES.keys())
def test_file_applies_like_the_previous_tool(shared_project, pg_server, text):
    project = shared_project
    project.clear("tenant")
    project.migrations("tenant").joinpath(f"{VERSION}_case.sql").write_bytes(text.encode("utf-8"))
    number = next(_numbers)
    reference = project.make_db()
    by_cli = project.add_tenant(f"c{number}")

    apply_like_previous_tool(pg_server, reference, text, VERSION)
    result = project.cli("migrate", "--tenant", f"c{number}")
    assert result.returncode == 0, result.stdout + result.stderr

    expected_schema, expected_data = dump(pg_server, reference, data=False), dump(pg_server, reference, data=True)
    assert dump(pg_server, by_cli, data=False) == expected_schema
    assert dump(pg_server, by_cli, data=True) == expected_data
    assert ledger_versions(pg_server, by_cli) == [VERSION]
    assert project.version(by_cli) == VERSION


def test_the_table_is_large_enough():
    assert len(CASES) >= 25
