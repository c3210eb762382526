"""The tool's tables are its own: their names come from alembic.ini, and a file
that creates, alters, drops or writes them is refused before anything of it runs, on both roads.
"""

from __future__ import annotations

import json

import pytest

from grapevine_alembic.api import migrate_database
from pg import url_for

ROADS = ["migrate", "alembic"]
# An Alembic project's first file, as teams moving over have it
ALEMBIC_LEFTOVER = (
    "CREATE TABLE IF NOT EXISTS alembic_version (version_num varchar(32) NOT NULL);\n"
    "INSERT INTO alembic_version VALUES ('1.6.0');\n"
)
FIRST, SECOND = "20250101000000", "20250102000000"


def _configure(project, **options: str) -> None:
    """Options in alembic.ini's [tenant] section, as a team would add them."""
    ini = project.root / "alembic.ini"
    lines = "".join(f"{key} = {value}\n" for key, value in options.items())
    ini.write_text(ini.read_text().replace("[tenant]\n", f"[tenant]\n{lines}", 1))


def _run(project, road: str, tenant: str = "acme"):
    if road == "migrate":
        return project.cli("migrate", "--tenant", tenant)
    return project.alembic("-n", "tenant", "-x", f"tenant={tenant}", "upgrade", "head")


def _status(project, tenant: str = "acme") -> dict:
    result = project.cli("status", "--tenant", tenant, "--json", "--exit-code")
    doc = json.loads(result.stdout)["databases"][0]
    assert result.returncode == (3 if doc["pending"] else 0), result.stdout + result.stderr  # 3: pending
    return doc


def _current(project, tenant: str = "acme") -> list[str]:
    result = project.alembic("-n", "tenant", "-x", f"tenant={tenant}", "current")
    assert result.returncode == 0, result.stdout + result.stderr
    return [line.split()[0] for line in result.stdout.splitlines() if line.strip()]


def _error_lines(result) -> list[str]:
    """The lines naming the refusal (on the alembic road: Alembic's FAILED line; its log repeats it)."""
    lines = (result.stdout + result.stderr).splitlines()
    return [line for line in lines if "refused" in line and not line.startswith("ERROR [alembic")]


@pytest.mark.parametrize("road", ROADS)
def test_a_file_creating_alembic_version_is_refused_before_anything_runs(project, road):
    database = project.tenant_chain({f"{FIRST}_alembic_leftover.sql": ALEMBIC_LEFTOVER,
                                f"{SECOND}_b.sql": "CREATE TABLE b (x int);\n"})
    result = _run(project, road)
    assert result.returncode != 0
    lines = _error_lines(result)
    assert len(lines) == 1, result.stdout + result.stderr
    assert f"migrations/tenant/{FIRST}_alembic_leftover.sql:1:" in lines[0]
    assert "CREATE TABLE IF NOT EXISTS alembic_version" in lines[0]
    assert "version_table = <another name> in alembic.ini [tenant]" in lines[0]
    assert "Traceback" not in result.stderr
    assert project.tables(database) == set()  # nothing applied, no version table, no ledger


@pytest.mark.parametrize("road", ROADS)
def test_a_write_inside_a_run_of_plain_statements_is_refused(project, road):
    # plain INSERT/UPDATE/DELETE runs are kept unparsed (sqlbatch): the write is the run's third statement
    seed = "CREATE TABLE t (x int);\nINSERT INTO t VALUES (1);\nINSERT INTO t VALUES (2);\n" \
           "UPDATE schema_migrations SET dirty = false;\nINSERT INTO t VALUES (3);\n"
    database = project.tenant_chain({f"{FIRST}_seed.sql": seed})
    result = _run(project, road)
    assert result.returncode != 0
    lines = _error_lines(result)
    assert len(lines) == 1, result.stdout + result.stderr
    assert f"migrations/tenant/{FIRST}_seed.sql:4:" in lines[0]
    assert "UPDATE schema_migrations" in lines[0]
    assert project.tables(database) == set()


