"""A database whose head no file has (its file deleted, a branch switched), on the alembic road: the error
prints the alembic command that moves it back, and ``stamp --purge`` keeps the ledger with the version table
(as ``mark --unapply`` does on the CLI), or changes neither."""

from __future__ import annotations

import pg
from test_cli_lost_version import HEAD, PREVIOUS

FIRST = "20250101090000"
ROWS = "SELECT * FROM schema_migrations ORDER BY version"  # every column, applied_at included


def _fleet_with_a_lost_head(project, *tenants: str) -> dict[str, list]:
    """``tenants`` at the head, whose file is then deleted; returns each database's ledger rows before."""
    project.migrate_control()
    for tenant in tenants:
        project.add_tenant(tenant)
    assert project.cli("migrate", "--all-tenants").returncode == 0
    [head_file] = project.migrations("tenant").glob(f"{HEAD}_*.sql")
    head_file.unlink()  # a branch switch
    return {tenant: project.query(f"db_{tenant}", ROWS) for tenant in tenants}


def test_the_printed_alembic_command_moves_a_lost_head_back_as_mark_unapply_does(project):
    before = _fleet_with_a_lost_head(project, "acme", "globex")
    refused = project.alembic("-n", "tenant", "-x", "tenant=acme", "upgrade", "head")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    command = f"alembic -c alembic.ini -n tenant -x tenant=acme stamp --purge {PREVIOUS}"
    assert "which no migration file has" in refused.stderr and f"with: {command}" in refused.stderr, refused.stderr
    assert "grapevine-migrations" not in refused.stderr

    pasted = project.alembic(*command.split()[3:])
    assert pasted.returncode == 0, pasted.stderr
    marked = project.cli("mark", "--unapply", HEAD, "--tenant", "globex")  # the CLI's road, for comparison
    assert marked.returncode == 0, marked.stdout + marked.stderr
    for tenant in ("acme", "globex"):  # each ledger exactly as before but for the lost version's row
        assert project.version(f"db_{tenant}") == PREVIOUS
        assert project.query(f"db_{tenant}", ROWS) == [row for row in before[tenant] if row[0] != HEAD]
    upgrade = project.alembic("-n", "tenant", "-x", "tenant=acme", "upgrade", "head")
    assert upgrade.returncode == 0, upgrade.stderr
    status = project.cli("status", "--tenant", "acme", "--exit-code")
    assert status.returncode == 0, status.stdout + status.stderr


def test_stamp_purge_moves_the_ledger_with_the_version_table_or_changes_neither(project):
    before = _fleet_with_a_lost_head(project, "acme")["acme"]
    stamp = ("-n", "tenant", "-x", "tenant=acme", "-x", "lock_timeout=1", "stamp", "--purge")
    holder = pg.connect(project.server, "db_acme")
    try:  # the ledger's rows cannot change while another session holds it: the stamp fails after the purge
        holder.cursor().execute("BEGIN; LOCK TABLE schema_migrations IN SHARE MODE")
        failed = project.alembic(*stamp, PREVIOUS)
    finally:
        holder.close()
    assert failed.returncode != 0 and "lock timeout" in failed.stderr, failed.stderr
    assert project.version("db_acme") == HEAD and project.query("db_acme", ROWS) == before  # neither moved

    assert project.alembic(*stamp, FIRST).returncode == 0  # down past the lost head and a file that has one
    assert project.version("db_acme") == FIRST
    assert project.query("db_acme", ROWS) == [row for row in before if row[0] <= FIRST]
    assert project.alembic(*stamp, "base").returncode == 0  # Alembic runs no step for base
    assert project.version("db_acme") is None and project.query("db_acme", ROWS) == []
    assert project.alembic(*stamp, PREVIOUS).returncode == 0  # up from base, as a plain stamp
    assert project.version("db_acme") == PREVIOUS
    assert [(row[0], row[4]) for row in project.query("db_acme", ROWS)] == [
        (FIRST, "stamp"), ("20250108100000", "stamp"), (PREVIOUS, "stamp")]
    upgrade = project.alembic("-n", "tenant", "-x", "tenant=acme", "upgrade", "head")
    assert upgrade.returncode == 0, upgrade.stderr
