"""The builds behind `schema dump`, `schema check`, `drift` and `provision`'s template change nothing outside their database."""

from __future__ import annotations

import secrets
import signal
import time

import pytest

HEAD = "20250301000000"


def _role_settings(project, role: str) -> list:
    return project.query("postgres", "SELECT s.setdatabase, s.setconfig FROM pg_db_role_setting s"
                         " JOIN pg_roles r ON r.oid = s.setrole WHERE r.rolname = %s ORDER BY 1", (role,))


def test_scratch_and_template_builds_leave_cluster_wide_settings_alone(project):
    role = "app_user_" + secrets.token_hex(4)
    project.query("postgres", f"CREATE ROLE {role} NOLOGIN")
    try:
        project.write("control", f"{HEAD}_app_user.sql",
                      f"ALTER ROLE {role} SET statement_timeout = '30s';\nCREATE TABLE audit (id bigint PRIMARY KEY);\n")
        project.write("tenant", f"{HEAD}_app_user.sql",
                      f"ALTER ROLE {role} SET lock_timeout = '3s';\nCREATE TABLE notes (id bigint PRIMARY KEY);\n")
        project.migrate_control()
        project.add_tenant("old")
        assert project.cli("migrate", "--tenant", "old").returncode == 0
        assert _role_settings(project, role) == [(0, ["statement_timeout=30s", "lock_timeout=3s"])]
        # a DBA's later change, which no build may undo
        project.query("postgres", f"ALTER ROLE {role} SET statement_timeout = '45s'; ALTER ROLE {role} SET lock_timeout = '9s'")
        changed = _role_settings(project, role)

        drift = project.cli("drift")
        assert drift.returncode == 0, drift.stdout + drift.stderr
        assert drift.stdout.splitlines() == ["2 match"], drift.stdout  # the references are still right
        assert _role_settings(project, role) == changed
        assert f"{HEAD}_app_user.sql line 1: ALTER ROLE ... SET left out of the scratch build" in drift.stderr

        dump = project.cli("schema", "dump")
        assert dump.returncode == 0, dump.stderr
        assert "CREATE TABLE public.audit" in (project.migrations("control") / "schema.sql").read_text()
        assert "CREATE TABLE public.notes" in (project.migrations("tenant") / "schema.sql").read_text()
        check = project.cli("schema", "check")
        assert check.returncode == 0, check.stdout + check.stderr
        assert _role_settings(project, role) == changed

        project.add_tenant("new", state="pending", create_db=False)
        project.make_db.created.append("db_new")
        provisioned = project.cli("provision", "--tenant", "new")
        assert provisioned.returncode == 0, provisioned.stdout + provisioned.stderr
        assert "from the template" in provisioned.stdout
        assert "left out of the template grapevine_template_tenant" in provisioned.stdout + provisioned.stderr
        assert _role_settings(project, role) == changed
        assert project.tables("db_new") >= {"notes"}
        # a real migrate still runs the statement: the files mean what they say
        project.add_tenant("later")
        assert project.cli("migrate", "--tenant", "later").returncode == 0
        assert _role_settings(project, role) == [(0, ["statement_timeout=45s", "lock_timeout=3s"])]
    finally:
        project.query("postgres", f"DROP ROLE {role}")


def test_cluster_wide_statements_are_told_from_database_ones():
    from grapevine_alembic.files.cluster_wide import without_cluster_wide
    from grapevine_alembic.files.parsing import parse_sql

    server_wide = ["CREATE ROLE r", "ALTER ROLE r SET work_mem = '1MB'", "ALTER USER r WITH PASSWORD 'x'", "DROP ROLE r",
                   "GRANT r TO s", "ALTER ROLE r RENAME TO s", "COMMENT ON ROLE r IS 'x'", "REASSIGN OWNED BY r TO s",
                   "ALTER DATABASE d SET work_mem = '1MB'", "ALTER DATABASE d OWNER TO r", "GRANT CONNECT ON DATABASE d TO r",
                   "ALTER TABLESPACE t OWNER TO r", "GRANT SET ON PARAMETER work_mem TO r", "ALTER SYSTEM SET work_mem = '1MB'"]
    local = ["CREATE TABLE t (id int)", "GRANT SELECT ON t TO r", "ALTER TABLE t OWNER TO r", "COMMENT ON TABLE t IS 'x'",
             "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO r", "ALTER TABLE t RENAME TO u", "SET ROLE r"]
    parsed, left_out = without_cluster_wide(parse_sql(";\n".join(local + server_wide) + ";\n"))
    assert [s.sql.strip().rstrip(";") for s, _ in left_out] == server_wide
    assert [s.sql.strip().rstrip(";") for s in parsed.statements] == local
    assert [s.sql.strip().rstrip(";") for u in parsed.units for s in u.statements] == local


def _scratch_databases(project) -> list[str]:
    return [name for (name,) in project.query("postgres", "SELECT datname FROM pg_database ORDER BY 1")
            if name.startswith("grapevine_scratch_")]


def _spawn_slow_build(project, *args):
    """A build stopped in the middle of its slow file, and the scratch database it created."""
    project.write("tenant", f"{HEAD}_slow.sql", "SELECT pg_sleep(120);\n")  # far longer than any bound below
    before = set(_scratch_databases(project))
    process = project.spawn(*args)
    deadline = time.monotonic() + 60
    while not set(_scratch_databases(project)) - before and time.monotonic() < deadline:
        time.sleep(0.1)
    created = sorted(set(_scratch_databases(project)) - before)
    assert created, "the build never created its scratch database"
    time.sleep(1.0)  # inside pg_sleep
    return process, created[0]


