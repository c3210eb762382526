"""A fleet read at a glance: grouped summaries above 20 databases, and the --report page in a real Chromium.

The grouping is the CLI's (plain ``alembic`` applies one database per call and prints no fleet
summary).  Tenants whose database holds a ``broken`` table fail the second file with an error that
names their own database, so grouping identical errors has to take that name out.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess

import pytest

BASE, SECOND, THIRD = "20240101000000", "20240102000000", "20240103000000"
CHAIN = {
    f"{BASE}_base.sql": "BEGIN;\nCREATE TABLE items (id int);\nCOMMIT;\n",
    f"{SECOND}_guarded.sql": (
        "BEGIN;\nDO $$ BEGIN\n  IF to_regclass('broken') IS NOT NULL THEN\n"
        "    RAISE EXCEPTION 'database % is marked broken', current_database();\n  END IF;\nEND $$;\n"
        "ALTER TABLE items ADD COLUMN name text;\nCOMMIT;\n"
    ),
}
FLEET, BROKEN = 24, 22  # above the 20 databases from which the summary groups


def fleet(project, count: int = FLEET, broken: int = BROKEN) -> list[str]:
    """``count`` tenants t01.. on CHAIN; the first ``broken`` of them fail its second file."""
    project.tenant_chain(CHAIN, tenant="t01")
    databases = ["db_t01"] + [project.add_tenant(f"t{i:02d}") for i in range(2, count + 1)]
    for database in databases[:broken]:
        project.query(database, "CREATE TABLE broken ()")
    return databases


def test_migrate_over_many_tenants_groups_identical_errors_and_verbose_keeps_a_row_each(project):
    databases = fleet(project)
    grouped = project.cli("migrate", "--all-tenants")
    assert grouped.returncode == 1, grouped.stderr
    lines = grouped.stdout.splitlines()
    assert len(lines) <= 8, grouped.stdout
    failed = [line for line in lines if line.startswith("failed: ")]
    assert failed == [f"failed: db_t01, db_t02, db_t03 and {BROKEN - 3} more: "
                      f"{_error_line(grouped.stdout)}"], grouped.stdout
    assert "database <database> is marked broken" in failed[0]
    assert re.search(rf"^FAILED\s+{BASE}\s+{BROKEN}$", grouped.stdout, re.M), grouped.stdout
    assert re.search(rf"^ok\s+{SECOND}\s+{FLEET - BROKEN}$", grouped.stdout, re.M), grouped.stdout
    assert f"{FLEET} database(s): {FLEET - BROKEN} ok, {BROKEN} failed, 0 skipped" in grouped.stdout
    assert "db_t05" not in grouped.stdout  # no row per database

    verbose = project.cli("migrate", "--all-tenants", "--verbose")  # the broken ones fail again
    assert verbose.returncode == 1, verbose.stderr
    for database in databases:
        assert re.search(rf"^t\d\d\s+{database}\s", verbose.stdout, re.M), database
    for database in databases[:BROKEN]:
        assert f"database {database} is marked broken" in verbose.stdout


def _error_line(stdout: str) -> str:
    return next(line for line in stdout.splitlines() if "marked broken" in line).split(" more: ", 1)[1]


def test_status_groups_tenants_behind_by_the_same_files(project):
    fleet(project, broken=0)
    assert project.cli("migrate", "--all-tenants").returncode == 0
    project.write("tenant", f"{THIRD}_third.sql", "BEGIN;\nCREATE TABLE more (id int);\nCOMMIT;\n")
    result = project.cli("status", "--all-tenants")
    assert result.returncode == 0, result.stderr
    assert f"needing attention: {FLEET} tenant(s)" in result.stdout
    assert (f"  db_t01, db_t02, db_t03 and {FLEET - 3} more: at {SECOND}, 1 pending ({THIRD})"
            in result.stdout.splitlines()), result.stdout
    assert "db_t07" not in result.stdout
    assert len(result.stdout.splitlines()) <= 8, result.stdout
