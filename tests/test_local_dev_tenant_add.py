"""`dev tenant add` on a team's own tenants table: any table with id and state;
only the columns that must be given are filled; a column it cannot fill is one line; never a
traceback, and a refused row leaves none of the others written."""

from __future__ import annotations

import uuid

import pytest


def _ids(project, count: int) -> list[str]:
    """Tenant ids unique on the shared server; their databases are dropped with the test's."""
    stem = uuid.uuid4().hex[:8]
    ids = [f"t{stem}{i}" for i in range(count)]
    project.make_db.created.extend(f"db_{t}" for t in ids)
    return ids


def _add(project, *ids):
    result = project.cli("dev", "tenant", "add", *ids)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_a_tenants_table_without_a_name_column(project):
    """The previous tool's product table: id, state, an optional column, no name."""
    project.control("CREATE TABLE tenants (id varchar(64) PRIMARY KEY, state varchar(32) NOT NULL DEFAULT 'pending',"
                    " workos_org_id text, created_at timestamptz NOT NULL DEFAULT now())")
    acme, globex = _ids(project, 2)
    result = _add(project, acme, globex)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"created db_{acme}", f"created db_{globex}"]
    assert project.control("SELECT id, state, workos_org_id FROM tenants ORDER BY id") == [
        (acme, "provisioned", None), (globex, "provisioned", None)]
    assert project.query(f"db_{acme}", "SELECT current_database()") == [(f"db_{acme}",)]


def test_an_existing_row_is_set_back_to_provisioned(project):
    project.control("CREATE TABLE tenants (id text PRIMARY KEY, state text NOT NULL, deleted_at timestamptz)")
    [acme] = _ids(project, 1)
    project.control("INSERT INTO tenants VALUES (%s, 'error', now())", (acme,))
    assert _add(project, acme).returncode == 0
    assert project.control("SELECT state, deleted_at FROM tenants") == [("provisioned", None)]


def test_required_columns_of_many_types_are_filled(project):
    project.control("CREATE TYPE tier AS ENUM ('free', 'team'); CREATE TABLE tenants (id text PRIMARY KEY,"
                    " slug text NOT NULL UNIQUE, state text NOT NULL, plan tier NOT NULL, active boolean NOT NULL,"
                    " settings jsonb NOT NULL, seats integer NOT NULL, joined timestamptz NOT NULL,"
                    " token uuid NOT NULL, serial_no bigint GENERATED ALWAYS AS IDENTITY,"
                    " note text NOT NULL DEFAULT 'x', shown text GENERATED ALWAYS AS (upper(slug)) STORED)")
    [acme] = _ids(project, 1)
    result = _add(project, acme)
    assert result.returncode == 0, result.stderr
    [row] = project.control("SELECT slug, state, plan::text, active, settings::text, seats, note, shown,"
                            " joined IS NOT NULL, token IS NOT NULL FROM tenants")
    assert row == (acme, "provisioned", "free", False, "{}", 0, "x", acme.upper(), True, True)


@pytest.mark.parametrize("column, expected", [
    ("location point NOT NULL", "dev tenant add cannot fill the tenants column location (point, NOT NULL without a default)"),
    ("region_id integer NOT NULL REFERENCES regions (id)", "the tenants table refused the row"),
])
def test_a_column_it_cannot_fill_is_one_line_and_nothing_is_written(project, column, expected):
    project.control(f"CREATE TABLE regions (id integer PRIMARY KEY); CREATE TABLE tenants (id text PRIMARY KEY,"
                    f" state text NOT NULL, {column})")
    acme, globex = _ids(project, 2)
    result = _add(project, acme, globex)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and expected in line, line
    assert project.control("SELECT count(*) FROM tenants") == [(0,)]
    assert project.query("postgres", "SELECT count(*) FROM pg_database WHERE datname IN (%s, %s)",
                         (f"db_{acme}", f"db_{globex}")) == [(0,)]


def test_a_table_without_state_is_named(project):
    project.control("CREATE TABLE tenants (id text PRIMARY KEY, status text)")
    [acme] = _ids(project, 1)
    result = _add(project, acme)
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: the control database's tenants table has no state column:"
                                     " dev tenant add needs id and state")


def test_dev_tenant_remove_drops_the_database_and_the_row(project, pg_server):
    from pg import database_exists, url_for

    project.migrate_control()
    acme, globex, orphan = _ids(project, 3)
    assert _add(project, acme, globex).returncode == 0
    project.make_db(f"db_{orphan}")  # a database whose row is already gone
    removed = project.cli("dev", "tenant", "remove", acme, orphan)
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.splitlines() == [f"dropped db_{acme} and deleted its tenants row", f"dropped db_{orphan}"]
    assert not database_exists(pg_server, f"db_{acme}") and not database_exists(pg_server, f"db_{orphan}")
    assert project.control("SELECT id FROM tenants ORDER BY id") == [(globex,)]
    status = project.cli("status", "--all-tenants", "--json")  # the fleet no longer has it
    assert status.returncode == 0 and f"db_{acme}" not in status.stdout, status.stdout + status.stderr

    typo = project.cli("dev", "tenant", "remove", globex + "x")  # unknown: one line with the close id, nothing gone
    assert typo.returncode == 2 and typo.stderr.strip() == (
        f"error: unknown tenant {globex}x: no such id in the tenants table; did you mean {globex}?"), typo.stderr
    assert database_exists(pg_server, f"db_{globex}") and project.control("SELECT count(*) FROM tenants") == [(1,)]

    remote = url_for(pg_server, project.control_db).replace("127.0.0.1", "db.example.com")  # refused before connecting
    refused = project.cli("dev", "tenant", "remove", globex, env={"CONTROL_DATABASE_URL": remote})
    [line] = refused.stderr.strip().splitlines()
    assert refused.returncode == 2 and line.startswith("error: dev tenant remove works on local servers only, not ")
    assert "db.example.com" in line and "***" in line
    assert database_exists(pg_server, f"db_{globex}")


def test_dev_tenant_remove_drops_nothing_when_the_row_cannot_go(project, pg_server):
    from pg import database_exists

    project.migrate_control()
    [acme] = _ids(project, 1)
    assert _add(project, acme).returncode == 0
    project.control("CREATE TABLE invoices (tenant_id text REFERENCES tenants (id))")
    project.control("INSERT INTO invoices VALUES (%s)", (acme,))
    refused = project.cli("dev", "tenant", "remove", acme)
    assert refused.returncode == 2 and refused.stderr.startswith("error: dev tenant remove: the tenants table refused"), refused.stderr
    assert "Traceback" not in refused.stderr
    assert database_exists(pg_server, f"db_{acme}") and project.control("SELECT count(*) FROM tenants") == [(1,)]


@pytest.mark.parametrize("command", ["add", "remove"])
def test_a_control_database_without_a_tenants_table_names_the_command_that_creates_it(project, command):
    """The fact comes from below cli/ (a Fix); the CLI words the command to paste, with its own name."""
    [acme] = _ids(project, 1)
    result = project.cli("dev", "tenant", command, acme)
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: the control database has no tenants table"
                                     " (run `grapevine-migrations migrate --control` first?)"), result.stderr
    assert project.query("postgres", "SELECT count(*) FROM pg_database WHERE datname = %s", (f"db_{acme}",)) == [(0,)]