@pytest.mark.parametrize("command", ["dump", "check"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_schema_build_exits_130_with_its_summary_line(project, command, signum):
    assert project.cli("schema", "dump", "--tenant").returncode == 0
    process, _ = _spawn_slow_build(project, "schema", command, "--tenant")
    started = time.monotonic()
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=60)
    unfinished = "not written" if command == "dump" else "not checked"
    assert process.returncode == 130, stdout + stderr
    assert stdout.splitlines()[-1] == f"migrations/tenant/schema.sql: {unfinished} (interrupted)", stdout + stderr
    assert "Traceback" not in stderr and "not confirmed" not in stderr, stderr
    # Well under the file's 120 s: the signal ended the build, not the file; loose enough for a loaded machine.
    assert time.monotonic() - started < 45
    assert _scratch_databases(project) == []


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGHUP])
def test_scratch_database_of_a_killed_run_is_dropped_by_the_next_one(project, signum):
    running, mine = _spawn_slow_build(project, "schema", "dump", "--tenant")  # a build under way keeps its own
    try:
        killed, left = _spawn_slow_build(project, "schema", "dump", "--tenant")
        killed.send_signal(signum)
        killed.communicate(timeout=60)
        assert sorted(_scratch_databases(project)) == sorted([mine, left])  # the killed run could not drop it
        project.write("tenant", f"{HEAD}_slow.sql", "SELECT 1;\n")
        again = project.cli("schema", "dump", "--tenant")
        assert again.returncode == 0, again.stdout + again.stderr
        assert f"notice: dropped the scratch database {left}, left by a run that was killed" in again.stderr
        assert _scratch_databases(project) == [mine]
    finally:
        running.send_signal(signal.SIGTERM)
        output = running.communicate(timeout=60)
    assert running.returncode == 130, output
    assert _scratch_databases(project) == []


def _role(project, role: str) -> list:
    return project.query("postgres", "SELECT rolcanlogin, rolconnlimit FROM pg_roles WHERE rolname = %s", (role,))


def test_builds_create_a_role_the_server_lacks_and_leave_an_existing_one_alone(project):
    role = "app_user_" + secrets.token_hex(4)
    project.clear("tenant")
    project.write("tenant", f"{HEAD}_app_user.sql", f"CREATE ROLE {role} NOLOGIN;\nCREATE TABLE t (a int);\n"
                                                    f"GRANT SELECT ON t TO {role};\n")
    try:
        # a fresh CI server: the role is not there; each scratch build creates it and drops it when it ends
        dump = project.cli("schema", "dump")
        assert dump.returncode == 0, dump.stdout + dump.stderr
        assert f"the server has no role {role}: the scratch build creates it" in dump.stderr
        assert "CREATE TABLE public.t" in (project.migrations("tenant") / "schema.sql").read_text()
        assert _role(project, role) == []
        check = project.cli("schema", "check")
        assert check.returncode == 0, check.stdout + check.stderr
        assert _role(project, role) == []

        # the template keeps the role it created: its copies need it
        project.migrate_control()
        project.add_tenant("new", state="pending", create_db=False)
        project.make_db.created.append("db_new")
        provisioned = project.cli("provision", "--tenant", "new")
        assert provisioned.returncode == 0, provisioned.stdout + provisioned.stderr
        assert "from the template" in provisioned.stdout
        assert _role(project, role) == [(False, -1)]
        assert project.query("db_new", "SELECT has_table_privilege(%s, 'public.t', 'SELECT')", (role,)) == [(True,)]

        # a DBA's change to the role that now exists: no build undoes it, none drops the role
        project.query("postgres", f"ALTER ROLE {role} LOGIN CONNECTION LIMIT 7; ALTER ROLE {role} SET work_mem = '2MB'")
        settings = _role_settings(project, role)
        project.control("UPDATE tenants SET state = 'provisioned' WHERE id = 'new'")
        drift = project.cli("drift")
        assert drift.returncode == 0, drift.stdout + drift.stderr
        assert drift.stdout.splitlines() == ["2 match"], drift.stdout
        assert f"{HEAD}_app_user.sql line 1: CREATE ROLE left out of the scratch build" in drift.stderr
        assert project.cli("schema", "check").returncode == 0
        assert _role(project, role) == [(True, 7)]
        assert _role_settings(project, role) == settings == [(0, ["work_mem=2MB"])]
    finally:
        _drop_role_everywhere(project, role, ("db_new", "grapevine_template_tenant"))


def _drop_role_everywhere(project, role: str, databases) -> None:
    """The role's rights in ``databases`` (the template unsealed for it), then the role."""
    for name in databases:
        if project.query("postgres", "SELECT 1 FROM pg_database WHERE datname = %s", (name,)):
            project.query("postgres", f"ALTER DATABASE {name} IS_TEMPLATE false ALLOW_CONNECTIONS true")
            if _role(project, role):
                project.query(name, f"DROP OWNED BY {role}")
    project.query("postgres", f"DROP ROLE IF EXISTS {role}")
