"""A run plans each distinct database state once and shares that plan (``runner.Chain.plan``): databases that
differ in anything a plan reads (an edited file's checksum, a version unmarked, a lost row, another head) still
get their own plan within the same run, through the CLI and through plain ``alembic``."""

from __future__ import annotations

import json

from project import FIXTURE_MIGRATIONS

VERSIONS = sorted(p.name.split("_")[0] for p in (FIXTURE_MIGRATIONS / "tenant").glob("2*.sql"))
TENANTS = ("same1", "edited", "same2", "unmarked", "lostrow", "behind", "same3")


def _fleet(project):
    """Seven tenants at head, then four of them made to differ, each in one thing a plan reads."""
    project.migrate_control()
    for tenant in TENANTS:
        project.add_tenant(tenant)
    assert project.cli("migrate", "--all-tenants").returncode == 0
    project.query("db_edited", "UPDATE schema_migrations SET checksum = 'not-the-file' WHERE version = %s",
                  (VERSIONS[1],))
    project.query("db_lostrow", "DELETE FROM schema_migrations WHERE version = %s", (VERSIONS[2],))
    project.query("db_behind", "UPDATE alembic_version SET version_num = %s", (VERSIONS[-2],))
    project.query("db_behind", "DELETE FROM schema_migrations WHERE version = %s", (VERSIONS[-1],))
    unmarked = project.cli("mark", "--unapply", VERSIONS[-1], "--tenant", "unmarked", "--force")
    assert unmarked.returncode == 0, unmarked.stderr


def test_one_status_run_tells_each_differing_database_from_the_ones_that_stand_alike(project):
    _fleet(project)
    result = project.cli("status", "--all-tenants", "--json")
    databases = {d["tenant"]: d for d in json.loads(result.stdout)["databases"]}
    for tenant in ("same1", "same2", "same3"):
        assert (databases[tenant]["pending"], databases[tenant]["edited"], databases[tenant]["out_of_order"]) == (
            [], [], []), databases[tenant]
    assert databases["edited"]["edited"] == [VERSIONS[1]] and databases["edited"]["pending"] == []
    assert databases["lostrow"]["out_of_order"] == [VERSIONS[2]] and databases["lostrow"]["edited"] == []
    assert databases["unmarked"]["pending"] == [VERSIONS[-1]] and databases["unmarked"]["out_of_order"] == []
    assert databases["behind"]["pending"] == [VERSIONS[-1]] and databases["behind"]["version"] == VERSIONS[-2]


def test_one_migrate_run_applies_only_what_each_database_lacks(project):
    _fleet(project)
    result = project.cli("migrate", "--all-tenants", "--json")
    databases = {d["tenant"]: d for d in json.loads(result.stdout)["databases"]}
    assert result.returncode == 1  # lostrow: its file runs again, out of order, and meets its own table
    assert {t: d["applied"] for t, d in databases.items()} == {
        "same1": [], "edited": [], "same2": [], "unmarked": [VERSIONS[-1]], "lostrow": [],
        "behind": [VERSIONS[-1]], "same3": []}
    assert not databases["lostrow"]["ok"] and "out of order" in databases["lostrow"]["warnings"][0]
    assert VERSIONS[2] in databases["lostrow"]["warnings"][0]
    assert [t for t, d in databases.items() if not d["ok"]] == ["lostrow"]
    assert all(project.version(f"db_{t}") == VERSIONS[-1] for t in TENANTS)


def test_alembic_upgrade_plans_each_database_on_its_own(project):
    """The alembic road runs the same job over one database at a time: the differing ones get theirs too."""
    _fleet(project)
    for tenant in ("same1", "behind", "same2"):
        upgraded = project.alembic("-n", "tenant", "-x", f"tenant={tenant}", "upgrade", "head")
        assert upgraded.returncode == 0, upgraded.stderr
    assert project.ledger("db_behind")[-1][0] == VERSIONS[-1]
    assert all(project.version(f"db_{t}") == VERSIONS[-1] for t in ("same1", "behind", "same2"))
