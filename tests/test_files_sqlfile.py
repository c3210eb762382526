"""Tests for grapevine_alembic.files (parsing, nontransactional, migration, discovery): splitting,
classification, units, errors and discovery."""

import hashlib
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grapevine_alembic.errors import MigrationFileError
from grapevine_alembic.files.discovery import Discovery, discover, is_migration_name
from grapevine_alembic.files.migration import MigrationFile
from grapevine_alembic.files.parsing import ParsedSql, Statement, parse_sql
from grapevine_alembic.files.txshape import Unit


def texts_and_lines(parsed: ParsedSql) -> list[tuple[str, int]]:
    return [(stmt.sql, stmt.line) for stmt in parsed.statements]


def unit_shape(parsed: ParsedSql) -> list[tuple[int, bool]]:
    return [(len(unit.statements), unit.transactional) for unit in parsed.units]


# --------------------------------------------------------------------------- splitting

SPLIT_CASES = {
    "simple": (
        "CREATE TABLE a (id int);\nCREATE TABLE b (id int);\n",
        [("CREATE TABLE a (id int)", 1), ("CREATE TABLE b (id int)", 2)],
    ),
    "blank lines and leading whitespace": (
        "\n\n   CREATE TABLE a (id int);\n\n\n\tSELECT 1;",
        [("CREATE TABLE a (id int)", 3), ("SELECT 1", 6)],
    ),
    "line comments with semicolons": (
        "-- first; second;\n-- third;\nCREATE TABLE a (id int); -- trailing; comment\n-- x;\nSELECT 2;\n",
        [("CREATE TABLE a (id int)", 3), ("SELECT 2", 5)],
    ),
    "nested block comment with semicolons": (
        "/* outer; /* inner; */ still; comment */\nSELECT 1;\n/*\n;\n*/ SELECT 2;",
        [("SELECT 1", 2), ("SELECT 2", 5)],
    ),
    "multi-line DO block with semicolons": (
        "DO $$\nBEGIN\n  PERFORM 1;\n  RAISE NOTICE 'a;b';\nEND\n$$;\n\nCREATE TABLE after_do (id int);\n",
        [
            ("DO $$\nBEGIN\n  PERFORM 1;\n  RAISE NOTICE 'a;b';\nEND\n$$", 1),
            ("CREATE TABLE after_do (id int)", 8),
        ],
    ),
    "tagged dollar quotes": (
        "CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $fn$\n  SELECT $$;$$;\n$fn$;\nSELECT f();\n",
        [
            ("CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $fn$\n  SELECT $$;$$;\n$fn$", 1),
            ("SELECT f()", 4),
        ],
    ),
    "string literals with semicolons and quotes": (
        "INSERT INTO t VALUES ('a;b', 'it''s; fine', E'\\';');\nSELECT 1;",
        [("INSERT INTO t VALUES ('a;b', 'it''s; fine', E'\\';')", 1), ("SELECT 1", 2)],
    ),
    "non-ASCII text before later statements": (
        "INSERT INTO t VALUES ('héllo');\n-- ünïcode comment 😀;\nINSERT INTO t VALUES ('😀; ✓');\n\nSELECT 'ß';\n",
        [
            ("INSERT INTO t VALUES ('héllo')", 1),
            ("INSERT INTO t VALUES ('😀; ✓')", 3),
            ("SELECT 'ß'", 5),
        ],
    ),
    "placeholders kept verbatim": (
        "SELECT '%s', '%(x)s', ':name', '?' -- 100% :p ?\n;\nSELECT 1 % 2;",
        [("SELECT '%s', '%(x)s', ':name', '?' -- 100% :p ?", 1), ("SELECT 1 % 2", 3)],
    ),
    "last statement without semicolon": (
        "SELECT 1;\nSELECT 2",
        [("SELECT 1", 1), ("SELECT 2", 2)],
    ),
    "empty statements are skipped": (
        ";;\nSELECT 1;;\n;\nSELECT 2;",
        [("SELECT 1", 2), ("SELECT 2", 4)],
    ),
    "comment inside a statement is kept": (
        "CREATE TABLE a (\n  id int -- the key; really\n);",
        [("CREATE TABLE a (\n  id int -- the key; really\n)", 1)],
    ),
    "CRLF line endings": (
        "SELECT 1;\r\n\r\nSELECT\r\n 2;\r\n",
        [("SELECT 1", 1), ("SELECT\r\n 2", 3)],
    ),
    "statement copy inside a preceding comment": (
        "SELECT 1; -- SELECT 2;\n/* SELECT 2; */ SELECT 2;\nSELECT 2;",
        [("SELECT 1", 1), ("SELECT 2", 2), ("SELECT 2", 3)],
    ),
    "byte order mark": (
        "\ufeffSELECT 1;\nSELECT 2;",
        [("SELECT 1", 1), ("SELECT 2", 2)],
    ),
}