@pytest.mark.parametrize("road", ROADS)
def test_with_the_version_table_renamed_the_file_applies_and_both_roads_agree(project, road):
    database = project.tenant_chain({f"{FIRST}_alembic_leftover.sql": ALEMBIC_LEFTOVER,
                                f"{SECOND}_b.sql": "CREATE TABLE b (x int);\n"})
    _configure(project, version_table="grapevine_version")
    result = _run(project, road)
    assert result.returncode == 0, result.stdout + result.stderr
    assert project.query(database, "SELECT version_num FROM alembic_version") == [("1.6.0",)]  # the team's own
    assert project.query(database, "SELECT version_num FROM grapevine_version") == [(SECOND,)]
    assert [row[0] for row in project.ledger(database)] == [FIRST, SECOND]
    status = _status(project)
    assert status["version"] == SECOND and status["pending"] == [] and status["ok"]
    assert _current(project) == [SECOND]  # one head
    other = "alembic" if road == "migrate" else "migrate"
    again = _run(project, other)  # the other road sees the same database: nothing to do
    assert again.returncode == 0, again.stdout + again.stderr
    assert project.query(database, "SELECT version_num FROM grapevine_version") == [(SECOND,)]


def test_mark_and_status_use_the_renamed_tables(project):
    database = project.tenant_chain({f"{FIRST}_alembic_leftover.sql": ALEMBIC_LEFTOVER,
                                f"{SECOND}_b.sql": "CREATE TABLE IF NOT EXISTS b (x int);\n"})
    _configure(project, version_table="grapevine_version", ledger_table="grapevine_ledger")
    assert _run(project, "migrate").returncode == 0
    result = project.cli("mark", "--unapply", SECOND, "--tenant", "acme")
    assert result.returncode == 0, result.stdout + result.stderr
    assert project.query(database, "SELECT version_num FROM grapevine_version") == [(FIRST,)]
    assert project.query(database, "SELECT version FROM grapevine_ledger") == [(FIRST,)]
    assert "schema_migrations" not in project.tables(database)
    assert _status(project)["pending"] == [SECOND]
    assert _run(project, "alembic").returncode == 0
    assert _current(project) == [SECOND]


@pytest.mark.parametrize("road", ROADS)
def test_a_file_altering_the_ledger_is_refused(project, road):
    database = project.tenant_chain({f"{FIRST}_a.sql": "CREATE TABLE a (x int);\n"})
    assert _run(project, road).returncode == 0
    project.write("tenant", f"{SECOND}_data_version.sql", "-- golang-migrate habit\nALTER TABLE schema_migrations ADD COLUMN data_version int;\n")
    result = _run(project, road)
    assert result.returncode != 0
    lines = _error_lines(result)
    assert len(lines) == 1 and f"{SECOND}_data_version.sql:2:" in lines[0] and "ledger_table" in lines[0], lines
    columns = {r[0] for r in project.query(database, "SELECT column_name FROM information_schema.columns"
                                                     " WHERE table_name = 'schema_migrations'")}
    assert "data_version" not in columns
    assert project.version(database) == FIRST


@pytest.mark.parametrize("road", ROADS)
def test_with_the_ledger_renamed_a_golang_migrate_table_is_the_files_own(project, road):
    database = project.tenant_chain({
        f"{FIRST}_golang.sql": "CREATE TABLE schema_migrations (version bigint NOT NULL, dirty boolean NOT NULL);\n",
        f"{SECOND}_data_version.sql": "ALTER TABLE schema_migrations ADD COLUMN data_version int;\n",
    })
    _configure(project, ledger_table="grapevine_ledger")
    result = _run(project, road)
    assert result.returncode == 0, result.stdout + result.stderr
    columns = [r[0] for r in project.query(database, "SELECT column_name FROM information_schema.columns"
                                                     " WHERE table_name = 'schema_migrations' ORDER BY ordinal_position")]
    assert columns == ["version", "dirty", "data_version"]
    assert project.query(database, "SELECT version FROM grapevine_ledger ORDER BY 1") == [(FIRST,), (SECOND,)]
    assert _status(project)["version"] == SECOND


