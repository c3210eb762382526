"""Tests for grapevine_alembic.files.hazards: what Squawk cannot see (no database, no Squawk).

The rules Squawk covers are tested through ``check`` in test_lint_squawk.py.
"""

import pytest

from grapevine_alembic.files.hazards import Hazard, find_hazards, new_table_spans
from grapevine_alembic.files.parsing import parse_sql


def codes_and_lines(text: str) -> list[tuple[str, int]]:
    return [(hazard.code, hazard.line) for hazard in find_hazards(parse_sql(text))]


SERIAL = {
    "bigserial": ("ALTER TABLE users ADD COLUMN n bigserial;", [("adding-serial-column", 1)]),
    "serial, short form, qualified table": ("SELECT 1;\nALTER TABLE app.users ADD n serial;", [("adding-serial-column", 2)]),
    "serial4 among other subcommands": (
        "ALTER TABLE users\n  ADD COLUMN a text,\n  ADD COLUMN n serial4;", [("adding-serial-column", 1)]),
    "two serial columns": (
        "ALTER TABLE users ADD COLUMN a smallserial, ADD COLUMN b serial8;",
        [("adding-serial-column", 1), ("adding-serial-column", 1)]),
    "in a file that runs outside a transaction": (
        "-- grapevine: no-transaction\nVACUUM users;\nALTER TABLE users ADD COLUMN n bigserial;",
        [("adding-serial-column", 3)]),
}


@pytest.mark.parametrize("text, expected", SERIAL.values(), ids=SERIAL.keys())
def test_serial_column_on_an_existing_table(text, expected):
    assert codes_and_lines(text) == expected


NOT_SERIAL = {
    "table created by the file": "CREATE TABLE users (id bigint);\nALTER TABLE users ADD COLUMN n bigserial;",
    "created in another schema spelling": "CREATE TABLE public.users (id bigint);\nALTER TABLE users ADD n serial;",
    "identity column (Squawk reports it)": "ALTER TABLE users ADD COLUMN n bigint GENERATED ALWAYS AS IDENTITY;",
    "bigint column": "ALTER TABLE users ADD COLUMN n bigint;",
    "serial in CREATE TABLE": "CREATE TABLE t (id bigserial);",
    "a type named like serial in a schema": "ALTER TABLE users ADD COLUMN n app.serial;",
}


@pytest.mark.parametrize("text", NOT_SERIAL.values(), ids=NOT_SERIAL.keys())
def test_no_serial_hazard(text):
    assert find_hazards(parse_sql(text)) == []


def test_hazard_value_has_message_and_fix():
    (hazard,) = find_hazards(parse_sql("ALTER TABLE app.users ADD COLUMN n bigserial;"))
    assert isinstance(hazard, Hazard)
    assert "app.users" in hazard.message and "ACCESS EXCLUSIVE" in hazard.message and hazard.fix
    assert "\n" not in hazard.message


SPANS = {
    "index on new table": ("CREATE TABLE users (id int);\nCREATE INDEX ON users (id);", [(2, 2)]),
    "qualified on one side": ("CREATE TABLE public.users (id int);\nCREATE INDEX ON users (id);", [(2, 2)]),
    "qualified on the other side": ("CREATE TABLE users (id int);\nCREATE INDEX ON public.users (id);", [(2, 2)]),
    "CREATE TABLE AS": ("CREATE TABLE t AS SELECT 1 AS id;\nCREATE INDEX ON t (id);", [(2, 2)]),
    "materialized view": ("CREATE MATERIALIZED VIEW mv AS SELECT 1 AS id;\nCREATE INDEX ON mv (id);", [(2, 2)]),
    "SELECT INTO": ("SELECT 1 AS id INTO t;\nCREATE INDEX ON t (id);", [(2, 2)]),
    "quoted name keeps its case": ('CREATE TABLE "Users" (id int);\nCREATE INDEX ON "Users" (id);\n'
                                   "CREATE INDEX ON users (id);", [(2, 2)]),
    "multi-line ALTER and RENAME": (
        "CREATE TABLE t (a int);\nALTER TABLE t\n  ALTER COLUMN a TYPE bigint,\n  ALTER COLUMN a SET NOT NULL;\n"
        "ALTER TABLE t RENAME COLUMN a TO b;", [(2, 4), (5, 5)]),
    "other schema is another table": ("CREATE TABLE audit.users (id int);\nCREATE INDEX ON public.users (id);", []),
    "existing table": ("CREATE INDEX ON users (id);\nALTER TABLE users ALTER COLUMN id TYPE bigint;", []),
}


@pytest.mark.parametrize("text, expected", SPANS.values(), ids=SPANS.keys())
def test_statements_on_tables_the_file_creates(text, expected):
    assert new_table_spans(parse_sql(text)) == expected

