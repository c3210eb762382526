"""`provision --tenant ID`: a new tenant database at head, copied from the template, equal to one migrated file by file."""

from __future__ import annotations

import re

import pg
from reference_applier import dump

# now() defaults differ between any two runs; everything else in the data must match
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?\+\d\d")

TEMPLATE = "grapevine_template_tenant"
HEAD = "20250301000000"
# Data the files insert, so "same data" means something (identity values and sequences included).
SEED = (
    "BEGIN;\nINSERT INTO users (email, full_name) VALUES ('a@example.com', 'A'), ('b@example.com', 'B');\n"
    "INSERT INTO projects (owner_id, name) SELECT id, 'first' FROM users WHERE email = 'a@example.com';\nCOMMIT;\n"
)


def _seeded(project) -> None:
    project.write("tenant", f"{HEAD}_seed.sql", SEED)
    project.migrate_control()


def _reference(project, tenant_id: str = "ref") -> str:
    """A tenant migrated file by file, from an empty database."""
    database = project.add_tenant(tenant_id)
    result = project.cli("migrate", "--tenant", tenant_id)
    assert result.returncode == 0, result.stderr
    return database


def _new_tenant(project, tenant_id: str, state: str = "pending") -> str:
    """A row written by the provisioning service before it asks for the database."""
    database = project.add_tenant(tenant_id, state=state, create_db=False)
    project.make_db.created.append(database)  # dropped after the test
    return database


def _data(server, database: str) -> str:
    return _TIMESTAMP.sub("<now>", dump(server, database, data=True))


def _ledger(project, database: str) -> list[tuple]:
    return project.query(database, "SELECT version, checksum, description FROM schema_migrations ORDER BY version")


def assert_same_as_file_by_file(project, database: str, reference: str, *, applied_by: str) -> None:
    server = project.server
    assert dump(server, database, data=False) == dump(server, reference, data=False)
    assert _data(server, database) == _data(server, reference)
    assert _ledger(project, database) == _ledger(project, reference)
    rows = project.ledger(database)
    assert len(rows) == len(list(project.migrations("tenant").glob("2*.sql")))
    assert {by for _, by in rows} == {applied_by}
    assert project.query(database, "SELECT version_num FROM alembic_version") == \
        project.query(reference, "SELECT version_num FROM alembic_version")


def test_provision_equals_file_by_file_and_follows_new_files(project):
    _seeded(project)
    reference = _reference(project)
    database = _new_tenant(project, "acme")
    result = project.cli("provision", "--tenant", "acme")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"db_acme: created at {HEAD} from the template" in result.stdout
    assert_same_as_file_by_file(project, database, reference, applied_by="provision (template)")
    # the template is the tool's: sealed (nobody can connect), never a tenant
    assert project.query("postgres", "SELECT datallowconn, datistemplate FROM pg_database WHERE datname = %s",
                         (TEMPLATE,)) == [(False, True)]
    assert project.cli("status", "--tenant", "ref").returncode == 0

    # a file merged later: the template is migrated forward, the next tenant has it too
    project.write("tenant", "20250401000000_labels.sql",
                  "CREATE TABLE labels (id int PRIMARY KEY, name text NOT NULL);\n"
                  "INSERT INTO labels VALUES (1, 'urgent');\n")
    assert project.cli("migrate", "--tenant", "ref").returncode == 0
    later = _new_tenant(project, "globex", state="provisioned")
    again = project.cli("provision", "--tenant", "globex")
    assert again.returncode == 0, again.stdout + again.stderr
    assert_same_as_file_by_file(project, later, reference, applied_by="provision (template)")
    drift = project.cli("drift", "--tenant", "globex")  # compared with its version's schema: nothing differs
    assert drift.returncode == 0, drift.stdout + drift.stderr
    assert project.query("postgres", "SELECT count(*) FROM pg_stat_activity"
                         " WHERE datname = %s", (TEMPLATE,)) == [(0,)]
    # an edited file: the template is rebuilt from empty, not migrated over the old text
    project.write("tenant", "20250401000000_labels.sql",
                  "CREATE TABLE labels (id int PRIMARY KEY, name text NOT NULL, colour text);\n")
    edited = _new_tenant(project, "initech")
    assert project.cli("provision", "--tenant", "initech").returncode == 0
    assert "colour" in dump(project.server, edited, data=False)


