"""Tenants on several PostgreSQL servers: placement, the per-server cap, the circuit breaker.

Two embedded servers (the session's and one for this module), a hung server (a socket that
accepts and never answers), a refusing one and a server stopped mid-run.  Every target is a
loopback address.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

import pg

HEAD = "20250201080000"
QUERY = "SELECT id, server FROM tenants WHERE state = 'provisioned' ORDER BY id"
SLOW_CHAIN = {
    "20240101000000_base.sql": "BEGIN;\nCREATE TABLE runs (file text);\nCOMMIT;\n",
    "20240102000000_slow.sql": "BEGIN;\nSELECT pg_sleep(0.8);\nINSERT INTO runs VALUES ('slow');\nCOMMIT;\n",
}
SLOW_HEAD = "20240102000000"


@pytest.fixture(scope="module")
def second_server(tmp_path_factory, pg_server):
    """Another embedded PostgreSQL with the same superuser and password (the same PG_TENANT_* credentials)."""
    yield from pg.own_server(tmp_path_factory, pg_server, "pg2", "needs two local servers")


class Fleet:
    """The scratch project with a ``server`` column on tenants, and databases on either server."""

    def __init__(self, project, second):
        self.project, self.second = project, second
        self.on_second: list[str] = []
        project.migrate_control()
        project.control("ALTER TABLE tenants ADD COLUMN server text")
        ini = project.root / "alembic.ini"
        ini.write_text(ini.read_text().replace("[grapevine]\n", f"[grapevine]\ntenants_query = {QUERY}\n"))

    def add(self, tenant_id: str, server: str | None = None, *, create_on=None) -> str:
        self.project.add_tenant(tenant_id, create_db=create_on is None)
        self.project.control("UPDATE tenants SET server = %s WHERE id = %s", (server, tenant_id))
        if create_on is not None:
            pg.create_database(create_on, f"db_{tenant_id}")
            self.on_second.append(f"db_{tenant_id}")
        return tenant_id

    @property
    def second_label(self) -> str:
        return f"127.0.0.1:{self.second.port}"

    def version(self, server, tenant_id: str) -> str | None:
        database = f"db_{tenant_id}"
        if not pg.query(server, database, "SELECT to_regclass('alembic_version') IS NOT NULL")[0][0]:
            return None
        return pg.query(server, database, "SELECT version_num FROM alembic_version")[0][0]

    def use_chain(self, chain: dict[str, str]) -> None:
        self.project.clear("tenant")
        for name, sql in chain.items():
            self.project.write("tenant", name, sql)

    def close(self) -> None:
        for database in self.on_second:
            pg.drop_database(self.second, database)


@pytest.fixture
def fleet(project, second_server):
    fleet = Fleet(project, second_server)
    yield fleet
    fleet.close()


class HungServer:
    """A TCP socket on 127.0.0.1 that accepts connections and never answers; closes itself after ``lifetime``."""

    def __init__(self, lifetime: float = 120.0):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.deadline = time.monotonic() + lifetime
        self.stop = threading.Event()
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue  # the accept timeout: look at the clock again
            self.held.append(conn)
        for conn in self.held:
            conn.close()
        self.sock.close()

    def __enter__(self) -> HungServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def _json(result) -> dict:
    assert result.stdout.lstrip().startswith("{"), result.stdout + result.stderr
    return json.loads(result.stdout)


def _by_tenant(doc: dict) -> dict:
    return {d["tenant"]: d for d in doc["databases"] if d["target"] == "tenant"}


# ---- placement ---------------------------------------------------------------------------------


def test_tenants_on_two_servers_migrate_each_on_its_own(fleet, pg_server, second_server):
    home = [fleet.add(f"h{i}") for i in range(3)]  # NULL: the default tenant server
    away = [fleet.add(f"w{i}", fleet.second_label, create_on=second_server) for i in range(3)]
    result = fleet.project.cli("migrate", "--all-tenants", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    doc = _by_tenant(_json(result))
    for tenant in home:
        assert fleet.version(pg_server, tenant) == HEAD
        assert doc[tenant]["server"] == f"127.0.0.1:{pg_server.port}"
    for tenant in away:
        assert fleet.version(second_server, tenant) == HEAD
        assert not pg.database_exists(pg_server, f"db_{tenant}")
        assert doc[tenant]["server"] == fleet.second_label


def test_plain_alembic_reaches_a_tenant_on_another_server(fleet, second_server):
    fleet.add("w0", fleet.second_label, create_on=second_server)
    result = fleet.project.alembic("-n", "tenant", "-x", "tenant=w0", "-x", f"server={fleet.second_label}",
                                   "upgrade", "head")
    assert result.returncode == 0, result.stderr
    assert fleet.version(second_server, "w0") == HEAD
    status = _json(fleet.project.cli("status", "--tenant", "w0", "--json"))
    assert status["ok"] and status["databases"][0]["server"] == fleet.second_label


def test_status_groups_by_server(fleet, pg_server, second_server):
    for i in range(2):
        fleet.add(f"h{i}")
        fleet.add(f"w{i}", fleet.second_label, create_on=second_server)
    assert fleet.project.cli("migrate", "--tenant", "h0", "--tenant", "w0").returncode == 0
    human = fleet.project.cli("status", "--exit-code")
    assert human.returncode == 3, human.stdout + human.stderr  # h1 and w1 are behind
    lines = human.stdout.splitlines()
    assert "servers: 2" in lines
    row = next(line.split() for line in lines if line.startswith(fleet.second_label))
    assert row == [fleet.second_label, "2", "1", "1", "0", "0"]  # tenants, at head, behind, failed, unreachable
    doc = _json(fleet.project.cli("status", "--json"))
    assert all(d["server"] for d in doc["databases"])
    servers = {s["server"]: s for s in doc["servers"]}
    assert servers[fleet.second_label] == {"server": fleet.second_label, "tenants": 2, "at_head": 1, "behind": 1,
                                           "failed": 0, "unreachable": 0}
    assert servers[f"127.0.0.1:{pg_server.port}"]["tenants"] == 2


def test_single_server_status_has_no_server_table(fleet):
    fleet.add("h0")
    human = fleet.project.cli("status")
    assert "servers:" not in human.stdout
    assert len(_json(fleet.project.cli("status", "--json"))["servers"]) == 1


def test_malformed_server_value_is_that_tenants_error(fleet, pg_server):
    good = [fleet.add("ok1"), fleet.add("ok2", f"127.0.0.1:{pg_server.port}")]
    bad = {"b1": "127.0.0.1:99999", "b2": "db host", "b3": "::1", "b4": "127.0.0.1:x", "b5": ""}
    for tenant, value in bad.items():
        fleet.add(tenant, value)
    result = fleet.project.cli("migrate", "--all-tenants", "--json")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    doc = _by_tenant(_json(result))
    for tenant in good:
        assert doc[tenant]["ok"] and fleet.version(pg_server, tenant) == HEAD
    for tenant, value in bad.items():
        error = doc[tenant]["error"]
        assert error.startswith(f"invalid server {value!r}:") and "\n" not in error, error
        assert doc[tenant]["attempts"] == 0 and fleet.version(pg_server, tenant) is None
    human = fleet.project.cli("migrate", "--all-tenants")
    assert "invalid server '127.0.0.1:99999': the port must be a number from 1 to 65535" in human.stdout


# ---- per-server parallelism --------------------------------------------------------------------


def test_per_server_cap_seen_in_pg_stat_activity(fleet, pg_server, second_server):
    for i in range(4):
        fleet.add(f"h{i}")
        fleet.add(f"w{i}", fleet.second_label, create_on=second_server)
    fleet.use_chain(SLOW_CHAIN)
    peaks = {"home": 0, "away": 0}
    both_busy = threading.Event()
    done = threading.Event()

    def count(server) -> int:
        # tenant databases only: the control database holds the rollout record's connection too
        return pg.query(server, None, "SELECT count(*) FROM pg_stat_activity"
                                      " WHERE application_name = 'grapevine-migrations' AND datname LIKE 'db\\_%'")[0][0]

    def sample() -> None:
        while not done.is_set():
            home, away = count(pg_server), count(second_server)
            peaks["home"], peaks["away"] = max(peaks["home"], home), max(peaks["away"], away)
            if home and away:
                both_busy.set()
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        # six slots, two per server: the per-server cap is what binds (without it each would get three)
        result = fleet.project.cli("migrate", "--all-tenants", "--max-parallel", "6",
                                   "--max-parallel-per-server", "2", "--json")
    finally:
        done.set()
        sampler.join()
    assert result.returncode == 0, result.stdout + result.stderr
    assert peaks == {"home": 2, "away": 2}  # reached, never passed (each tenant sleeps 0.8 s)
    assert both_busy.is_set()  # interleaved: the second server did not wait for the first
    for i in range(4):
        assert fleet.version(pg_server, f"h{i}") == SLOW_HEAD
        assert fleet.version(second_server, f"w{i}") == SLOW_HEAD


# ---- the circuit breaker -----------------------------------------------------------------------


def _check_unreachable(doc: dict, tenants: list[str], label: str, reason: str) -> tuple[int, int]:
    """Every tenant of the server failed with the reason or was skipped naming the server; (failed, skipped)."""
    failed = skipped = 0
    for tenant in tenants:
        entry = doc[tenant]
        assert not entry["ok"], entry
        if entry["skipped"]:
            skipped += 1
            assert entry["error"] == f"server {label} unreachable: {reason}", entry
            assert entry["attempts"] == 0
        else:
            failed += 1
            assert reason in entry["error"], entry
    return failed, skipped


CONNECT_TIMEOUT_S = 3  # in the control URL's query, which the tenants' connections inherit (default 10 s)


def hung_bound_s(connect_timeout_s: float) -> float:
    """How long a run may take with a hung server among its tenants: 40 s at the default connect timeout."""
    return 3 * connect_timeout_s + 10


def test_hung_server_is_skipped_within_the_bound(fleet, pg_server):
    healthy = [fleet.add(f"h{i:02d}") for i in range(10)]
    url = fleet.project.env["CONTROL_DATABASE_URL"]
    env = {"CONTROL_DATABASE_URL": url + ("&" if "?" in url else "?") + f"connect_timeout={CONNECT_TIMEOUT_S}"}
    bound = hung_bound_s(CONNECT_TIMEOUT_S)
    with HungServer() as hung:
        label = f"127.0.0.1:{hung.port}"
        stuck = [fleet.add(f"x{i:02d}", label) for i in range(20)]
        started = time.monotonic()
        result = fleet.project.cli("migrate", "--all-tenants", "--json", env=env)
        seconds = time.monotonic() - started
        status_started = time.monotonic()
        status = fleet.project.cli("status", "--json", env=env)
        status_seconds = time.monotonic() - status_started
    print(f"migrate {seconds:.1f}s, status {status_seconds:.1f}s (bound {bound:.0f}s)")
    assert seconds < bound, seconds
    assert result.returncode == 1
    doc = _by_tenant(_json(result))
    for tenant in healthy:
        assert doc[tenant]["ok"] and fleet.version(pg_server, tenant) == HEAD
    failed, skipped = _check_unreachable(doc, stuck, label, "timeout expired")
    assert failed >= 3 and skipped >= 1
    assert status_seconds < bound, status_seconds
    assert status.returncode == 1
    servers = {s["server"]: s for s in _json(status)["servers"]}
    assert servers[label]["unreachable"] == 20
    assert servers[f"127.0.0.1:{pg_server.port}"]["at_head"] == 10


def test_refusing_server_trips_after_three_tenants(fleet, pg_server):
    holder = socket.socket()  # bound, never listening: connections to it are refused
    holder.bind(("127.0.0.1", 0))
    label = f"127.0.0.1:{holder.getsockname()[1]}"
    try:
        healthy = [fleet.add(f"h{i}") for i in range(2)]
        refused = [fleet.add(f"r{i:02d}", label) for i in range(12)]
        result = fleet.project.cli("migrate", "--all-tenants", "--retries", "1", "--max-parallel-per-server", "2",
                                   "--json")
        human = fleet.project.cli("migrate", "--all-tenants", "--retries", "0")
        check = fleet.project.cli("check", "--against-db", "--json")  # the same breaker
    finally:
        holder.close()
    assert result.returncode == 1
    doc = _by_tenant(_json(result))
    for tenant in healthy:
        assert doc[tenant]["ok"]
    failed, skipped = _check_unreachable(doc, refused, label, "Connection refused")
    assert 3 <= failed <= 4  # the third trips it; at most one more was already in flight
    assert skipped == 12 - failed
    assert all(doc[t]["attempts"] == 2 for t in refused if not doc[t]["skipped"])  # retried before counting
    assert f"server {label} unreachable: Connection refused" in human.stdout
    assert check.returncode == 1
    messages = [f["message"] for f in _json(check)["findings"] if f["code"] == "database"]
    assert len(messages) == 12 and any(f"server {label} unreachable: Connection refused" in m for m in messages)


def test_server_stopped_mid_run(fleet, pg_server, second_server):
    home = [fleet.add(f"h{i}") for i in range(3)]
    away = [fleet.add(f"w{i:02d}", fleet.second_label, create_on=second_server) for i in range(10)]
    fleet.use_chain(SLOW_CHAIN)
    # a stopped server is waited for during the retry window (restarts), then it is down
    proc = fleet.project.spawn("migrate", "--all-tenants", "--max-parallel-per-server", "1", "--retries", "1",
                               "--retry-window", "2", "--json")
    try:
        deadline = time.monotonic() + 60
        while fleet.version(second_server, away[0]) != SLOW_HEAD:  # the first one is through: stop its server
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        second_server.stop()
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        second_server.start()
    assert proc.returncode == 1, stdout + stderr
    doc = _by_tenant(json.loads(stdout))
    for tenant in home:
        assert doc[tenant]["ok"] and fleet.version(pg_server, tenant) == SLOW_HEAD
    assert doc[away[0]]["ok"]
    late = [t for t in away if not doc[t]["ok"]]
    assert len(late) >= 8  # one done, at most one more before the stop
    skipped = [t for t in late if doc[t]["skipped"]]
    assert skipped, late
    for tenant in skipped:
        assert doc[tenant]["error"].startswith(f"server {fleet.second_label} unreachable: ")


# ---- per-server logins -------------------------------------------------------------------------

SECOND_PASSWORD = "S3cond:server/pass@word%"


def _login_section(fleet, body: str) -> None:
    ini = fleet.project.root / "alembic.ini"
    ini.write_text(ini.read_text() + f"\n[grapevine server {fleet.second_label}]\n{body}")


def test_a_server_reads_its_login_from_the_variables_alembic_ini_names(fleet, second_server):
    pg.query(second_server, None, "CREATE ROLE fleet_migrator LOGIN PASSWORD %s", (SECOND_PASSWORD,))
    try:
        for tenant in ("w1", "w2"):
            fleet.add(tenant, fleet.second_label)
            pg.query(second_server, None, f"CREATE DATABASE db_{tenant} OWNER fleet_migrator")
            fleet.on_second.append(f"db_{tenant}")
        fleet.add("h1")
        _login_section(fleet, "user_env = FLEET_USER\npassword_env = FLEET_PASSWORD\n")
        login = {"FLEET_USER": "fleet_migrator", "FLEET_PASSWORD": SECOND_PASSWORD}
        result = fleet.project.cli("migrate", "--all-tenants", "--json", env=login)
        assert result.returncode == 0, result.stdout + result.stderr
        owner = pg.query(second_server, "db_w1", "SELECT tableowner FROM pg_tables WHERE tablename = 'alembic_version'")
        assert owner == [("fleet_migrator",)]  # written with the server's own login
        unset = fleet.project.cli("status", "--json", env={"FLEET_USER": "fleet_migrator", "FLEET_PASSWORD": None})
        doc = _by_tenant(_json(unset))
        assert doc["w1"]["error"] == f"server {fleet.second_label}: FLEET_PASSWORD (named in alembic.ini) is not set"
        assert doc["h1"]["ok"]
        wrong = fleet.project.cli("status", "--debug", env={**login, "FLEET_PASSWORD": SECOND_PASSWORD + "x"})
        assert wrong.returncode == 1 and "password authentication failed" in wrong.stdout
        for output in (result, unset, wrong):
            assert SECOND_PASSWORD not in output.stdout + output.stderr
    finally:
        for database in fleet.on_second:
            pg.drop_database(second_server, database)
        fleet.on_second.clear()
        pg.query(second_server, None, "DROP ROLE fleet_migrator")


@pytest.mark.parametrize("body, message", [
    ("password = hunter2\n", "never write a password in alembic.ini"),
    ("user = someone\n", "unknown key 'user'"),
])
def test_a_login_section_with_a_password_or_unknown_key_is_refused(fleet, body, message):
    _login_section(fleet, body)
    result = fleet.project.cli("status")
    assert result.returncode == 2
    assert message in result.stderr and "hunter2" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_command_printed_for_a_tenant_on_another_server_names_that_server(fleet, second_server):
    from test_cli_lost_version import PREVIOUS

    fleet.add("w0", fleet.second_label, create_on=second_server)
    placed = ("-n", "tenant", "-x", "tenant=w0", "-x", f"server={fleet.second_label}")
    assert fleet.project.alembic(*placed, "upgrade", "head").returncode == 0
    [head_file] = fleet.project.migrations("tenant").glob(f"{HEAD}_*.sql")
    head_file.unlink()  # a branch switch: w0's head is a version no file has
    refused = fleet.project.alembic(*placed, "upgrade", "head")
    command = f"alembic -c alembic.ini {' '.join(placed)} stamp --purge {PREVIOUS}"
    assert refused.returncode != 0 and f"with: {command}" in refused.stderr, refused.stderr
    pasted = fleet.project.alembic(*command.split()[3:])  # without it, the default tenant server has no db_w0
    assert pasted.returncode == 0, pasted.stderr
    assert fleet.version(second_server, "w0") == PREVIOUS