@pytest.mark.parametrize("text, expected", SPLIT_CASES.values(), ids=SPLIT_CASES.keys())
def test_statements_are_split_verbatim_with_lines(text, expected):
    assert texts_and_lines(parse_sql(text)) == expected


def test_large_non_ascii_file_parses_in_linear_time():
    # Mapping the parser's byte offsets to characters naively is quadratic in non-ASCII characters (~30 s here).
    text = "".join(f"-- {i}: ünïcødé;\nINSERT INTO t VALUES ({i}, 'héllo 😀');\n" for i in range(12000))
    started = time.monotonic()
    parsed = parse_sql(text)
    assert time.monotonic() - started < 15
    assert len(parsed.statements) == 12000
    assert texts_and_lines(parsed)[-1] == ("INSERT INTO t VALUES (11999, 'héllo 😀')", 24000)


def test_statement_kind_is_the_postgresql_node_name():
    parsed = parse_sql("CREATE TABLE a (id int);\nCREATE INDEX i ON a (id);\nDO $$ BEGIN END $$;")
    assert [stmt.kind for stmt in parsed.statements] == ["CreateStmt", "IndexStmt", "DoStmt"]


def test_statement_equality_ignores_the_ast_node():
    first = parse_sql("SELECT 1;").statements[0]
    second = parse_sql("SELECT 1;").statements[0]
    assert first == second and hash(first) == hash(second)
    assert first.node is not None
    assert first == Statement("SELECT 1", 1, "SelectStmt", True)


# --------------------------------------------------------------------------- transactional?

NON_TRANSACTIONAL = [
    "CREATE INDEX CONCURRENTLY i ON t (x)",
    "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON t (x)",
    "DROP INDEX CONCURRENTLY i",
    "DROP INDEX CONCURRENTLY IF EXISTS i",
    "REINDEX INDEX CONCURRENTLY i",
    "REINDEX (CONCURRENTLY) TABLE t",
    "REINDEX (CONCURRENTLY true) TABLE t",
    "REINDEX SCHEMA s",
    "REINDEX DATABASE d",
    "REINDEX SYSTEM",
    "VACUUM",
    "VACUUM FULL t",
    "VACUUM (ANALYZE, VERBOSE) t",
    "CREATE DATABASE d",
    "DROP DATABASE d",
    "DROP DATABASE IF EXISTS d",
    "ALTER SYSTEM SET work_mem = '64MB'",
    "ALTER SYSTEM RESET ALL",
    "CREATE TABLESPACE ts LOCATION '/data/ts'",
    "DROP TABLESPACE ts",
    "ALTER DATABASE d SET TABLESPACE ts",
    "CLUSTER",
    "ALTER TABLE p DETACH PARTITION c CONCURRENTLY",
    "CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p",
    "DROP SUBSCRIPTION s",
    "ALTER SUBSCRIPTION s REFRESH PUBLICATION",
    "DISCARD ALL",
    "DO $$ BEGIN INSERT INTO t VALUES (1); COMMIT; END $$",
    "DO LANGUAGE plpgsql $x$ BEGIN FOR i IN 1..3 LOOP UPDATE t SET a = i; ROLLBACK; END LOOP; END $x$",
    "DO $$ BEGIN IF true THEN COMMIT AND CHAIN; END IF; END $$",
]

