"""Without a tenant port and without a port in the control URL, tenant databases are reached where libpq's own
defaults say (PGPORT, a service file's port), as the control database is: never on a 5432 of the tool's own."""

from __future__ import annotations

from urllib.parse import quote

import pytest


def _without_port(project, tmp_path, form: str) -> dict[str, str]:
    server = project.server
    base = f"postgresql://{server.superuser}:{quote(server.password, safe='')}@{server.host}/{project.control_db}"
    if form == "PGPORT":
        return {"CONTROL_DATABASE_URL": base, "PGPORT": str(server.port)}
    services = tmp_path / "pg_service.conf"
    services.write_text(f"[grapevine]\nport={server.port}\n")
    return {"CONTROL_DATABASE_URL": base + "?service=grapevine", "PGSERVICEFILE": str(services)}


@pytest.mark.parametrize("road", ["cli", "alembic"])
@pytest.mark.parametrize("form", ["PGPORT", "service file"])
def test_tenant_server_follows_libpq_port_defaults_like_the_control_database(project, tmp_path, form, road):
    project.migrate_control()
    database = project.add_tenant("acme")
    env = _without_port(project, tmp_path, form)
    if road == "cli":
        result = project.cli("migrate", "--tenant", "acme", env=env)
    else:
        result = project.alembic("-n", "tenant", "-x", "tenant=acme", "upgrade", "head", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    head = max(path.name[:14] for path in project.migrations("tenant").glob("[0-9]*_*.sql"))
    assert project.version(database) == head
