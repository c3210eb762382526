"""When `migrate` reports a database done (or failed after some files), what it applied is on disk.

Each file's commit may return before its WAL is flushed (``synchronous_commit = off``); the
run's last commit must not.  Measured on a server of its own whose WAL writer waits 10 s
before flushing asynchronous commits and whose ``synchronous_commit`` is off: there, only
the tool's own durable commit can have flushed the WAL by the time the CLI exits.  The LSN
of the version row's page (the last thing the run writes) must then be at or below the
flush LSN.
"""

from __future__ import annotations

import time

import pytest

import pg
from project import ScratchProject

LAZY_WAL = {
    "synchronous_commit": "off",  # the server's own setting: the tool must raise it for its last commit
    "wal_writer_delay": "10s",
    "wal_writer_flush_after": "1GB",
    "autovacuum": "off",
    "wal_level": "minimal",  # no standby snapshots written in the background
    "max_wal_senders": "0",
}


@pytest.fixture(scope="module")
def lazy_server(tmp_path_factory, pg_server):
    yield from pg.own_server(tmp_path_factory, pg_server, "pg-lazy", "needs a local server with a lazy WAL writer", settings=LAZY_WAL)


@pytest.fixture
def lazy_project(tmp_path, lazy_server):
    factory = pg.DatabaseFactory(lazy_server)
    root = tmp_path / "proj"
    root.mkdir()
    project = ScratchProject(root, lazy_server, factory)
    project.migrate_control()
    yield project
    factory.close()


def _tenant(project, tenant_id: str) -> str:
    database = project.add_tenant(tenant_id)
    project.query(database, "CREATE EXTENSION pageinspect")  # a durable commit of its own, before the run
    return database


def _version_page_flushed(project, database: str) -> tuple[bool, str, str]:
    [(flushed, page_lsn, flush_lsn)] = project.query(
        database,
        "SELECT h.lsn <= pg_current_wal_flush_lsn(), h.lsn::text, pg_current_wal_flush_lsn()::text"
        " FROM page_header(get_raw_page('public.alembic_version', 0)) AS h",
    )
    return flushed, page_lsn, flush_lsn


def test_migrate_reports_done_only_after_a_durable_commit(lazy_project):
    """The fixture chain ends with a CREATE INDEX CONCURRENTLY file: its record commits on its own."""
    project = lazy_project
    database = _tenant(project, "durable")
    assert project.query(database, "SHOW synchronous_commit") == [("off",)]
    result = project.cli("migrate", "--tenant", "durable")
    assert result.returncode == 0, result.stderr
    flushed, page_lsn, flush_lsn = _version_page_flushed(project, database)
    assert flushed, f"the run's last write (page LSN {page_lsn}) is not flushed (flush LSN {flush_lsn})"
    assert project.version(database) == "20250201080000"


def test_a_failed_run_makes_the_files_it_applied_durable(lazy_project):
    project = lazy_project
    database = _tenant(project, "halfway")
    project.write("tenant", "20250301000000_fails.sql", "BEGIN;\nCREATE TABLE broken (x int);\nSELECT 1/0;\nCOMMIT;\n")
    result = project.cli("migrate", "--tenant", "halfway")
    assert result.returncode == 1
    assert "division by zero" in result.stdout + result.stderr
    assert project.version(database) == "20250201080000"
    flushed, page_lsn, flush_lsn = _version_page_flushed(project, database)
    assert flushed, f"the applied files (page LSN {page_lsn}) are not flushed (flush LSN {flush_lsn})"


def _backend_wal_writes(project, database: str) -> int:
    """WAL writes by client backends so far, once no session is left on ``database`` (its stats are in).

    A commit that waits for the flush writes the WAL itself (the server runs with fsync off, so
    writes, not fsyncs, are what it counts); an asynchronous one leaves that to the WAL writer."""
    for _ in range(200):
        if not project.query("postgres", "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (database,))[0][0]:
            break
        time.sleep(0.05)
    [(writes,)] = project.query(
        "postgres", "SELECT sum(writes)::int FROM pg_stat_io WHERE object = 'wal' AND backend_type = 'client backend'"
    )
    return writes


_AFTER_THE_INDEX = {
    # (the file, what its own transaction after the index sees)
    "database's setting": ("CREATE INDEX CONCURRENTLY items_x ON items (x);\n", "on"),
    "file's own SET": ("-- grapevine: no-transaction\nCREATE INDEX CONCURRENTLY items_x ON items (x);\n"
                       "SET synchronous_commit = local;\n", "local"),
}


@pytest.mark.parametrize("case", sorted(_AFTER_THE_INDEX))
def test_a_statement_outside_a_transaction_commits_without_waiting_and_the_session_setting_returns(lazy_project, case):
    """CREATE INDEX CONCURRENTLY commits three times as it runs: none of them waits for the flush, the
    run's last commit does.  The database asks for synchronous_commit = on; the file's own transaction
    after the index sees that setting again, or the one the file set after the index."""
    body, expected = _AFTER_THE_INDEX[case]
    project = lazy_project
    database = _tenant(project, f"concurrent_{expected}")
    project.query("postgres", f'ALTER DATABASE "{database}" SET synchronous_commit = on')
    project.clear("tenant")
    project.write("tenant", "20250101000000_table.sql", "CREATE TABLE items (x int);\n")
    project.write("tenant", "20250102000000_index.sql",
                  body + "BEGIN;\nCREATE TABLE seen AS SELECT current_setting('synchronous_commit') AS value;\nCOMMIT;\n")
    before = _backend_wal_writes(project, database)
    result = project.cli("migrate", "--tenant", f"concurrent_{expected}")
    assert result.returncode == 0, result.stderr
    writes = _backend_wal_writes(project, database) - before
    assert writes == 1, f"{writes} WAL writes by the run's backend: only its last commit should wait for one"
    assert project.query(database, "SELECT value FROM seen") == [(expected,)]
    flushed, page_lsn, flush_lsn = _version_page_flushed(project, database)
    assert flushed, f"the run's last write (page LSN {page_lsn}) is not flushed (flush LSN {flush_lsn})"
    assert project.version(database) == "20250102000000"