TRANSACTIONAL = [
    "CREATE TABLE t (id int)",
    "ANALYZE",
    "ANALYZE t",
    "ALTER TYPE mood ADD VALUE 'happy'",
    "ALTER TYPE mood ADD VALUE IF NOT EXISTS 'sad' AFTER 'happy'",
    "CREATE INDEX i ON t (x)",
    "DROP INDEX i",
    "DROP TABLE t",
    "REINDEX INDEX i",
    "REINDEX TABLE t",
    "REINDEX (CONCURRENTLY false) TABLE t",
    "REINDEX (VERBOSE) TABLE t",
    "CLUSTER t",
    "CLUSTER t USING i",
    "ALTER DATABASE d SET work_mem = '64MB'",
    "ALTER DATABASE d CONNECTION LIMIT 5",
    "ALTER TABLE p DETACH PARTITION c",
    "ALTER TABLE t ADD COLUMN c int",
    "DISCARD TEMP",
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$",
    "DO $$ BEGIN PERFORM 1; END $$",
    "DO $$ BEGIN RAISE NOTICE 'COMMIT; ROLLBACK'; END $$",  # in a string: no transaction ends
    "DO $$ BEGIN EXECUTE 'SELECT 1'; EXCEPTION WHEN others THEN NULL; END $$",
    "DO LANGUAGE sql $$ COMMIT $$",  # not PL/pgSQL: PostgreSQL judges it when it runs
    "CREATE SCHEMA s",
    "CREATE EXTENSION IF NOT EXISTS pgcrypto",
    "CREATE MATERIALIZED VIEW mv AS SELECT 1",
    "REFRESH MATERIALIZED VIEW mv",
]


@pytest.mark.parametrize("sql", NON_TRANSACTIONAL)
def test_non_transactional_statements(sql):
    parsed = parse_sql(sql + ";")
    assert [stmt.transactional for stmt in parsed.statements] == [False]
    assert parsed.transactional is False
    assert unit_shape(parsed) == [(1, False)]


@pytest.mark.parametrize("sql", TRANSACTIONAL)
def test_transactional_statements(sql):
    parsed = parse_sql(sql + ";")
    assert [stmt.transactional for stmt in parsed.statements] == [True]
    assert parsed.transactional is True
    assert unit_shape(parsed) == [(1, True)]


def test_transactional_file_is_one_unit_with_every_statement():
    parsed = parse_sql("CREATE TABLE a (id int);\nCREATE INDEX i ON a (id);\nANALYZE a;")
    assert parsed.transactional and not parsed.wrapped and not parsed.no_transaction_directive
    assert parsed.units == (Unit(parsed.statements, True),)


# --------------------------------------------------------------------------- BEGIN / COMMIT

WRAPPED_CASES = {
    "BEGIN/COMMIT": "BEGIN;\nCREATE TABLE a (id int);\nSELECT 1;\nCOMMIT;\n",
    "START TRANSACTION/END": "START TRANSACTION;\nCREATE TABLE a (id int);\nSELECT 1;\nEND;\n",
    "lower case with WORK": "begin work;\nCREATE TABLE a (id int);\nSELECT 1;\ncommit work;",
    "BEGIN TRANSACTION/COMMIT TRANSACTION": "BEGIN TRANSACTION;\nCREATE TABLE a (id int);\nSELECT 1;\nCOMMIT TRANSACTION;",
}


@pytest.mark.parametrize("text", WRAPPED_CASES.values(), ids=WRAPPED_CASES.keys())
def test_own_transaction_control_is_removed(text):
    parsed = parse_sql(text)
    assert texts_and_lines(parsed) == [("CREATE TABLE a (id int)", 2), ("SELECT 1", 3)]
    assert parsed.wrapped is True
    assert parsed.transactional is True
    assert unit_shape(parsed) == [(2, True)]


def test_unwrapped_file_is_not_wrapped():
    assert parse_sql("SELECT 1;").wrapped is False


