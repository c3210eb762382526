"""A named tenant that is not provisioned yet is placed by its own row's server, not on the default one.

The tenants query lists provisioned tenants only; ``provision --tenant X`` (the provisioning
service's call) and ``migrate --tenant X`` (the repair path) take X in any state and must read
its server from its row all the same.  The alembic road is told the server (``-x server=``).
"""

from __future__ import annotations

import pg
from test_fleet_servers import HEAD, fleet, second_server  # noqa: F401 (fixtures)


def _unprovisioned(fleet, tenant_id: str, state: str, server: str | None) -> None:
    fleet.project.control("ALTER TABLE tenants DROP CONSTRAINT IF EXISTS tenants_state_check")
    fleet.project.add_tenant(tenant_id, state=state, create_db=False)
    fleet.project.control("UPDATE tenants SET server = %s WHERE id = %s", (server, tenant_id))
    fleet.project.make_db.created.append(f"db_{tenant_id}")  # dropped if it lands on the default server


def test_provision_places_a_tenant_in_any_state_on_its_own_server(fleet):
    _unprovisioned(fleet, "newco", "provisioning", fleet.second_label)
    fleet.on_second.append("db_newco")
    result = fleet.project.cli("provision", "--tenant", "newco")
    assert result.returncode == 0, result.stdout + result.stderr
    assert pg.database_exists(fleet.second, "db_newco")
    assert not pg.database_exists(fleet.project.server, "db_newco")
    assert fleet.version(fleet.second, "newco") == HEAD


def test_migrate_repairs_a_tenant_in_error_on_its_own_server(fleet):
    _unprovisioned(fleet, "broken", "error", fleet.second_label)
    pg.create_database(fleet.second, "db_broken")  # the failed provisioning left it empty there
    fleet.on_second.append("db_broken")
    result = fleet.project.cli("migrate", "--tenant", "broken")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "notice: tenant broken is error, not provisioned" in result.stderr
    assert fleet.version(fleet.second, "broken") == HEAD
    assert not pg.database_exists(fleet.project.server, "db_broken")
    status = fleet.project.cli("status", "--tenant", "broken")
    assert status.returncode == 0, status.stdout + status.stderr
    # the alembic road is told the server, and finds the same database at head
    alembic = fleet.project.alembic("-n", "tenant", "-x", "tenant=broken", "-x", f"server={fleet.second_label}",
                                    "current")
    assert alembic.returncode == 0 and HEAD in alembic.stdout, alembic.stdout + alembic.stderr


def test_a_server_the_row_cannot_give_is_that_tenants_error(fleet):
    """The query's server column is computed, not a column of tenants: one line, nothing created anywhere."""
    ini = fleet.project.root / "alembic.ini"
    ini.write_text(ini.read_text().replace("SELECT id, server FROM", "SELECT id, lower(server) AS placed_on FROM"))
    _unprovisioned(fleet, "elsewhere", "pending", fleet.second_label)
    result = fleet.project.cli("provision", "--tenant", "elsewhere")
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip() == (
        "error: tenant elsewhere: cannot place it: it is pending, so the tenants query does not list it, and the"
        " tenants table has no column placed_on (the query's server column) to read its server from")
    assert not pg.database_exists(fleet.project.server, "db_elsewhere")
    assert not pg.database_exists(fleet.second, "db_elsewhere")
