"""Bad input, table-driven: one clear line, the right exit code, no traceback, nothing written."""

from __future__ import annotations

import pytest

from pg import url_for

CONTROL_HEAD = "20250115120000"

# (id, command args, setup, expected exit code, text the error must contain)
CASES = [
    ("quote in tenant id", ["migrate", "--tenant", "a'b"], {}, 2, "invalid tenant id"),
    ("space in tenant id", ["migrate", "--tenant", "a b"], {}, 2, "invalid tenant id"),
    ("semicolon in tenant id", ["migrate", "--tenant", "a;DROP DATABASE x"], {}, 2, "invalid tenant id"),
    ("dot-dot tenant id", ["status", "--tenant", ".."], {}, 2, "invalid tenant id"),
    ("unicode tenant id", ["migrate", "--tenant", "tenänt"], {}, 2, "invalid tenant id"),
    ("empty tenant id", ["migrate", "--tenant", ""], {}, 2, "tenant id is empty"),
    ("unknown tenant", ["migrate", "--tenant", "nobody"], {}, 2, "unknown tenant nobody"),
    ("malformed file name", ["migrate", "--all-tenants"], {"file": ("2025010109_short.sql", "SELECT 1;")}, 1,
     "needs a 14-digit timestamp"),
    ("upper-case extension", ["migrate", "--all-tenants"], {"file": ("20991231000000_x.SQL", "SELECT 1;")}, 1,
     "20991231000000_x.SQL"),
    ("duplicate version", ["migrate", "--all-tenants"], {"file": ("20250101090000_dupe.sql", "SELECT 1;")}, 2,
     "duplicate version 20250101090000"),
    ("syntax error", ["migrate", "--all-tenants"], {"file": ("20991231000000_typo.sql", "CREATE TABEL x (a int);")},
     1, "syntax error"),
    ("unknown version in mark", ["mark", "--apply", "20250101090001", "--tenant", "acme"], {}, 2,
     "unknown version 20250101090001"),
    ("two mark modes", ["mark", "--apply", "20250101090000", "--unapply", "20250101090000", "--tenant", "acme"], {},
     2, "exactly one of"),
    ("all tenants and a tenant", ["migrate", "--all-tenants", "--tenant", "acme"], {}, 2, "exclude each other"),
    ("no target", ["migrate"], {}, 1, "needs a target"),  # 1, as the previous tool
    ("bad shard", ["migrate", "--all-tenants", "--shard", "3/2"], {}, 2, "--shard 3/2"),
    ("shard without tenants", ["migrate", "--control", "--shard", "1/2"], {}, 2, "--shard splits tenants"),
    ("empty tenants file", ["migrate", "--tenants-file", "ids.txt"], {"tenants_file": "# none\n"}, 2,
     "lists no tenant ids"),
    ("max-parallel zero", ["migrate", "--all-tenants", "--max-parallel", "0"], {}, 2, "Invalid value"),
    ("unknown command", ["migrat"], {}, 2, "No such command"),
    ("missing control URL", ["migrate", "--all-tenants"], {"env": {"CONTROL_DATABASE_URL": None}}, 2,
     "CONTROL_DATABASE_URL is not set"),
    ("malformed control URL", ["migrate", "--all-tenants"], {"env": {"CONTROL_DATABASE_URL": "mysql://u:p@h/db"}}, 2,
     "CONTROL_DATABASE_URL is not a PostgreSQL URL"),
    ("control URL with a bad port", ["status"],
     {"env": {"CONTROL_DATABASE_URL": "postgresql://u:sekret@localhost:port/db"}}, 2, "is not a PostgreSQL URL"),
    ("bad tenant port", ["migrate", "--all-tenants"], {"env": {"PG_TENANT_DATABASE_PORT": "54x"}}, 2,
     "PG_TENANT_DATABASE_PORT must be a port number"),
    ("wrong password", ["migrate", "--all-tenants"], {"password": "not-the-password"}, 1,
     "password authentication failed"),
    ("unreachable host", ["migrate", "--all-tenants"], {"port": 1}, 1, "Connection refused"),
    ("missing tenants table", ["migrate", "--all-tenants"], {"bare_control": True}, 1, "has no tenants table"),
]


@pytest.fixture
def setup(project):
    project.migrate_control()
    project.add_tenant("acme")
    project.add_tenant("sleepy", state="suspended")
    return project


def _nothing_written(project) -> None:
    assert project.tables("db_acme") == set()
    assert project.version(project.control_db) == CONTROL_HEAD


@pytest.mark.parametrize("case, args, prep, code, message", CASES, ids=[c[0] for c in CASES])
def test_bad_input(setup, pg_server, make_db, tally, case, args, prep, code, message):
    project = setup
    env = dict(prep.get("env", {}))
    if "file" in prep:
        project.write("tenant", *prep["file"])
    if "tenants_file" in prep:
        (project.root / "ids.txt").write_text(prep["tenants_file"])
    if "password" in prep:
        env["CONTROL_DATABASE_URL"] = url_for(pg_server, project.control_db, password=prep["password"])
    if "port" in prep:
        env["CONTROL_DATABASE_URL"] = url_for(pg_server, project.control_db).replace(
            f":{pg_server.port}/", f":{prep['port']}/")
    if prep.get("bare_control"):
        env["CONTROL_DATABASE_URL"] = url_for(pg_server, make_db())
    result = project.cli(*args, env=env)
    tally("bad inputs tried")
    output = result.stdout + result.stderr
    assert result.returncode == code, output
    assert message in output, output
    assert "Traceback" not in output
    assert pg_server.password not in output
    if code == 2 or not result.stdout.strip():
        error_lines = [line for line in result.stderr.splitlines() if line.startswith(("error:", "Error:"))]
        assert len(error_lines) == 1, result.stderr
    tally("databases checked")
    _nothing_written(project)


def test_env_file_with_garbage_lines_warns_and_still_works(setup, tally):
    project = setup
    (project.root / ".env").write_text("this line is garbage\nPG_TENANT_DATABASE_SSLMODE=disable\n'unterminated\n")
    result = project.cli("status", "--tenant", "acme", "--exit-code")
    tally("bad inputs tried")
    assert result.returncode == 3, result.stdout + result.stderr  # pending, as expected
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: .env")]
    assert len(warnings) == 2, result.stderr
    assert "Traceback" not in result.stderr
