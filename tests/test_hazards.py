"""Tests for grapevine_alembic.hazards: deploy hazards on existing tables only."""

import pytest

from grapevine_alembic.hazards import Hazard, find_hazards
from grapevine_alembic.sqlfile import parse_sql


def codes_and_lines(text: str, **kwargs) -> list[tuple[str, int]]:
    return [(hazard.code, hazard.line) for hazard in find_hazards(parse_sql(text), **kwargs)]


HAZARDS = {
    # index-not-concurrent
    "plain index": ("CREATE INDEX users_email ON users (email);", [("index-not-concurrent", 1)]),
    "unique index, qualified": ("SELECT 1;\nCREATE UNIQUE INDEX ON public.users (email);", [("index-not-concurrent", 2)]),
    "index on table created elsewhere with same name in other schema": (
        "CREATE TABLE audit.users (id int);\nCREATE INDEX ON public.users (id);",
        [("index-not-concurrent", 2)],
    ),
    # volatile-default
    "random()": ("ALTER TABLE users ADD COLUMN r float DEFAULT random();", [("volatile-default", 1)]),
    "clock_timestamp()": (
        "ALTER TABLE users ADD COLUMN t timestamptz DEFAULT clock_timestamp();",
        [("volatile-default", 1)],
    ),
    "gen_random_uuid() qualified": (
        "ALTER TABLE users\n  ADD COLUMN u uuid NOT NULL DEFAULT public.gen_random_uuid();",
        [("volatile-default", 1)],
    ),
    "uuid_generate_v4()": ("ALTER TABLE users ADD u uuid DEFAULT uuid_generate_v4();", [("volatile-default", 1)]),
    "nextval()": ("ALTER TABLE users ADD n bigint DEFAULT nextval('s');", [("volatile-default", 1)]),
    "timeofday() inside a cast": (
        "ALTER TABLE users ADD t text DEFAULT (timeofday())::text;",
        [("volatile-default", 1)],
    ),
    "serial column": ("ALTER TABLE users ADD COLUMN n bigserial;", [("volatile-default", 1)]),
    "identity column": (
        "ALTER TABLE users ADD COLUMN n int GENERATED ALWAYS AS IDENTITY;",
        [("volatile-default", 1)],
    ),
    # alter-column-type
    "alter column type": ("ALTER TABLE users ALTER COLUMN id TYPE bigint;", [("alter-column-type", 1)]),
    "set data type with USING": (
        "ALTER TABLE users ALTER id SET DATA TYPE bigint USING id::bigint;",
        [("alter-column-type", 1)],
    ),
    # set-not-null and add-column-not-null-no-default
    "set not null": ("ALTER TABLE users ALTER COLUMN email SET NOT NULL;", [("set-not-null", 1)]),
    "add not null column without default": (
        "ALTER TABLE users ADD COLUMN n int NOT NULL;",
        [("add-column-not-null-no-default", 1)],
    ),
    # several hazards in one statement and one file
    "several subcommands": (
        "ALTER TABLE users\n  ALTER COLUMN id TYPE bigint,\n  ALTER COLUMN email SET NOT NULL,\n"
        "  ADD COLUMN r float DEFAULT random();",
        [("alter-column-type", 1), ("set-not-null", 1), ("volatile-default", 1)],
    ),
    "lines across a file": (
        "-- comment;\nCREATE TABLE a (id int);\n\nCREATE INDEX ON users (id);\nDO $$\nBEGIN\nEND\n$$;\n"
        "ALTER TABLE users ALTER COLUMN id TYPE bigint;",
        [("index-not-concurrent", 4), ("alter-column-type", 9)],
    ),
}


@pytest.mark.parametrize("text, expected", HAZARDS.values(), ids=HAZARDS.keys())
def test_hazards_on_existing_tables(text, expected):
    assert codes_and_lines(text) == expected