def test_savepoints_are_kept_as_ordinary_statements():
    text = "BEGIN;\nSAVEPOINT a;\nSELECT 1;\nROLLBACK TO SAVEPOINT a;\nRELEASE SAVEPOINT a;\nCOMMIT;"
    parsed = parse_sql(text)
    assert texts_and_lines(parsed) == [
        ("SAVEPOINT a", 2),
        ("SELECT 1", 3),
        ("ROLLBACK TO SAVEPOINT a", 4),
        ("RELEASE SAVEPOINT a", 5),
    ]
    assert [stmt.kind for stmt in parsed.statements] == ["TransactionStmt", "SelectStmt"] + ["TransactionStmt"] * 2
    assert parsed.transactional and unit_shape(parsed) == [(4, True)]


TRANSACTION_ERRORS = {
    "PREPARE TRANSACTION": (
        "BEGIN;\nSELECT 1;\nPREPARE TRANSACTION 'x';",
        3,
        "PREPARE TRANSACTION is not allowed in a migration",
    ),
    "COMMIT PREPARED": ("SELECT 1;\n\nCOMMIT PREPARED 'x';", 3, "COMMIT PREPARED is not allowed in a migration"),
    "ROLLBACK PREPARED": ("ROLLBACK PREPARED 'x';", 1, "ROLLBACK PREPARED is not allowed in a migration"),
    # PostgreSQL refuses isolation options once the transaction has run a query
    "BEGIN with options mid-transaction": (
        "SELECT 1;\nBEGIN ISOLATION LEVEL SERIALIZABLE;\nSELECT 2;\nCOMMIT;",
        2,
        "BEGIN with transaction options inside the transaction that starts on line 1",
    ),
}


# What the previous tool ran (the whole text in one transaction the driver opened) runs here
# too: (text, units as (statement count, transactional, rollback, BEGIN text), note codes).
ACCEPTED_SHAPES = {
    "BEGIN without COMMIT": ("SELECT 1;\nBEGIN;\nSELECT 2;\n", [(2, True, False, "BEGIN")], ["nested-begin"]),
    "open BEGIN at the top": ("BEGIN;\nSELECT 1;\nSELECT 2;\n", [(2, True, False, "BEGIN")], ["begin-without-commit"]),
    "COMMIT without BEGIN": ("SELECT 1;\nCOMMIT;", [(1, True, False, "BEGIN")], ["commit-without-begin"]),
    "END without BEGIN": ("SELECT 1;\n\nEND;", [(1, True, False, "BEGIN")], ["commit-without-begin"]),
    "nested BEGIN": (
        "BEGIN;\nSELECT 1;\nBEGIN;\nSELECT 2;\nCOMMIT;\nCOMMIT;",
        [(2, True, False, "BEGIN")],
        ["nested-begin", "commit-without-begin"],
    ),
    "second block unclosed": (
        "BEGIN;\nSELECT 1;\nCOMMIT;\nBEGIN;\nSELECT 2;",
        [(1, True, False, "BEGIN"), (1, True, False, "BEGIN")],
        ["begin-without-commit", "statements-after-commit"],
    ),
    "two blocks": (
        "BEGIN;\nSELECT 1;\nCOMMIT;\nBEGIN;\nSELECT 2;\nCOMMIT;",
        [(1, True, False, "BEGIN"), (1, True, False, "BEGIN")],
        ["several-transactions"],
    ),
    "BEGIN with options": (
        "BEGIN ISOLATION LEVEL SERIALIZABLE;\nSELECT 1;\nCOMMIT;",
        [(1, True, False, "BEGIN ISOLATION LEVEL SERIALIZABLE")],
        [],
    ),
    "COMMIT AND CHAIN": (
        "BEGIN READ WRITE;\nSELECT 1;\nCOMMIT AND CHAIN;\nSELECT 2;\nCOMMIT;",
        [(1, True, False, "BEGIN READ WRITE"), (1, True, False, "BEGIN READ WRITE")],
        ["several-transactions"],
    ),
    "ROLLBACK": ("BEGIN;\nSELECT 1;\nROLLBACK;", [(1, True, True, "BEGIN")], ["rollback-in-file"]),
    "ABORT": ("SELECT 1;\nABORT;", [(1, True, True, "BEGIN")], ["rollback-in-file"]),
    "ROLLBACK at top": ("ROLLBACK;\nSELECT 1;", [(1, True, False, "BEGIN")], []),
}