@pytest.mark.parametrize("road", ROADS)
def test_the_version_table_may_live_in_a_schema_of_its_own(project, road):
    database = project.tenant_chain({f"{FIRST}_alembic_leftover.sql": ALEMBIC_LEFTOVER})
    project.query(database, "CREATE SCHEMA tool")
    _configure(project, version_table_schema="tool")
    result = _run(project, road)
    assert result.returncode == 0, result.stdout + result.stderr
    assert project.query(database, "SELECT version_num FROM tool.alembic_version") == [(FIRST,)]
    assert project.query(database, "SELECT version_num FROM public.alembic_version") == [("1.6.0",)]
    assert _current(project) == [FIRST]


def test_the_api_refuses_by_default_and_takes_the_names_as_arguments(project):
    database = project.tenant_chain({f"{FIRST}_alembic_leftover.sql": ALEMBIC_LEFTOVER})
    url, folder = url_for(project.server, database), project.migrations("tenant")
    refused = migrate_database(url, folder, retries=0)
    assert not refused.ok and "refused" in refused.error and "version_table" in refused.error
    assert project.tables(database) == set()
    applied = migrate_database(url, folder, retries=0, version_table="grapevine_version")
    assert applied.ok, applied.error
    assert project.query(database, "SELECT version_num FROM grapevine_version") == [(FIRST,)]
    with pytest.raises(ValueError, match="version_table"):
        migrate_database(url, folder, version_table="Bad-Name")


def test_a_malformed_table_name_is_one_configuration_error(project):
    project.tenant_chain({f"{FIRST}_a.sql": "CREATE TABLE a (x int);\n"})
    _configure(project, ledger_table="my-ledger")
    result = project.cli("migrate", "--tenant", "acme")
    assert result.returncode == 2
    assert "ledger_table = 'my-ledger'" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_the_default_names_are_no_keywords_and_a_keyword_is_still_quoted():
    """tool_tables skips the parser's keyword test for the default names: that shortcut holds only while none is one."""
    from grapevine_alembic.tool_tables import _NO_KEYWORDS, ToolTables, _is_keyword

    assert _NO_KEYWORDS and not any(_is_keyword(name) for name in _NO_KEYWORDS)
    assert _is_keyword("user") and _is_keyword("order") and _is_keyword("between") and not _is_keyword("abort")
    assert ToolTables().ledger == "schema_migrations"
    assert ToolTables(ledger_table="user", version_table="order").ledger == '"user"'
    assert ToolTables(ledger_table="user", version_table="order").version == '"order"'


def test_drift_and_the_schema_dump_use_the_renamed_tables(project):
    # the team's golang-migrate table is its own: drift sees it, and never the tool's renamed tables
    database = project.tenant_chain({
        f"{FIRST}_golang.sql": "CREATE TABLE schema_migrations (version bigint NOT NULL, dirty boolean NOT NULL);\n",
        f"{SECOND}_b.sql": "CREATE TABLE b (x int);\n",
    })
    _configure(project, version_table="grapevine_version", ledger_table="grapevine_ledger")
    assert _run(project, "migrate").returncode == 0
    clean = project.cli("drift", "--tenant", "acme", "--json")
    [doc] = json.loads(clean.stdout)["databases"]
    assert (clean.returncode, doc["version"], doc["drift"]) == (0, SECOND, False), clean.stdout + clean.stderr

    project.query(database, "ALTER TABLE schema_migrations ADD COLUMN note text;"
                            " ALTER TABLE grapevine_ledger ADD COLUMN x text; CREATE INDEX ON grapevine_version (version_num)")
    changed = project.cli("drift", "--tenant", "acme")
    assert changed.returncode == 1, changed.stdout + changed.stderr
    assert changed.stdout.splitlines() == ["0 match; 1 differ:", "  db_acme: extra column public.schema_migrations.note (text)"]

    dump = project.cli("schema", "dump", "--tenant")
    assert dump.returncode == 0, dump.stdout + dump.stderr
    text = (project.migrations("tenant") / "schema.sql").read_text()
    assert "CREATE TABLE public.schema_migrations" in text and "grapevine_" not in text
