"""The alembic road treats late-merged files as migrate does: applied with a warning (the default), or refused
when alembic.ini or ``-x out_of_order=refuse`` says so."""

from __future__ import annotations

import pytest

from test_cli_out_of_order_files import HEAD, LATE, set_policy


@pytest.fixture
def late(project):
    project.migrate_control()
    project.add_tenant("acme")
    assert project.alembic("-n", "tenant", "-x", "tenant=acme", "upgrade", "head").returncode == 0
    project.write("tenant", LATE, "CREATE TABLE late (a int);\n")
    return project


def test_alembic_upgrade_applies_an_out_of_order_file_with_a_warning(late):
    result = late.alembic("-n", "tenant", "-x", "tenant=acme", "upgrade", "head")
    assert result.returncode == 0, result.stderr
    assert f"warning: db_acme: applying {LATE} out of order" in result.stderr
    assert "late" in late.tables("db_acme")
    assert (LATE[:14], "out-of-order") in late.ledger("db_acme")
    assert late.version("db_acme") == HEAD
    assert late.cli("status", "--tenant", "acme", "--exit-code").returncode == 0  # nothing left to do


@pytest.mark.parametrize("how", ["ini", "x-argument"])
def test_alembic_upgrade_refuses_when_told(late, how):
    args = ["-n", "tenant", "-x", "tenant=acme"]
    if how == "ini":
        set_policy(late, "refuse")
    else:
        args += ["-x", "out_of_order=refuse"]
    result = late.alembic(*args, "upgrade", "head")
    assert result.returncode != 0
    assert "never applied here although older than the database's version" in result.stderr
    assert "run them with: alembic -c alembic.ini -n tenant -x tenant=acme -x out_of_order=apply upgrade head" \
        in result.stderr
    assert "Traceback" not in result.stderr
    assert "late" not in late.tables("db_acme")


def test_a_bad_x_out_of_order_is_one_line_before_anything_runs(late):
    result = late.alembic("-n", "tenant", "-x", "tenant=acme", "-x", "out_of_order=maybe", "upgrade", "head")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "-x out_of_order: out_of_order must be apply or refuse, not 'maybe'" in result.stderr
    assert "late" not in late.tables("db_acme")