@pytest.mark.parametrize("text, units, notes", ACCEPTED_SHAPES.values(), ids=ACCEPTED_SHAPES.keys())
def test_shapes_the_previous_tool_ran_are_accepted(text, units, notes):
    parsed = parse_sql(text, path="m.sql")
    assert [(len(u.statements), u.transactional, u.rollback, u.begin) for u in parsed.units] == units
    assert [note.code for note in parsed.notes] == notes
    assert all(note.fix for note in parsed.notes)


@pytest.mark.parametrize("text, line, message", TRANSACTION_ERRORS.values(), ids=TRANSACTION_ERRORS.keys())
def test_transaction_control_errors(text, line, message):
    with pytest.raises(MigrationFileError) as caught:
        parse_sql(text, path="m.sql")
    assert caught.value.line == line
    assert caught.value.path == "m.sql"
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"m.sql:{line}: ")


# --------------------------------------------------------------------------- units

MIXED = """CREATE TABLE a (id int);
CREATE INDEX CONCURRENTLY a_id ON a (id);
BEGIN;
INSERT INTO a VALUES (1);
UPDATE a SET id = 2;
COMMIT;
VACUUM a;
BEGIN;
SELECT 1;
COMMIT;
BEGIN;
SAVEPOINT s;
SELECT 2;
COMMIT;
"""


def test_mixed_file_units_follow_the_file():
    parsed = parse_sql(MIXED)
    assert parsed.transactional is False and parsed.wrapped is True
    assert unit_shape(parsed) == [(1, False), (1, False), (2, True), (1, False), (1, True), (2, True)]
    assert [stmt.sql for stmt in parsed.units[2].statements] == ["INSERT INTO a VALUES (1)", "UPDATE a SET id = 2"]
    assert [stmt.line for unit in parsed.units for stmt in unit.statements] == [1, 2, 4, 5, 7, 9, 12, 13]
    assert tuple(stmt for unit in parsed.units for stmt in unit.statements) == parsed.statements


def test_empty_explicit_block_in_non_transactional_file_is_dropped():
    parsed = parse_sql("VACUUM;\nBEGIN;\nCOMMIT;\nSELECT 1;")
    assert unit_shape(parsed) == [(1, False), (1, False)]


NON_TRANSACTIONAL_IN_BLOCK = {
    "create index concurrently": (
        "SELECT 1;\nBEGIN;\nSELECT 2;\nCREATE INDEX CONCURRENTLY i ON t (x);\nCOMMIT;",
        4,
        "CREATE INDEX CONCURRENTLY cannot run inside the BEGIN/COMMIT block that starts on line 2",
    ),
    "vacuum": ("BEGIN;\nVACUUM;\nCOMMIT;", 2, "VACUUM cannot run inside the BEGIN/COMMIT block that starts on line 1"),
    "committing do block": (
        "BEGIN;\nDO $$ BEGIN COMMIT; END $$;\nCOMMIT;", 2,
        "DO block that runs COMMIT or ROLLBACK cannot run inside the BEGIN/COMMIT block that starts on line 1",
    ),
    "wrapped whole file": (
        "BEGIN;\nCREATE TABLE t (x int);\n\nDROP INDEX CONCURRENTLY i;\nCOMMIT;",
        4,
        "DROP INDEX CONCURRENTLY cannot run inside the BEGIN/COMMIT block that starts on line 1",
    ),
}


@pytest.mark.parametrize("text, line, message", NON_TRANSACTIONAL_IN_BLOCK.values(), ids=NON_TRANSACTIONAL_IN_BLOCK.keys())
def test_non_transactional_statement_inside_block_is_an_error(text, line, message):
    with pytest.raises(MigrationFileError) as caught:
        parse_sql(text, path="m.sql")
    assert caught.value.line == line
    assert message in str(caught.value)


@pytest.mark.parametrize("keyword", ["SAVEPOINT a", "RELEASE SAVEPOINT a", "ROLLBACK TO SAVEPOINT a"])
def test_savepoint_outside_block_in_non_transactional_file_is_an_error(keyword):
    with pytest.raises(MigrationFileError) as caught:
        parse_sql(f"VACUUM;\n{keyword};", path="m.sql")
    assert caught.value.line == 2
    assert "only works inside a transaction" in str(caught.value)


