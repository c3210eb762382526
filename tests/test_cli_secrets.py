"""No password ever reaches stdout or stderr: every command, failing ones included."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from pg import url_for

TENANT_PASSWORD = "T3nant!Pa$$:w/rd@%#?&x"
TENANT_ROLE = "grapevine_tenant_admin"


@pytest.fixture
def secret_project(project, pg_server):
    """Control with the server's distinctive password; tenants through their own role and password."""
    try:
        project.query("postgres", f"DROP ROLE IF EXISTS {TENANT_ROLE}")
        project.query("postgres", f"CREATE ROLE {TENANT_ROLE} LOGIN SUPERUSER PASSWORD %s", (TENANT_PASSWORD,))
    except Exception as err:  # an external server may not let us create roles
        pytest.skip(f"cannot create a role on this server: {err}")
    project.env["PG_TENANT_DATABASE_ADMIN_USERNAME"] = TENANT_ROLE
    project.env["PG_TENANT_DATABASE_ADMIN_PASSWORD"] = TENANT_PASSWORD
    project.migrate_control()
    project.add_tenant("acme")
    project.add_tenant("ghost", create_db=False)
    yield project
    project.query("postgres", "DROP DATABASE IF EXISTS db_acme WITH (FORCE)")  # objects owned by the role
    project.query("postgres", f"DROP ROLE IF EXISTS {TENANT_ROLE}")


def test_no_command_prints_a_password(secret_project, pg_server, tally):
    project = secret_project
    control_url = url_for(pg_server, project.control_db)
    wrong_control = url_for(pg_server, project.control_db, password=pg_server.password + "-nope")
    unreachable = control_url.replace(f":{pg_server.port}/", ":1/")
    project.write("tenant", "20991231000000_broken.sql", "BEGIN;\nSELECT * FROM missing_table;\nCOMMIT;\n")
    runs = {
        "list": project.cli("list"),
        "status": project.cli("status", "--verbose"),
        "status json": project.cli("status", "--json"),
        "dry run": project.cli("migrate", "--all-tenants", "--dry-run"),
        "migrate with a SQL error": project.cli("migrate", "--all-tenants", "--json", "--debug"),
        "migrate human": project.cli("migrate", "--all-tenants", "--debug"),
        "mark dry run": project.cli("mark", "--apply", "20250101090000", "--tenant", "acme", "--dry-run", "--json"),
        "mark": project.cli("mark", "--unapply", "20250101090000", "--tenant", "acme", "--force"),
        "reset dry run": project.cli("reset", "--all-tenants", "--dry-run"),
        "create": project.cli("create", "tenant", "harmless"),
        "wrong control password": project.cli("migrate", "--all-tenants", "--debug",
                                              env={"CONTROL_DATABASE_URL": wrong_control}),
        "wrong control password json": project.cli("status", "--json", env={"CONTROL_DATABASE_URL": wrong_control}),
        "wrong tenant password": project.cli("migrate", "--all-tenants", "--json", "--debug",
                                             env={"PG_TENANT_DATABASE_ADMIN_PASSWORD": TENANT_PASSWORD + "-nope"}),
        "unreachable": project.cli("status", "--debug", "--max-parallel", "2",
                                   env={"CONTROL_DATABASE_URL": unreachable}),
        "alembic upgrade": project.alembic("-n", "tenant", "-x", "tenant=acme", "upgrade", "head"),
        "alembic wrong password": project.alembic("-n", "control", "upgrade", "head",
                                                  env={"CONTROL_DATABASE_URL": wrong_control}),
    }
    secrets = {pg_server.password, TENANT_PASSWORD}
    forms = {form for s in secrets for form in (s, quote(s, safe=""), quote(s))}
    for name, result in runs.items():
        tally("bad inputs tried")
        output = result.stdout + result.stderr
        for form in forms:
            assert form not in output, f"{name} printed a password"
    # the failures really happened, and were shown (masked)
    assert "password authentication failed" in runs["wrong tenant password"].stdout
    assert "***@" in runs["wrong control password"].stderr
    assert "Traceback" in runs["wrong control password"].stderr  # --debug shows it, still masked
    assert 'relation \\"missing_table\\" does not exist' in runs["migrate with a SQL error"].stdout
