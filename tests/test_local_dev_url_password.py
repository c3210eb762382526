"""``dev url --show-password`` when the URL holds no password.

The tool connects with PGPASSWORD then (libpq's fallback), so the URL it prints carries that
password and works on its own; with no password anywhere it says so in one line. Never a TypeError.
"""

from __future__ import annotations

from urllib.parse import quote

import psycopg2
import pytest


def _passwordless_url(server, db: str) -> str:
    return f"postgresql://{quote(server.superuser, safe='')}@{server.host}:{server.port}/{db}"


@pytest.mark.parametrize("tenant", [None, "acme"])
def test_show_password_prints_a_working_url_from_pgpassword(project, pg_server, tenant):
    if not pg_server.password:
        pytest.skip("the server has no password")
    project.migrate_control()
    project.add_tenant("acme")
    env = {"CONTROL_DATABASE_URL": _passwordless_url(pg_server, project.control_db), "PGPASSWORD": pg_server.password}
    args = ["dev", "url", "--show-password"] + (["--tenant", tenant] if tenant else [])
    result = project.cli(*args, env=env)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "TypeError" not in result.stderr
    url = result.stdout.strip()
    conn = psycopg2.connect(url, connect_timeout=10)  # on its own: this process has no PGPASSWORD
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT current_database()")
            assert cursor.fetchone()[0] == (f"db_{tenant}" if tenant else project.control_db)
    finally:
        conn.close()
    masked = project.cli("dev", "url", *args[3:], env=env)
    assert masked.returncode == 0 and pg_server.password not in masked.stdout + masked.stderr


def test_show_password_without_any_password_says_so(project, pg_server):
    env = {"CONTROL_DATABASE_URL": _passwordless_url(pg_server, project.control_db), "PGPASSWORD": None}
    result = project.cli("dev", "url", "--show-password", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == _passwordless_url(pg_server, project.control_db)
    assert result.stderr.strip().startswith("note: no password is configured"), result.stderr