# --------------------------------------------------------------------------- directive

DIRECTIVES = {
    "canonical": ("-- grapevine: no-transaction\nSELECT 1;", True),
    "no spaces": ("--grapevine:no-transaction\nSELECT 1;", True),
    "extra spaces and case": ("  --   GRAPEVINE  :  No-Transaction   \nSELECT 1;", True),
    "CRLF": ("-- grapevine: no-transaction\r\nSELECT 1;", True),
    "second line": ("-- header\n-- grapevine: no-transaction\nSELECT 1;", False),
    "misspelled": ("-- grapevine: no-transactions\nSELECT 1;", False),
    "other tool": ("-- flyway: no-transaction\nSELECT 1;", False),
    "absent": ("SELECT 1;", False),
}


@pytest.mark.parametrize("text, present", DIRECTIVES.values(), ids=DIRECTIVES.keys())
def test_no_transaction_directive(text, present):
    parsed = parse_sql(text)
    assert parsed.no_transaction_directive is present
    assert parsed.transactional is not present
    assert unit_shape(parsed) == [(1, not present)]


def test_directive_makes_every_statement_its_own_unit_except_blocks():
    text = "-- grapevine: no-transaction\nCREATE TABLE a (id int);\nSELECT 1;\nBEGIN;\nSELECT 2;\nSELECT 3;\nCOMMIT;"
    parsed = parse_sql(text)
    assert all(stmt.transactional for stmt in parsed.statements)
    assert parsed.transactional is False
    assert unit_shape(parsed) == [(1, False), (1, False), (2, True)]
    assert texts_and_lines(parsed)[0] == ("CREATE TABLE a (id int)", 2)


# --------------------------------------------------------------------------- parse errors

SYNTAX_ERRORS = {
    "misspelled keyword": ("SELECT 1;\n\nCREATE TABEL t (id int);", 3, 'syntax error at or near "TABEL"'),
    "after DO block": ("DO $$\nBEGIN\n  PERFORM 1;\nEND\n$$;\nSELEC 1;", 6, 'syntax error at or near "SELEC"'),
    "after non-ASCII text": (
        "SELECT 'héllo 😀';\n-- ✓ comment\nSELECT 'ü' FORM t;",
        3,
        'syntax error at or near "t"',
    ),
    "end of input": ("SELECT 1;\nCREATE TABLE t (\n  id int,\n\n", 3, "syntax error at end of input"),
    "unterminated string": ("SELECT 1;\nSELECT 'abc;\n", 2, "unterminated quoted string"),
    "unterminated dollar quote": ("SELECT 1;\n\nDO $$ BEGIN\n", 3, "unterminated dollar-quoted string"),
}


@pytest.mark.parametrize("text, line, message", SYNTAX_ERRORS.values(), ids=SYNTAX_ERRORS.keys())
def test_syntax_errors_report_the_line(text, line, message):
    with pytest.raises(MigrationFileError) as caught:
        parse_sql(text, path=Path("m.sql"))
    assert caught.value.line == line
    assert caught.value.path == Path("m.sql")
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"m.sql:{line}: ")


EMPTY_FILES = {
    "empty": "",
    "whitespace": "  \n\t\n",
    "comments only": "-- nothing here;\n/* nor; here */\n",
    "directive only": "-- grapevine: no-transaction\n",
    "semicolons only": ";\n;;",
    "BEGIN COMMIT only": "BEGIN;\n-- todo\nCOMMIT;\n",
}


@pytest.mark.parametrize("text", EMPTY_FILES.values(), ids=EMPTY_FILES.keys())
def test_files_without_statements_run_nothing_and_say_so(text):
    parsed = parse_sql(text, path="m.sql")
    assert parsed.units == () and parsed.statements == ()
    assert [note.code for note in parsed.notes][-1] == "empty-file"


def test_nul_character_is_an_error():
    with pytest.raises(MigrationFileError, match="NUL") as caught:
        parse_sql("SELECT 1;\nSELECT '\x00';")
    assert caught.value.line == 2