NO_HAZARDS = {
    # the same statements on a table created by this file
    "index on new table": "CREATE TABLE users (id int);\nCREATE INDEX ON users (id);",
    "index on new table, qualified on one side": "CREATE TABLE public.users (id int);\nCREATE INDEX ON users (id);",
    "index on new table, qualified on the other side": "CREATE TABLE users (id int);\nCREATE INDEX ON public.users (id);",
    "index on new CREATE TABLE AS": "CREATE TABLE t AS SELECT 1 AS id;\nCREATE INDEX ON t (id);",
    "index on new materialized view": "CREATE MATERIALIZED VIEW mv AS SELECT 1 AS id;\nCREATE INDEX ON mv (id);",
    "index on SELECT INTO table": "SELECT 1 AS id INTO t;\nCREATE INDEX ON t (id);",
    "volatile default on new table": "CREATE TABLE users (id int);\nALTER TABLE users ADD COLUMN r float DEFAULT random();",
    "alter type on new table": "CREATE TABLE users (id int);\nALTER TABLE users ALTER COLUMN id TYPE bigint;",
    "set not null on new table": "CREATE TABLE users (id int);\nALTER TABLE users ALTER COLUMN id SET NOT NULL;",
    "quoted new table": 'CREATE TABLE "Users" (id int);\nCREATE INDEX ON "Users" (id);',
    # safe forms on existing tables
    "concurrent index": "CREATE INDEX CONCURRENTLY users_email ON users (email);",
    "stable default now()": "ALTER TABLE users ADD COLUMN t timestamptz DEFAULT now();",
    "current_timestamp": "ALTER TABLE users ADD COLUMN t timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP;",
    "statement_timestamp()": "ALTER TABLE users ADD COLUMN t timestamptz DEFAULT statement_timestamp();",
    "constant default": "ALTER TABLE users ADD COLUMN n int NOT NULL DEFAULT 0;",
    "nullable column": "ALTER TABLE users ADD COLUMN n int;",
    "generated stored not null": "ALTER TABLE users ADD COLUMN n int NOT NULL GENERATED ALWAYS AS (1) STORED;",
    "set default random() only affects new rows": "ALTER TABLE users ALTER COLUMN r SET DEFAULT random();",
    "drop not null": "ALTER TABLE users ALTER COLUMN email DROP NOT NULL;",
    "composite type attribute": "ALTER TYPE addr ALTER ATTRIBUTE zip TYPE text;",
    "create table with volatile default": "CREATE TABLE t (id uuid DEFAULT gen_random_uuid() NOT NULL);",
    "select random()": "SELECT random();",
}


@pytest.mark.parametrize("text", NO_HAZARDS.values(), ids=NO_HAZARDS.keys())
def test_no_hazards(text):
    assert find_hazards(parse_sql(text)) == []


CREATED_ARGUMENT = {
    "unqualified": ({"users"}, []),
    "qualified": ({"public.users"}, []),
    "upper case folds like an unquoted identifier": ({"Public.USERS"}, []),
    "quoted keeps case": ({'"Users"'}, [("index-not-concurrent", 1)]),
    "other schema": ({"audit.users"}, [("index-not-concurrent", 1)]),
    "other table": ({"accounts"}, [("index-not-concurrent", 1)]),
}


@pytest.mark.parametrize("created, expected", CREATED_ARGUMENT.values(), ids=CREATED_ARGUMENT.keys())
def test_created_tables_argument_adds_to_the_file_tables(created, expected):
    assert codes_and_lines("CREATE INDEX ON public.users (id);", created_tables=created) == expected


def test_hazard_values_and_messages():
    (hazard,) = find_hazards(parse_sql("SELECT 1;\nALTER TABLE app.users ALTER COLUMN id TYPE bigint;"))
    assert isinstance(hazard, Hazard)
    assert (hazard.line, hazard.code) == (2, "alter-column-type")
    assert "app.users" in hazard.message and "ACCESS EXCLUSIVE" in hazard.message
    assert "\n" not in hazard.message


@pytest.mark.parametrize(
    "text, words",
    [
        ("CREATE INDEX ON users (id);", ["users", "CONCURRENTLY"]),
        ("ALTER TABLE users ADD r float DEFAULT random();", ["random()", "users", "rewrites"]),
        ("ALTER TABLE users ALTER email SET NOT NULL;", ["users.email", "NOT VALID"]),
        ("ALTER TABLE users ADD n int NOT NULL;", ["n", "users", "rows"]),
    ],
)
def test_messages_name_the_table_and_the_fix(text, words):
    (hazard,) = find_hazards(parse_sql(text))
    for word in words:
        assert word in hazard.message


def test_hazards_in_wrapped_and_no_transaction_files():
    text = "-- grapevine: no-transaction\nCREATE INDEX CONCURRENTLY i ON users (id);\nBEGIN;\nCREATE INDEX j ON users (x);\nCOMMIT;"
    assert codes_and_lines(text) == [("index-not-concurrent", 4)]
