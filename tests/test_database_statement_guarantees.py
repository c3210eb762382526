"""The tool's own guarantees hold whatever legal SQL a file runs.

Each case runs on both roads where both apply: ``grapevine-migrations migrate`` and plain
``alembic -c alembic.ini -n tenant -x tenant=ID upgrade head``, against the real test PostgreSQL,
and looks at the database afterwards.
"""

from __future__ import annotations

import json
import secrets
import subprocess

import psycopg2
import pytest
from pg import connect
from project import BIN

ROADS = ("migrate", "alembic")
FIRST, SECOND, THIRD = "20240101000000", "20240102000000", "20240103000000"


def _use_chain(project, chain: dict[str, str]) -> None:
    project.clear("tenant")
    for name, sql in chain.items():
        project.write("tenant", name, sql)


def _tenant(project, tenant_id: str = "t01") -> str:
    project.migrate_control()
    project.add_tenant(tenant_id)
    return tenant_id


def _upgrade(project, road: str, tenant: str, *, timeout: str | None = None, env: dict | None = None):
    """One run of the road: ``migrate --tenant`` or ``alembic ... upgrade head``."""
    if road == "migrate":
        extra = ("--timeout", timeout) if timeout is not None else ()
        return project.cli("migrate", "--tenant", tenant, *extra, env=env)
    extra = ("-x", f"timeout={timeout}") if timeout is not None else ()
    return project.alembic("-n", "tenant", "-x", f"tenant={tenant}", *extra, "upgrade", "head", env=env)


def _one_line_error(result) -> str:
    """The failure output of either road, checked to be free of tracebacks."""
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    return output


def _indexes(project, database: str, table: str) -> list[tuple[str, bool]]:
    return project.query(
        database,
        "SELECT indexrelid::regclass::text, indisvalid FROM pg_index WHERE indrelid = to_regclass(%s) ORDER BY 1",
        (table,),
    )


# ---- 3: an unnamed CREATE INDEX CONCURRENTLY that failed is dropped and rebuilt ------------------

UNNAMED_INDEXES = {
    "plain column": ("CREATE UNIQUE INDEX CONCURRENTLY ON t (x);\n", "t_x_idx"),
    "expression, partial with a literal": (
        "CREATE UNIQUE INDEX CONCURRENTLY ON t (lower(s)) WHERE s <> 'skip';\n", "t_lower_idx"),
}


@pytest.mark.parametrize("road", ROADS)
@pytest.mark.parametrize("case", UNNAMED_INDEXES, ids=list(UNNAMED_INDEXES))
def test_failed_unnamed_concurrent_index_is_dropped_and_rebuilt(project, road, case, tally):
    statement, name = UNNAMED_INDEXES[case]
    tenant = _tenant(project)
    database = f"db_{tenant}"
    _use_chain(project, {
        f"{FIRST}_t.sql": "CREATE TABLE t (x int, y int, s text);\n"
                          "INSERT INTO t VALUES (1, 1, 'a'), (1, 1, 'A');\n",
        f"{SECOND}_idx.sql": statement,
    })
    first = _upgrade(project, road, tenant)
    tally("faults injected")
    assert "could not create unique index" in _one_line_error(first)
    assert project.version(database) == FIRST
    assert _indexes(project, database, "t") == [(name, False)]
    # An INVALID index of another definition was not made by this file: it must survive.
    with pytest.raises(psycopg2.errors.UniqueViolation):
        project.query(database, "CREATE UNIQUE INDEX CONCURRENTLY other_invalid ON t (y)")

    project.query(database, "UPDATE t SET x = 2, s = 'b' WHERE s = 'A'")
    second = _upgrade(project, road, tenant)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"dropping INVALID index {name}" in second.stderr
    tally("databases checked")
    assert _indexes(project, database, "t") == [("other_invalid", False), (name, True)]
    assert project.version(database) == SECOND


# ---- 4: the INVALID-index lookup searches the table's schema, not current_schema() -----------


@pytest.mark.parametrize("road", ROADS)
def test_invalid_index_is_found_in_its_tables_schema(project, road, tally):
    tenant = _tenant(project)
    database = f"db_{tenant}"
    role_schema = project.server.superuser  # "$user" comes first in search_path once it exists
    _use_chain(project, {
        f"{FIRST}_t.sql": "CREATE TABLE t (x int);\nINSERT INTO t VALUES (1), (1);\n"
                          f'CREATE SCHEMA "{role_schema}";\n',
        f"{SECOND}_idx.sql": "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS t_x_uq ON t (x);\n",
    })
    first = _upgrade(project, road, tenant)
    tally("faults injected")
    assert "could not create unique index" in _one_line_error(first)
    assert project.query(database, "SELECT current_schema()") == [(role_schema,)]
    assert _indexes(project, database, "public.t") == [("t_x_uq", False)]

    project.query(database, "DELETE FROM public.t WHERE ctid <> (SELECT min(ctid) FROM public.t)")
    second = _upgrade(project, road, tenant)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "dropping INVALID index t_x_uq" in second.stderr
    tally("databases checked")
    assert _indexes(project, database, "public.t") == [("t_x_uq", True)]
    assert project.version(database) == SECOND