# --------------------------------------------------------------------------- MigrationFile


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def test_migration_file_properties(tmp_path):
    path = write(tmp_path / "20240101120000_create_users-table.sql", "CREATE TABLE users (id int);\n")
    migration = MigrationFile("20240101120000", "create_users-table", path)
    assert migration.message == "create users table"
    assert migration.checksum == hashlib.sha256(path.read_bytes()).hexdigest()
    assert migration.read_text() == "CREATE TABLE users (id int);\n"
    assert migration == MigrationFile("20240101120000", "create_users-table", path)
    assert hash(migration) == hash(MigrationFile("20240101120000", "create_users-table", path))


def test_checksum_and_parse_are_computed_once(tmp_path):
    path = write(tmp_path / "20240101120000_x.sql", "SELECT 1;")
    migration = MigrationFile("20240101120000", "x", path)
    checksum, parsed = migration.checksum, migration.parse()
    write(path, "SELECT 2;")
    assert migration.checksum == checksum
    assert migration.parse() is parsed
    assert parsed.statements[0].sql == "SELECT 1"


def test_parse_errors_name_the_file(tmp_path):
    path = write(tmp_path / "20240101120000_x.sql", "SELECT 1;\nSELEC 2;")
    with pytest.raises(MigrationFileError) as caught:
        MigrationFile("20240101120000", "x", path).parse()
    assert caught.value.path == path and caught.value.line == 2
    assert str(caught.value).startswith(f"{path}:2: ")


def test_invalid_utf8_is_an_error(tmp_path):
    path = tmp_path / "20240101120000_x.sql"
    path.write_bytes(b"SELECT '\xff';")
    with pytest.raises(MigrationFileError, match="not valid UTF-8"):
        MigrationFile("20240101120000", "x", path).read_text()


def test_missing_file_is_an_error(tmp_path):
    migration = MigrationFile("20240101120000", "x", tmp_path / "20240101120000_x.sql")
    with pytest.raises(MigrationFileError, match="cannot read file"):
        migration.checksum


def test_importing_the_file_modules_does_not_import_the_parser():
    modules = "grapevine_alembic.files.discovery, grapevine_alembic.files.parsing, grapevine_alembic.files.nontransactional"
    code = f"import sys, {modules}; print('postgast' in sys.modules or 'google.protobuf' in sys.modules)"
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert result.stdout.strip() == "False"


# --------------------------------------------------------------------------- names and discovery

NAMES = {
    "20240101120000_create_users.sql": True,
    "20240229235959_leap-day.sql": True,
    "20240101120000_A1_b-2.sql": True,
    "20240101120000__x.sql": True,
    "20230229120000_not_leap.sql": False,
    "20241301120000_month13.sql": False,
    "20240132120000_day32.sql": False,
    "20240101240000_hour24.sql": False,
    "20240101126000_minute60.sql": False,
    "20240101120060_second60.sql": False,
    "00000101120000_year0.sql": False,
    "2024010112_short.sql": False,
    "202401011200000_long.sql": False,
    "20240101120000.sql": False,
    "20240101120000_.sql": False,
    "20240101120000_x.SQL": False,
    # the previous tool took any description: so does this one (check warns about it)
    "20240101120000_with space.sql": True,
    "20240101120000_dot.ted.sql": True,
    "20240101120000_ünï.sql": True,
    "２0240101120000_wide.sql": False,
    "20240101120000-x.sql": False,
    "20240101120000_x.sql.bak": False,
    "schema.sql": False,
}


@pytest.mark.parametrize("name, valid", NAMES.items(), ids=NAMES.keys())
def test_is_migration_name(name, valid):
    assert is_migration_name(name) is valid


