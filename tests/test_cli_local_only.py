"""`reset` and `dev tenant add` touch only this machine, judged by where libpq really connects.

A server of the test's own listens on 127.0.0.1, 127.0.0.2 and, when the machine has one, a
non-loopback address of a local interface: "remote" traffic never leaves the machine.
"""

from __future__ import annotations

import subprocess

import pg
import pytest
from project import ScratchProject


def _interface_address() -> str | None:
    """A non-loopback IPv4 address of this machine's own interfaces, or None."""
    try:
        listing = subprocess.run(["ip", "-o", "-4", "addr", "show", "scope", "global"],
                                 capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in listing.splitlines():
        fields = line.split()
        if "inet" in fields:
            return fields[fields.index("inet") + 1].split("/")[0]
    return None


OFF_LOOPBACK = _interface_address()


@pytest.fixture(scope="module")
def wide(tmp_path_factory, pg_server):
    """A server listening on two loopback addresses and on the interface address, password auth for all."""
    listen = ",".join(a for a in ("127.0.0.1", "127.0.0.2", OFF_LOOPBACK) if a)
    for server in pg.own_server(tmp_path_factory, pg_server, "wide", "needs a server of its own",
                                settings={"listen_addresses": listen}):
        with open(server.data_dir / "pg_hba.conf", "a") as hba:
            hba.write("host all all 127.0.0.0/8 scram-sha-256\n")
            if OFF_LOOPBACK:
                hba.write(f"host all all {OFF_LOOPBACK}/32 scram-sha-256\n")
        pg.query(server, None, "SELECT pg_reload_conf()")
        yield server


@pytest.fixture
def remote(tmp_path, wide):
    """A project whose control database sits on ``wide``, with a table that must survive; no password in URLs."""
    if OFF_LOOPBACK is None:
        pytest.skip("this machine has no non-loopback interface address")
    factory = pg.DatabaseFactory(wide)
    root = tmp_path / "proj"
    root.mkdir()
    project = ScratchProject(root, wide, factory)
    project.control("CREATE TABLE tenants (id text PRIMARY KEY, state text NOT NULL); CREATE TABLE keep (x int)")
    project.env["PGPASSWORD"] = wide.password
    yield project
    factory.close()


def _off_loopback_forms(project, tmp_path) -> dict[str, dict[str, str]]:
    """Each way libpq can be sent to the interface address while the URL's host looks local or is absent."""
    db, port = project.control_db, project.server.port
    services = tmp_path / "pg_service.conf"
    services.write_text(f"[elsewhere]\nhost={OFF_LOOPBACK}\nport={port}\nuser=postgres\n")
    return {
        "?hostaddr=": {"CONTROL_DATABASE_URL": f"postgresql://postgres@localhost:{port}/{db}?hostaddr={OFF_LOOPBACK}"},
        "PGHOST": {"CONTROL_DATABASE_URL": f"postgresql://postgres@:{port}/{db}", "PGHOST": OFF_LOOPBACK},
        "PGHOSTADDR": {"CONTROL_DATABASE_URL": f"postgresql://postgres@:{port}/{db}", "PGHOSTADDR": OFF_LOOPBACK},
        "?service=": {"CONTROL_DATABASE_URL": f"postgresql:///{db}?service=elsewhere", "PGSERVICEFILE": str(services)},
        "PGSERVICE": {"CONTROL_DATABASE_URL": f"postgresql:///{db}", "PGSERVICE": "elsewhere",
                      "PGSERVICEFILE": str(services)},
    }


FORMS = ["?hostaddr=", "PGHOST", "PGHOSTADDR", "?service=", "PGSERVICE"]


@pytest.mark.parametrize("form", FORMS)
def test_reset_refuses_a_server_libpq_reaches_off_loopback(remote, tmp_path, form):
    env = _off_loopback_forms(remote, tmp_path)[form]
    result = remote.cli("reset", "--control", "--force", env=env)
    assert result.returncode == 2, (result.stdout, result.stderr)
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: reset refuses") and OFF_LOOPBACK in line and "only local servers" in line, line
    assert {"keep", "tenants"} <= remote.tables(remote.control_db)  # nothing dropped


@pytest.mark.parametrize("form", FORMS)
def test_dev_tenant_add_refuses_a_server_libpq_reaches_off_loopback(remote, tmp_path, form):
    env = _off_loopback_forms(remote, tmp_path)[form]
    result = remote.cli("dev", "tenant", "add", "offloop", env=env)
    assert result.returncode == 2, (result.stdout, result.stderr)
    [line] = result.stderr.strip().splitlines()
    assert "dev tenant add works on local servers only" in line and OFF_LOOPBACK in line, line
    assert remote.control("SELECT count(*) FROM tenants") == [(0,)]
    assert not pg.database_exists(remote.server, "db_offloop")


@pytest.mark.parametrize("address", ["127.0.0.2", "localhost"])
def test_reset_accepts_any_loopback_address(tmp_path, wide, address):
    factory = pg.DatabaseFactory(wide)
    root = tmp_path / "proj"
    root.mkdir()
    project = ScratchProject(root, wide, factory)
    try:
        project.control("CREATE TABLE dropped (x int)")
        url = f"postgresql://postgres@{address}:{wide.port}/{project.control_db}"
        result = project.cli("reset", "--control", "--force",
                             env={"CONTROL_DATABASE_URL": url, "PGPASSWORD": wide.password})
        assert result.returncode == 0, result.stderr
        assert project.tables(project.control_db) == set()
    finally:
        factory.close()


def test_reset_refuses_a_remote_name_without_connecting(project):
    """A named remote host is refused from the URL alone: not even a name lookup (no traffic off the machine)."""
    url = f"postgresql://postgres@db.invalid:{project.server.port}/{project.control_db}"
    result = project.cli("reset", "--control", "--force", env={"CONTROL_DATABASE_URL": url})
    assert result.returncode == 2 and "reset refuses" in result.stderr and "db.invalid" in result.stderr
    assert "could not translate host name" not in result.stderr
