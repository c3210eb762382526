"""mark as the previous tool's users know it: one version each; ranges with --range.

Alembic's stamp moves alembic_version; the ledger carries the exceptions (a version
unmarked below the head, one marked ahead), and migrate, status, --dry-run and plain
alembic all read them the same way.
"""

from __future__ import annotations

import json
import shlex

A, B, C, D = "20250101000000", "20250102000000", "20250103000000", "20250104000000"
CHAIN = {
    f"{A}_a.sql": "CREATE TABLE a (x int);\n",
    f"{B}_b.sql": "CREATE TABLE b (x int);\n",
    f"{C}_fill.sql": "INSERT INTO a VALUES (1);\n",  # re-runnable, and every run leaves a row
    f"{D}_d.sql": "CREATE TABLE IF NOT EXISTS d (x int);\n",
}


def _setup(project, *tenants):
    project.migrate_control()
    project.clear("tenant")
    for name, sql in CHAIN.items():
        project.write("tenant", name, sql)
    return [project.add_tenant(t) for t in tenants]


def _rows(project, database) -> int:
    return project.query(database, "SELECT count(*) FROM a")[0][0]


def _ledger(project, database) -> dict:
    return dict(project.ledger(database))


def test_unapply_below_the_head_reruns_that_version_alone(project):
    [database] = _setup(project, "acme")
    assert project.cli("migrate", "--tenant", "acme").returncode == 0
    result = project.cli("mark", "--unapply", C, "--tenant", "acme")
    assert result.returncode == 0, result.stdout + result.stderr  # one version: no --force
    assert project.version(database) == D  # the head stays
    assert _ledger(project, database)[C] == "unmarked"

    status = project.cli("status", "--tenant", "acme", "--json", "--exit-code")
    assert status.returncode == 3
    [db] = json.loads(status.stdout)["databases"]
    assert db["pending"] == [C] and db["version"] == D
    current = project.alembic("-n", "tenant", "-x", "tenant=acme", "current")
    assert D in current.stdout
    dry = project.cli("migrate", "--tenant", "acme", "--dry-run")
    assert C in dry.stdout and A not in dry.stdout.replace(f"at {D}", "")

    again = project.cli("migrate", "--tenant", "acme", "--json")
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(again.stdout)["databases"][0]["applied"] == [C]  # no --out-of-order needed
    assert _rows(project, database) == 2  # C ran twice in all, the others once
    assert _ledger(project, database)[C] == "migrate"
    assert project.cli("status", "--tenant", "acme").returncode == 0


def test_unapply_the_head_stamps_its_parent(project):
    [database] = _setup(project, "acme")
    assert project.cli("migrate", "--tenant", "acme").returncode == 0
    assert project.cli("mark", "--unapply", D, "--tenant", "acme").returncode == 0
    assert project.version(database) == C and D not in _ledger(project, database)
    assert project.cli("migrate", "--tenant", "acme").returncode == 0
    assert project.version(database) == D and _rows(project, database) == 1


def test_apply_marks_that_version_alone_on_both_roads(project):
    cli_db, alembic_db = _setup(project, "viacli", "viaalembic")
    for tenant in ("viacli", "viaalembic"):
        result = project.cli("mark", "--apply", C, "--tenant", tenant)
        assert result.returncode == 0, result.stdout + result.stderr
    assert _ledger(project, cli_db) == {C: "mark"}
    assert project.version(cli_db) is None  # earlier versions are still pending

    migrate = project.cli("migrate", "--tenant", "viacli", "--json")
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    assert json.loads(migrate.stdout)["databases"][0]["applied"] == [A, B, D]
    upgrade = project.alembic("-n", "tenant", "-x", "tenant=viaalembic", "upgrade", "head")
    assert upgrade.returncode == 0, upgrade.stderr
    for database in (cli_db, alembic_db):
        assert project.version(database) == D
        assert _rows(project, database) == 0  # C never ran
        assert _ledger(project, database) == {A: "migrate", B: "migrate", C: "mark", D: "migrate"}


def test_range_keeps_the_wider_form(project):
    [database] = _setup(project, "acme")
    result = project.cli("mark", "--apply", C, "--range", "--tenant", "acme")
    assert result.returncode == 0, result.stdout + result.stderr
    assert project.version(database) == C
    assert _ledger(project, database) == {A: "mark", B: "mark", C: "mark"}  # not "stamp"
    assert project.cli("migrate", "--tenant", "acme").returncode == 0
    assert project.cli("mark", "--unapply", B, "--range", "--tenant", "acme").returncode == 0
    assert project.version(database) == A and set(_ledger(project, database)) == {A}


def test_a_ledger_row_no_file_has_can_be_removed(project):
    [database] = _setup(project, "acme")
    assert project.cli("migrate", "--tenant", "acme").returncode == 0
    project.query(database, "INSERT INTO schema_migrations (version, applied_by) VALUES ('20240101000000', 'migrate')")
    assert project.cli("status", "--tenant", "acme").returncode == 1  # drifted: a version no file has
    result = project.cli("mark", "--unapply", "20240101000000", "--tenant", "acme")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "20240101000000" not in _ledger(project, database)
    assert project.cli("status", "--tenant", "acme").returncode == 0
    unknown = project.cli("mark", "--unapply", "20240101000001", "--tenant", "acme")
    assert unknown.returncode == 1 and "unknown version 20240101000001" in unknown.stdout + unknown.stderr