def test_discover_lists_migrations_sorted_and_ignores_non_migrations(tmp_path):
    for name in ["20240301000000_c.sql", "20240101120000_a.sql", "20240201000000_b-b.sql"]:
        write(tmp_path / name, "SELECT 1;")
    write(tmp_path / "schema.sql", "CREATE TABLE t (id int);")
    write(tmp_path / ".gitkeep", "")
    write(tmp_path / ".20240101120000_hidden.sql", "SELECT 1;")
    write(tmp_path / "README.md", "docs")
    (tmp_path / "nested").mkdir()
    write(tmp_path / "nested" / "20240501000000_deep.sql", "SELECT 1;")

    found = discover(tmp_path)

    assert isinstance(found, Discovery)
    assert [(f.version, f.description, f.path) for f in found.files] == [
        ("20240101120000", "a", tmp_path / "20240101120000_a.sql"),
        ("20240201000000", "b-b", tmp_path / "20240201000000_b-b.sql"),
        ("20240301000000", "c", tmp_path / "20240301000000_c.sql"),
    ]
    assert found.warnings == ()


NEAR_MISSES = {
    "2024010112_x.sql": "a migration name needs a 14-digit timestamp (YYYYMMDDHHMMSS_description.sql)",
    "202401011200001_x.sql": "14-digit timestamp",
    "create_users.sql": "14-digit timestamp",
    "V1__init.sql": "14-digit timestamp",
    "20241301120000_month13.sql": "20241301120000 is not a valid UTC date and time",
    "20240230120000_feb30.sql": "is not a valid UTC date and time",
    "20240101120000.sql": "needs a description after the timestamp",
    "20240101120000_.sql": "needs a description after the timestamp",
    "20240101120000-x.sql": "must be followed by _ and a description",
    "20240101120000_x.SQL": "the extension must be lower-case .sql",
    "20240101120000_x.Sql": "the extension must be lower-case .sql",
    "20240101120000_x.sql.bak": "only files ending in .sql are migrations",
    "20240101120000_x.txt": "only files ending in .sql are migrations",
    "20240101_notes.md": "only files ending in .sql are migrations",
}


@pytest.mark.parametrize("name, reason", NEAR_MISSES.items(), ids=NEAR_MISSES.keys())
def test_discover_warns_about_near_misses(tmp_path, name, reason):
    write(tmp_path / "20240101000000_ok.sql", "SELECT 1;")
    write(tmp_path / name, "SELECT 1;")
    found = discover(tmp_path)
    assert [f.path.name for f in found.files] == ["20240101000000_ok.sql"]
    assert len(found.warnings) == 1
    assert found.warnings[0].startswith(f"ignoring {tmp_path / name}: ")
    assert reason in found.warnings[0]


@pytest.mark.parametrize("name", ["notes.txt", "1234567_x.txt", "Makefile", ".gitkeep", ".hidden.sql", "schema.sql"])
def test_discover_is_silent_about_clearly_unrelated_files(tmp_path, name):
    write(tmp_path / name, "")
    assert discover(tmp_path) == Discovery((), ())


def test_discover_rejects_duplicate_versions(tmp_path):
    write(tmp_path / "20240101120000_a.sql", "SELECT 1;")
    write(tmp_path / "20240101120000_b.sql", "SELECT 2;")
    with pytest.raises(MigrationFileError) as caught:
        discover(tmp_path)
    message = str(caught.value)
    assert "duplicate version 20240101120000: 20240101120000_a.sql and 20240101120000_b.sql" in message


def test_discover_missing_directory(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(MigrationFileError, match=f"migration directory {missing} does not exist"):
        discover(missing)


def test_discover_on_a_file(tmp_path):
    path = write(tmp_path / "file", "")
    with pytest.raises(MigrationFileError, match="is not a directory"):
        discover(path)


def test_discover_does_not_read_or_parse_files(tmp_path):
    write(tmp_path / "20240101120000_broken.sql", "THIS IS NOT SQL")
    (found,) = discover(tmp_path).files
    assert found.version == "20240101120000"
    with pytest.raises(MigrationFileError, match="syntax error"):
        found.parse()


def test_the_untouched_create_template_is_an_error_but_other_empty_files_are_not(tmp_path):
    from grapevine_alembic.files.authoring import create_migration

    path = create_migration(tmp_path, "to be written")
    with pytest.raises(MigrationFileError, match="untouched template"):
        parse_sql(path.read_text(), path=path)
    assert parse_sql("-- Your migration code here\n").units == ()  # an empty file as the previous tool wrote them