def test_provision_refuses_an_existing_database_and_unknown_tenants(project):
    project.migrate_control()
    project.add_tenant("taken")  # its database exists, empty
    result = project.cli("provision", "--tenant", "taken")
    assert result.returncode == 1
    assert result.stderr.strip() == "error: tenant taken: database db_taken already exists; nothing was changed"
    assert project.query("db_taken", "SELECT count(*) FROM pg_class WHERE relname IN"
                                     " ('alembic_version', 'schema_migrations')") == [(0,)]
    unknown = project.cli("provision", "--tenant", "nobody")
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == "error: unknown tenant nobody: no such id in the tenants table"
    assert not pg.database_exists(project.server, "db_nobody")


def test_two_provisions_at_once_and_a_migrate_beside_them_end_correct(project, tally):
    _seeded(project)
    reference = _reference(project)
    for tenant_id in ("old1", "old2", "old3"):
        project.add_tenant(tenant_id)  # empty: the migrate beside the provisions applies the chain
    new = [_new_tenant(project, t) for t in ("n1", "n2")]
    runs = [project.spawn("provision", "--tenant", "n1"), project.spawn("provision", "--tenant", "n2"),
            project.spawn("provision", "--tenant", "n1"), project.spawn("migrate", "--all-tenants")]
    outcomes = [(proc.wait(timeout=180), *proc.communicate()) for proc in runs]
    tally("concurrent runs", len(runs))
    (n1a, out1a, err1a), (n2, out2, err2), (n1b, out1b, err1b), (migrated, out_m, err_m) = outcomes
    assert n2 == 0, out2 + err2
    assert migrated == 0, out_m + err_m
    # the same tenant twice: one creates it, the other refuses, touching nothing
    assert sorted([n1a, n1b]) == [0, 1], (out1a + err1a, out1b + err1b)
    assert "database db_n1 already exists; nothing was changed" in err1a + err1b
    for database in new:
        assert_same_as_file_by_file(project, database, reference, applied_by="provision (template)")
        tally("databases checked")
    for tenant_id in ("old1", "old2", "old3"):
        assert _ledger(project, f"db_{tenant_id}") == _ledger(project, reference)
        tally("databases checked")


def test_without_createdb_the_chain_is_applied_with_a_notice(project):
    _seeded(project)
    reference = _reference(project)
    role, password = "grapevine_nocreatedb", "no-create-db-pw"
    project.query("postgres", f"CREATE ROLE {role} LOGIN NOCREATEDB PASSWORD '{password}'")
    try:
        database = _new_tenant(project, "small")
        project.query("postgres", f"CREATE DATABASE {database} OWNER {role}")  # made empty by someone who may
        env = {"PG_TENANT_DATABASE_ADMIN_USERNAME": role, "PG_TENANT_DATABASE_ADMIN_PASSWORD": password}
        result = project.cli("provision", "--tenant", "small", env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert (f"notice: role {role} may not create databases (no CREATEDB): applying the 5 file(s) one by one"
                f" to the existing empty {database}") in result.stderr
        assert f"{database}: created at {HEAD} by applying 5 file(s)" in result.stdout
        assert_same_as_file_by_file(project, database, reference, applied_by="provision (chain)")
        # nothing to apply it to: one line that says what to do
        _new_tenant(project, "absent")
        missing = project.cli("provision", "--tenant", "absent", env=env)
        assert missing.returncode == 1
        assert missing.stderr.strip().startswith(f"error: tenant absent: cannot create database db_absent: role {role}"
                                                 " has no CREATEDB right")
        assert not pg.database_exists(project.server, "db_absent")
    finally:
        pg.drop_database(project.server, "db_small")
        project.query("postgres", f"DROP ROLE {role}")


def test_a_template_the_role_may_not_change_falls_back_to_the_chain(project):
    """As on a managed service that forbids it: the template needs migrating and this role may not."""
    _seeded(project)
    assert project.cli("provision", "--tenant", _new_tenant(project, "first")[3:]).returncode == 0  # built by the superuser
    project.write("tenant", "20250401000000_labels.sql", "CREATE TABLE labels (id int PRIMARY KEY);\n")
    reference = _reference(project)
    role, password = "grapevine_creator", "creator-pw"
    project.query("postgres", f"CREATE ROLE {role} LOGIN CREATEDB PASSWORD '{password}'")
    try:
        database = _new_tenant(project, "second")
        env = {"PG_TENANT_DATABASE_ADMIN_USERNAME": role, "PG_TENANT_DATABASE_ADMIN_PASSWORD": password}
        result = project.cli("provision", "--tenant", "second", env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"notice: cannot use the template ({TEMPLATE}: must be owner of database {TEMPLATE})" in result.stderr
        assert f"{database}: created at 20250401000000 by applying 6 file(s)" in result.stdout
        assert_same_as_file_by_file(project, database, reference, applied_by="provision (chain)")
    finally:
        pg.drop_database(project.server, "db_second")
        project.query("postgres", f"DROP ROLE {role}")