# ---- 5: --timeout 0 / -x timeout=0 wait for another run's lock without limit -----------------


def _lock_key(project) -> int:
    from grapevine_alembic.settings import load_project

    return load_project(project.root / "alembic.ini").lock_key


def _spawn(project, road: str, tenant: str, timeout: str) -> subprocess.Popen:
    if road == "migrate":
        args = [str(BIN / "grapevine-migrations"), "migrate", "--tenant", tenant, "--timeout", timeout]
    else:
        args = [str(BIN / "alembic"), "-c", "alembic.ini", "-n", "tenant", "-x", f"tenant={tenant}",
                "-x", f"timeout={timeout}", "upgrade", "head"]
    return subprocess.Popen(args, cwd=project.root, env=project.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("road", ROADS)
def test_timeout_zero_waits_for_the_lock_without_limit(project, road, tally):
    tenant = _tenant(project)
    holder = connect(project.server, f"db_{tenant}")
    try:
        holder.cursor().execute("SELECT pg_advisory_lock(%s)", (_lock_key(project),))
        proc = _spawn(project, road, tenant, "0")
        tally("faults injected")
        seen = []
        for line in proc.stderr:  # blocks until the run says it waits (or ends)
            seen.append(line)
            if "waiting for another migration run" in line:
                break
        assert seen and "waiting for another migration run" in seen[-1], seen
        # The run has found the lock taken; with a limit of 0 it must still be waiting for it.
        holder.cursor().execute("SELECT pg_advisory_unlock(%s)", (_lock_key(project),))
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        holder.close()
    assert proc.returncode == 0, "".join(seen) + stdout + stderr
    tally("databases checked")
    assert project.version(f"db_{tenant}") == "20250201080000"


# ---- 6: a failed alembic command on a fresh database leaves nothing behind ---------------------

BROKEN_FIRST = "CREATE TABLE a (x int);\nSELECT 1/0;\n"
FAILING_COMMANDS = {
    "migrate, failing first file": ("cli", "migrate", "--tenant", "{tenant}"),
    "alembic upgrade, failing first file": ("alembic", "upgrade", "head"),
    "alembic stamp of an unknown version": ("alembic", "stamp", "29990101000000"),
    "alembic downgrade -1": ("alembic", "downgrade", "-1"),
}


@pytest.mark.parametrize("case", FAILING_COMMANDS, ids=list(FAILING_COMMANDS))
def test_failed_command_on_a_fresh_database_leaves_nothing(project, case, tally):
    tenant = _tenant(project)
    database = f"db_{tenant}"
    _use_chain(project, {f"{FIRST}_a.sql": BROKEN_FIRST, f"{SECOND}_b.sql": "CREATE TABLE b (x int);\n"})
    how, *args = FAILING_COMMANDS[case]
    if how == "cli":
        failed = project.cli(*(a.format(tenant=tenant) for a in args))
    else:
        failed = project.alembic("-n", "tenant", "-x", f"tenant={tenant}", *args)
    _one_line_error(failed)
    tally("faults injected")
    tally("databases checked")
    assert project.tables(database) == set()

    project.write("tenant", f"{FIRST}_a.sql", "CREATE TABLE a (x int);\n")
    for road in ROADS:  # both roads now see a fresh database (the second has nothing left to do)
        again = _upgrade(project, road, tenant)
        assert again.returncode == 0, again.stdout + again.stderr
    assert project.version(database) == SECOND
    assert [v for v, _ in project.ledger(database)] == [FIRST, SECOND]


@pytest.mark.parametrize("road", ROADS)
def test_empty_previous_ledger_is_not_legacy(project, road):
    tenant = _tenant(project)
    database = f"db_{tenant}"
    _use_chain(project, {f"{FIRST}_a.sql": "CREATE TABLE a (x int);\n"})
    project.query(database, "CREATE TABLE schema_migrations (version varchar(255) PRIMARY KEY,"
                            " applied_at timestamptz NOT NULL DEFAULT now())")
    result = _upgrade(project, road, tenant)
    assert result.returncode == 0, result.stdout + result.stderr
    assert project.version(database) == FIRST
    assert project.ledger(database) == [(FIRST, "migrate")]


# ---- 7: the table set-up of the first batch reports its own error ------------------------------


@pytest.fixture
def restricted_role(project):
    """A login role that may connect to tenant databases but not create anything in public."""
    name, password = f"r_{secrets.token_hex(4)}", secrets.token_hex(12)
    project.query(None, f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
    databases = []

    def allow(database: str) -> dict:
        project.query(None, f'GRANT CONNECT ON DATABASE "{database}" TO {name}')
        project.query(database, "REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        databases.append(database)
        return {"PG_TENANT_DATABASE_ADMIN_USERNAME": name, "PG_TENANT_DATABASE_ADMIN_PASSWORD": password}

    yield allow
    for database in databases:
        project.query(None, f'REVOKE CONNECT ON DATABASE "{database}" FROM {name}')
    project.query(None, f"DROP ROLE {name}")


@pytest.mark.parametrize("road", ROADS)
def test_setup_without_create_privilege_names_the_real_cause(project, road, restricted_role, tally):
    tenant = _tenant(project)
    env = restricted_role(f"db_{tenant}")
    result = _upgrade(project, road, tenant, env=env)
    tally("faults injected")
    output = _one_line_error(result)
    assert "permission denied for schema public" in output
    assert "savepoint" not in output
    tally("databases checked")
    assert project.tables(f"db_{tenant}") == set()


def test_lock_timeout_in_setup_is_retried(project, tally):
    """Adding the ledger's new columns waits behind a reader's lock: 55P03, retried like any lock timeout."""
    tenant = _tenant(project)
    database = f"db_{tenant}"
    _use_chain(project, {f"{FIRST}_a.sql": "CREATE TABLE a (x int);\n", f"{SECOND}_b.sql": "CREATE TABLE b (x int);\n"})
    project.query(database, "CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);"
                            f" INSERT INTO alembic_version VALUES ('{FIRST}');"
                            " CREATE TABLE schema_migrations (version varchar(255) PRIMARY KEY, applied_at timestamptz);"
                            f" INSERT INTO schema_migrations VALUES ('{FIRST}', now()); CREATE TABLE a (x int)")
    reader = connect(project.server, database)
    try:
        reader.autocommit = False
        reader.cursor().execute("SELECT * FROM schema_migrations")  # holds ACCESS SHARE until rollback
        result = project.cli("migrate", "--tenant", tenant, "--lock-timeout", "0.2", "--retries", "1", "--json")
        tally("faults injected")
    finally:
        reader.rollback()
        reader.close()
    [db] = json.loads(result.stdout)["databases"]
    assert result.returncode == 1
    assert "lock timeout" in db["error"] and "savepoint" not in db["error"], db["error"]
    assert db["attempts"] == 2
    tally("databases checked")
    assert project.version(database) == FIRST
    again = project.cli("migrate", "--tenant", tenant)
    assert again.returncode == 0, again.stdout + again.stderr
    assert project.version(database) == SECOND


# ---- 13: migrate --json lists under pending only what is still pending -------------------------


def test_migrate_json_pending_is_what_remains(project):
    tenant = _tenant(project)
    _use_chain(project, {
        f"{FIRST}_a.sql": "CREATE TABLE a (x int);\n",
        f"{SECOND}_b.sql": "SELECT 1/0;\n",
        f"{THIRD}_c.sql": "CREATE TABLE c (x int);\n",
    })
    failed = json.loads(project.cli("migrate", "--tenant", tenant, "--json").stdout)["databases"][0]
    assert (failed["applied"], failed["pending"]) == ([FIRST], [SECOND, THIRD])
    project.write("tenant", f"{SECOND}_b.sql", "CREATE TABLE b (x int);\n")
    done = json.loads(project.cli("migrate", "--tenant", tenant, "--json").stdout)["databases"][0]
    assert (done["applied"], done["pending"]) == ([SECOND, THIRD], [])


# ---- 14: -x values get one clear line naming the key ------------------------------------------

BAD_X = {
    "timeout=5s": "timeout",
    "lock_timeout=abc": "lock_timeout",
    "timeout=-1": "timeout",
    "timeout=nan": "timeout",
    "tenant_id=acme": "tenant_id",
}


@pytest.mark.parametrize("argument", BAD_X, ids=list(BAD_X))
def test_bad_x_argument_is_one_clear_line(project, argument, tally):
    tenant = _tenant(project)
    result = project.alembic("-n", "tenant", "-x", f"tenant={tenant}", "-x", argument, "upgrade", "head")
    tally("bad inputs tried")
    output = _one_line_error(result)
    assert f"-x {BAD_X[argument]}" in output, output
    assert project.tables(f"db_{tenant}") == set()


def test_good_x_arguments_are_accepted(project):
    tenant = _tenant(project)
    result = project.alembic("-n", "tenant", "-x", f"tenant={tenant}", "-x", "timeout=60", "-x", "lock_timeout=2.5",
                             "upgrade", "head")
    assert result.returncode == 0, result.stdout + result.stderr
    assert project.version(f"db_{tenant}") == "20250201080000"
