"""An explicitly named tenant is migrated whatever its state (repairing a failed provisioning), on both
roads; ``--all-tenants`` stays provisioned-only; an id the tenants table does not have is an error."""

from __future__ import annotations

import json

import pytest

HEAD = "20250201080000"


@pytest.fixture
def fleet(project):
    project.migrate_control()
    # the product's tenants table knows provisioning and error states; the fixture chain's does not
    project.control("ALTER TABLE tenants DROP CONSTRAINT tenants_state_check")
    project.add_tenant("ready")
    project.add_tenant("broken", state="error")
    project.add_tenant("halfway", state="provisioning")
    project.add_tenant("gone", deleted=True)
    return project


@pytest.mark.parametrize("tenant, state", [("broken", "error"), ("halfway", "provisioning"), ("gone", "deleted")])
def test_a_named_tenant_is_migrated_whatever_its_state_with_a_notice(fleet, tenant, state):
    result = fleet.cli("migrate", "--tenant", tenant)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"notice: tenant {tenant} is {state}, not provisioned: included because it was named" in result.stderr
    assert fleet.version(f"db_{tenant}") == HEAD
    status = fleet.cli("status", "--tenant", tenant, "--json")
    assert status.returncode == 0 and json.loads(status.stdout)["databases"][0]["version"] == HEAD


def test_all_tenants_stays_provisioned_only(fleet):
    result = fleet.cli("migrate", "--all-tenants", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [d["tenant"] for d in json.loads(result.stdout)["databases"]] == ["ready"]
    assert "notice: tenant" not in result.stderr
    assert fleet.version("db_broken") is None and fleet.version("db_halfway") is None


def test_both_roads_agree_on_a_tenant_in_error(fleet):
    via_alembic = fleet.alembic("-n", "tenant", "-x", "tenant=halfway", "upgrade", "head")
    assert via_alembic.returncode == 0, via_alembic.stderr
    via_cli = fleet.cli("migrate", "--tenant", "broken")
    assert via_cli.returncode == 0, via_cli.stdout + via_cli.stderr
    assert fleet.version("db_halfway") == fleet.version("db_broken") == HEAD
    assert fleet.ledger("db_halfway") == fleet.ledger("db_broken")


def test_an_unknown_tenant_is_still_an_error(fleet):
    result = fleet.cli("migrate", "--tenant", "broken", "--tenant", "nobody")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: unknown tenant nobody: no such id in the tenants table"]
    assert fleet.version("db_broken") is None  # nothing was started


def test_an_unknown_tenant_suggests_the_closest_ids(fleet):
    line = "error: unknown tenant {}: no such id in the tenants table"
    for args in (["migrate", "--tenant", "brokn"], ["status", "--tenant", "brokn"], ["provision", "--tenant", "brokn"],
                 ["mark", "--apply", HEAD, "--tenant", "brokn", "--force"]):
        result = fleet.cli(*args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert result.stderr.strip().splitlines() == [line.format("brokn") + "; did you mean broken?"], args
    typo = fleet.cli("migrate", "--tenant", "redy", "--json")  # the JSON document carries the same line
    assert "error: " + json.loads(typo.stdout)["error"] == line.format("redy") + "; did you mean ready?", typo.stdout
    far = fleet.cli("migrate", "--tenant", "zzzzzz")  # nothing alike: no guess
    assert far.stderr.strip() == line.format("zzzzzz")
    assert fleet.version("db_broken") is None and not fleet.query(fleet.control_db, "SELECT 1 FROM pg_database WHERE datname = 'db_brokn'")
