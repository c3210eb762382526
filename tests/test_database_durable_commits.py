"""When `migrate` reports a database done (or failed after some files), what it applied is on disk.

Each file's commit may return before its WAL is flushed (``synchronous_commit = off``); the
run's last commit must not.  Measured on a server of its own whose WAL writer waits 10 s
before flushing asynchronous commits and whose ``synchronous_commit`` is off: there, only
the tool's own durable commit can have flushed the WAL by the time the CLI exits.  The LSN
of the version row's page (the last thing the run writes) must then be at or below the
flush LSN.
"""

from __future__ import annotations

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