def test_legacy_ledger_with_a_gap_suggests_commands_that_work(project):
    """Every command the error suggests works when pasted."""
    [database] = _setup(project, "old")
    project.query(database, "CREATE TABLE a (x int); CREATE TABLE schema_migrations (version varchar PRIMARY KEY,"
                            " applied_at timestamptz DEFAULT now())")
    project.query(database, f"INSERT INTO schema_migrations (version) VALUES ('{A}'), ('{C}')")
    project.query(database, "INSERT INTO a VALUES (1)")
    failed = project.cli("migrate", "--tenant", "old", "--refuse-out-of-order", "--json")  # default: applied
    assert failed.returncode == 1
    error = json.loads(failed.stdout)["databases"][0]["error"]
    suggestions = [part.split(";")[0].strip() for part in error.split("with: ")[1:]]
    assert suggestions == [f"grapevine-migrations migrate --tenant old --out-of-order",
                           f"grapevine-migrations mark --apply {B} --tenant old"]
    assert "alembic_version" not in project.tables(database)  # nothing written yet
    pasted = project.cli(*shlex.split(suggestions[0])[1:])
    assert pasted.returncode == 0, pasted.stdout + pasted.stderr
    assert project.version(database) == D and "b" in project.tables(database)
    assert _rows(project, database) == 1  # C, recorded by the previous tool, did not run again
    assert _ledger(project, database) == {A: "adopt", B: "out-of-order", C: "adopt", D: "migrate"}


def test_legacy_gap_can_be_marked_instead(project):
    [database] = _setup(project, "old")
    project.query(database, "CREATE TABLE a (x int); CREATE TABLE schema_migrations (version varchar PRIMARY KEY,"
                            " applied_at timestamptz DEFAULT now())")
    project.query(database, f"INSERT INTO schema_migrations (version) VALUES ('{A}'), ('{C}')")
    result = project.cli("mark", "--apply", B, "--tenant", "old")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"adopted legacy schema_migrations up to {C}; mark {B} applied" in result.stdout
    assert project.version(database) == C
    assert project.cli("migrate", "--tenant", "old").returncode == 0
    assert project.version(database) == D and "b" not in project.tables(database)


def test_an_edited_file_has_a_way_forward_that_works_when_pasted(project):
    [database] = _setup(project, "acme")
    assert project.cli("migrate", "--tenant", "acme").returncode == 0
    project.write("tenant", f"{B}_b.sql", "CREATE TABLE b (x int);\n-- a comment added after it ran\n")
    status = project.cli("status", "--tenant", "acme")
    assert status.returncode == 1
    command = f'grapevine-migrations mark --accept-edit {B} --tenant acme --reason "..."'
    assert command in status.stdout, status.stdout
    migrate = project.cli("migrate", "--tenant", "acme")
    assert migrate.returncode == 0 and command in migrate.stdout, migrate.stdout  # ok, but not silent

    no_reason = project.cli("mark", "--accept-edit", B, "--tenant", "acme")
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr
    pasted = project.cli(*shlex.split(command.replace('"..."', '"comment only, reviewed"'))[1:])
    assert pasted.returncode == 0, pasted.stdout + pasted.stderr
    assert project.cli("status", "--tenant", "acme").returncode == 0
    row = project.query(database, "SELECT applied_by, description FROM schema_migrations WHERE version = %s", (B,))
    assert row == [("edit-accepted", "b (edit accepted: comment only, reviewed)")]
    again = project.cli("mark", "--accept-edit", B, "--tenant", "acme", "--reason", "x")
    assert again.returncode == 0 and "nothing to change" in again.stdout


def test_accept_edit_warns_that_the_edited_statements_never_ran(project):
    databases = _setup(project, "acme", "globex")
    assert project.cli("migrate", "--all-tenants").returncode == 0
    project.write("tenant", f"{B}_b.sql", "CREATE TABLE b (x int, y int);\n")  # a real change, after the fact
    accepted = project.cli("mark", "--accept-edit", B, "--all-tenants", "--reason", "y added")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    warning = [line for line in accepted.stderr.splitlines() if line.startswith("warning:")]
    assert warning == [f"warning: --accept-edit records {B}'s new checksum only: its edited statements never ran on"
                       " any database, and never will; if the edit changes what the file does, revert it and write a"
                       " new migration instead"], accepted.stderr
    for db in databases:  # what the warning says: y exists nowhere
        assert project.query(db, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'b'"
                                 " AND column_name = 'y'") == [(0,)]
    assert project.cli("status", "--all-tenants").returncode == 0


def test_adopting_a_legacy_ledger_never_records_its_gaps(project):
    """A gap is a file that never ran: if running it fails, it must still look pending."""
    [database] = _setup(project, "old")
    project.write("tenant", f"{B}_b.sql", "CREATE TABLE b (x int);\nSELECT missing_column FROM b;\n")
    project.query(database, "CREATE TABLE a (x int); CREATE TABLE schema_migrations (version varchar PRIMARY KEY,"
                            " applied_at timestamptz DEFAULT now())")
    project.query(database, f"INSERT INTO schema_migrations (version) VALUES ('{A}'), ('{C}')")
    result = project.cli("migrate", "--tenant", "old", "--out-of-order", "--json")
    assert result.returncode == 1
    assert "missing_column" in json.loads(result.stdout)["databases"][0]["error"]
    assert project.version(database) == C  # adopted
    assert _ledger(project, database) == {A: "adopt", C: "adopt"}  # B is not recorded
    status = project.cli("status", "--tenant", "old", "--json")
    assert json.loads(status.stdout)["databases"][0]["out_of_order"] == [B]
