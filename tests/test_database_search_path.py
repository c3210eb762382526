"""A database whose search_path was changed after migrations ran.

``ALTER DATABASE/ROLE ... SET search_path`` after the fact moves where unqualified names resolve:
the tool's tables, created in the old first schema, are then either out of reach (the database
read as new, its chain re-applied into the new schema) or still reached while the files would
create their objects elsewhere.  Every command refuses such a database with one line naming the
statement that puts the search_path back, and writes nothing.
"""

from __future__ import annotations

import json
import uuid

import pytest

import pg

FIRST, SECOND, THIRD = "20250101000000", "20250102000000", "20250103000000"
# how the search_path changed: (SQL run by a DBA, the statement the refusal names)
HOW = {
    "database": ("ALTER DATABASE {db} SET search_path = app", "ALTER DATABASE {db} RESET search_path"),
    "role_in_database": ("ALTER ROLE {role} IN DATABASE {db} SET search_path = app",
                         "ALTER ROLE {role} IN DATABASE {db} RESET search_path"),
    # app first, public still reached: the tables are found, but new files would create in app
    "role": ("ALTER ROLE {role} SET search_path = app, public", "ALTER ROLE {role} RESET search_path"),
}


@pytest.fixture
def login(pg_server):
    """A login role of the test's own (superuser: it reads the control database), so that a role
    setting touches no other test; it creates nothing, so it drops cleanly afterwards."""
    role, password = f"gv_sp_{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
    try:
        pg.query(pg_server, None, f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD %s", (password,))
    except Exception as err:  # an external server may not let us create roles
        pytest.skip(f"cannot create roles on this server: {err}")
    yield role, password
    pg.query(pg_server, None, f"DROP ROLE IF EXISTS {role}")


def _changed_database(project, login, how: str) -> tuple[str, dict, str]:
    """db_acme migrated to SECOND with THIRD pending, then its search_path changed; (db, env, fix)."""
    role, password = login
    database = project.tenant_chain({f"{FIRST}_items.sql": "CREATE TABLE items (id int);\n",
                                     f"{SECOND}_orders.sql": "CREATE TABLE orders (id int);\n"})
    assert project.cli("migrate", "--tenant", "acme").returncode == 0
    project.write("tenant", f"{THIRD}_extra.sql", "CREATE TABLE extra (id int);\n")
    project.query(database, "CREATE SCHEMA app")
    change, fix = (text.format(db=database, role=role) for text in HOW[how])
    project.query(database, change)
    env = {"CONTROL_DATABASE_URL": f"postgresql://{role}:{password}@{project.server.host}:{project.server.port}"
                                   f"/{project.control_db}"}
    return database, env, fix


def _refusal(result, database: str, fix: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output
    lines = [line for line in output.splitlines()
             if "search_path changed" in line and not line.startswith("ERROR [alembic")]
    assert len(lines) == 1, output
    assert f"the search_path changed after migrations ran on {database}: the tool's tables are in schema public" \
        in lines[0]
    assert f"put it back ({fix})" in lines[0]


def _untouched(project, database: str) -> None:
    """Nothing re-applied into app, nothing of the pending file anywhere, the record as it was."""
    assert project.query(database, "SELECT count(*) FROM pg_class WHERE relnamespace = 'app'::regnamespace")[0][0] == 0
    assert project.tables(database) == {"items", "orders", "alembic_version", "schema_migrations"}
    assert project.query(database, "SELECT version_num FROM public.alembic_version") == [(SECOND,)]
    assert [v for v, in project.query(database, "SELECT version FROM public.schema_migrations ORDER BY 1")] \
        == [FIRST, SECOND]


@pytest.mark.parametrize("how", sorted(HOW))
def test_a_changed_search_path_is_refused_by_every_command_on_both_roads(project, login, how):
    database, env, fix = _changed_database(project, login, how)
    alembic = ("-n", "tenant", "-x", "tenant=acme")
    for args in (("status", "--tenant", "acme"), ("migrate", "--tenant", "acme"),
                 ("mark", "--tenant", "acme", "--apply", THIRD)):
        _refusal(project.cli(*args, env=env), database, fix)
    for args in (("current",), ("upgrade", "head"), ("stamp", "head")):
        _refusal(project.alembic(*alembic, *args, env=env), database, fix)
    _untouched(project, database)

    # the statement the line names is the one that puts it back: the pending file lands in public
    project.query(database, fix)
    status = project.cli("status", "--tenant", "acme", "--json", env=env)
    assert json.loads(status.stdout)["databases"][0]["pending"] == [THIRD], status.stdout + status.stderr
    result = project.cli("migrate", "--tenant", "acme")  # as the suite's login: the role owns nothing to drop
    assert result.returncode == 0, result.stdout + result.stderr
    assert "extra" in project.tables(database)
    assert project.query(database, "SELECT count(*) FROM pg_class WHERE relnamespace = 'app'::regnamespace")[0][0] == 0


def test_a_search_path_with_a_missing_first_schema_still_migrates(project, login):
    # "$user", public with no schema of the login's name: current_schema() is public, as before
    database = project.tenant_chain({f"{FIRST}_items.sql": "CREATE TABLE items (id int);\n"})
    assert project.cli("migrate", "--tenant", "acme").returncode == 0
    project.write("tenant", f"{SECOND}_orders.sql", "CREATE TABLE orders (id int);\n")
    project.query(database, f"ALTER DATABASE {database} SET search_path = nowhere, public")
    result = project.alembic("-n", "tenant", "-x", "tenant=acme", "upgrade", "head")
    assert result.returncode == 0, result.stdout + result.stderr
    assert {"items", "orders"} <= project.tables(database)


def test_drift_refuses_a_database_whose_search_path_no_longer_reaches_the_tools_tables(project, login):
    # read as unmigrated, every table of the database would be reported as drift
    database, env, fix = _changed_database(project, login, "database")
    _refusal(project.cli("drift", "--tenant", "acme", env=env), database, fix)


@pytest.mark.parametrize("road", ["migrate", "alembic"])
def test_naming_the_tables_schema_keeps_a_new_search_path_on_purpose(project, login, road):
    database, env, _ = _changed_database(project, login, "database")
    refused = project.cli("status", "--tenant", "acme", env=env)
    pins = "version_table_schema = public and ledger_table_schema = public in alembic.ini"
    assert f"or, if the new search_path is meant, name the tables' schema: {pins}" in refused.stdout + refused.stderr
    ini = project.root / "alembic.ini"
    ini.write_text(ini.read_text().replace("[tenant]\n", "[tenant]\nversion_table_schema = public\n"
                                                         "ledger_table_schema = public\n", 1))
    # as the suite's login (ALTER DATABASE sets its search_path too): the test's role creates nothing
    if road == "migrate":
        result = project.cli("migrate", "--tenant", "acme")
    else:
        result = project.alembic("-n", "tenant", "-x", "tenant=acme", "upgrade", "head")
    assert result.returncode == 0, result.stdout + result.stderr
    # the tables found in public, nothing applied twice; the new file follows the new search_path
    assert project.query(database, "SELECT version_num FROM public.alembic_version") == [(THIRD,)]
    assert [t for t, in project.query(database, "SELECT tablename FROM pg_tables WHERE schemaname = 'app'")] == ["extra"]
    assert project.tables(database) == {"items", "orders", "alembic_version", "schema_migrations"}


@pytest.mark.parametrize("how", sorted(HOW))
def test_reset_drops_a_database_whose_search_path_changed_tool_tables_included(project, login, how):
    # reset drops every schema anyway: the tool's tables' (public) as well as the new current one (app)
    database, env, fix = _changed_database(project, login, how)
    project.query(database, "CREATE TABLE app.kept_by_nobody (id int)")
    result = project.cli("reset", "--tenant", "acme", "--force", env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "search_path changed" not in output and "Traceback" not in output
    assert project.query(database, "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%'"
                                   " AND nspname <> 'information_schema'") == [("public",)]
    assert project.tables(database) == set()
    # the setting is the DBA's and stays; put back, a fresh migrate starts clean in public
    project.query(database, fix)
    status = project.cli("status", "--tenant", "acme", env=env)
    assert f"3 pending  {FIRST}, {SECOND}, {THIRD}" in status.stdout, status.stdout + status.stderr
    migrated = project.cli("migrate", "--tenant", "acme")  # as the suite's login: the role owns nothing to drop
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert project.tables(database) == {"items", "orders", "extra", "alembic_version", "schema_migrations"}
