"""A configuration mistake is an error naming the variable, never a silent switch to the embedded
server; `alembic -c` picks the embedded server exactly when the CLI does; `dev url`, `dev psql`."""

from __future__ import annotations

import psycopg2
import pytest
from pg import TEST_PASSWORD, url_for

MISTAKES = {
    "misspelled control URL": ({"CONTROL_DATABSE_URL": "postgresql://u:p@prod.example.com/control"},
                               "CONTROL_DATABSE_URL is set but is not a variable this tool reads:"
                               " did you mean CONTROL_DATABASE_URL?"),
    "empty control URL": ({"CONTROL_DATABASE_URL": ""}, "CONTROL_DATABASE_URL is set but empty"),
    "blank control URL": ({"CONTROL_DATABASE_URL": "  "}, "CONTROL_DATABASE_URL is set but empty"),
    "tenant host without control URL": ({"PG_TENANT_DATABASE_HOST": "tenants.example.com"},
                                        "PG_TENANT_DATABASE_HOST is set but CONTROL_DATABASE_URL is not"),
    "misspelled tenant variable": ({"PG_TENANT_DATABASE_HOTS": "x"}, "did you mean PG_TENANT_DATABASE_HOST?"),
    "unknown tenant variable": ({"PG_TENANT_DATABASE_NAME": "x"}, "PG_TENANT_DATABASE_NAME is set but"),
}


@pytest.mark.parametrize("case", list(MISTAKES), ids=list(MISTAKES))
def test_a_configuration_mistake_is_an_error_not_the_embedded_server(bare, case):
    project, env = bare
    extra, message = MISTAKES[case]
    for args in (["migrate", "--control"], ["status"]):
        result = project.cli(*args, env={**env, **extra, "GRAPEVINE_EMBEDDED": "1"})  # even when asked for
        assert result.returncode == 2, result.stderr
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "embedded" not in result.stderr.split("error:")[0]
    assert not (project.root / ".grapevine").exists()  # the local server was never started
    via_alembic = project.alembic("-n", "control", "current", env={**env, **extra})
    assert via_alembic.returncode != 0 and message in via_alembic.stderr and "Traceback" not in via_alembic.stderr


def test_a_misspelled_variable_is_an_error_beside_a_real_url_too(project):
    result = project.cli("status", env={"PG_TENANT_DATABASE_PORTT": "5433"})
    assert result.returncode == 2 and "PG_TENANT_DATABASE_PORTT" in result.stderr


def test_alembic_uses_the_embedded_server_when_the_cli_does_and_dev_url_psql(bare):
    project, env = bare
    assert project.cli("dev", "up", env=env, timeout=180).returncode == 0
    assert project.cli("migrate", "--control", env=env).returncode == 0
    current = project.alembic("-n", "control", "current", env=env)
    assert current.returncode == 0, current.stderr
    assert "using the embedded PostgreSQL" in current.stderr and "20250115120000 (head)" in current.stdout

    masked = project.cli("dev", "url", env=env)
    assert masked.returncode == 0 and masked.stdout.strip().endswith("/grapevine_control")
    assert ":***@127.0.0.1:" in masked.stdout
    shown = project.cli("dev", "url", "--show-password", env=env)
    assert "***" not in shown.stdout
    with psycopg2.connect(shown.stdout.strip()) as conn, conn.cursor() as cursor:  # the URL works as printed
        cursor.execute("SELECT version_num FROM alembic_version")
        assert cursor.fetchone() == ("20250115120000",)

    assert project.cli("dev", "tenant", "add", "acme", env=env).stdout.strip() == "created db_acme"
    at_head = project.cli("status", "--tenant", "acme", env=env)  # provisioned at head: nothing pending
    assert at_head.returncode == 0, at_head.stdout + at_head.stderr
    again = project.cli("dev", "tenant", "add", "acme", env=env)
    assert again.returncode == 0 and again.stdout.strip() == "db_acme exists (tenant marked provisioned)"
    tenant_url = project.cli("dev", "url", "--tenant", "acme", env=env)
    assert tenant_url.stdout.strip().endswith("/db_acme")

    # psql inherits the process's own stdout and stderr: a real process to capture them
    psql = project.cli("dev", "psql", "--tenant", "acme", "-At", "-c", "select current_database()", env=env,
                       subprocess=True)
    assert psql.returncode == 0, psql.stderr
    assert psql.stdout.strip() == "db_acme"
    failing = project.cli("dev", "psql", "-c", "select nope", env=env, subprocess=True)
    assert failing.returncode != 0 and "nope" in failing.stderr


def test_dev_url_masks_a_configured_password(project):
    result = project.cli("dev", "url")
    assert result.returncode == 0 and TEST_PASSWORD not in result.stdout and ":***@" in result.stdout
    assert project.cli("dev", "url", "--show-password").stdout.strip() == url_for(project.server, project.control_db)
