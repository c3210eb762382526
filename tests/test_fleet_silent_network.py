"""A server that stops answering mid-file fails its tenant in bounded time on every road.

The tenant's proxy stalls two seconds into its file (``stall``); the run must end, the tenant's
table locks must be released (the application's ``SELECT count(*)`` returns), the other tenants
complete and nothing is half-applied: on the CLI, plain ``alembic`` and the Python API.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest

import pg
from stall import (BASE, HEAD, SMALL_BOUND_S, SMALL_BOUNDS, StallRun, StallSetup, alembic_bin, env_with,
                   start_at_base, summary_rows)
from stall import proxy  # noqa: F401 (a fixture)


def test_stalled_tenant_fails_in_bounded_time_and_releases_its_locks(project, proxy, pg_server):
    """The issue's case, end to end, with the bounds scaled down (the silence timeout is the one knob)."""
    setup = StallSetup(project, proxy)
    start_at_base(project)
    run = StallRun(project.spawn("migrate", "--all-tenants", env=SMALL_BOUNDS), setup, pg_server, timeout=180)
    stdout, stderr, stalled_at, ended_at, reader = run.stdout, run.stderr, run.stalled_at, run.ended_at, run.reader
    assert run.returncode == 1, stdout + stderr
    print(f"stall to exit {ended_at - stalled_at:.1f}s, to lock release {(reader.done_at or 0) - stalled_at:.1f}s")
    assert ended_at - stalled_at < SMALL_BOUND_S, (ended_at - stalled_at, stderr)
    assert reader.error is None and reader.done_at is not None, reader.error
    assert reader.done_at - stalled_at < SMALL_BOUND_S, reader.done_at - stalled_at
    rows = summary_rows(stdout)
    assert rows["s1"][-1] == "FAILED", stdout
    for tenant in setup.healthy:
        assert rows[tenant][-1] == "ok" and project.version(f"db_{tenant}") == HEAD, stdout
    assert "the server stopped answering" in stderr + stdout, stderr  # said when it happened
    assert project.version("db_s1") == BASE and setup.columns() == {"id"}  # nothing half-applied


def test_alembic_road_fails_a_stalled_database_in_bounded_time(project, proxy, pg_server):
    setup = StallSetup(project, proxy, healthy=0)
    start_at_base(project)
    proc = subprocess.Popen(
        [str(alembic_bin()), "-c", "alembic.ini", "-n", "tenant", "-x", "tenant=s1", "-x", f"server={proxy.label}",
         "upgrade", "head"],
        cwd=project.root, env=env_with(project, SMALL_BOUNDS), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    run = StallRun(proc, setup, pg_server)
    assert run.returncode != 0 and run.seconds < SMALL_BOUND_S, (run.seconds, run.stderr)
    assert "the server stopped answering" in run.stderr and "Traceback" not in run.stderr, run.stderr
    done_at = run.reader.done_at
    assert done_at is not None and done_at - run.stalled_at < SMALL_BOUND_S, run.reader.error
    assert project.version("db_s1") == BASE and setup.columns() == {"id"}


API_PROGRAM = textwrap.dedent(
    """
    import json, logging, sys
    from grapevine_alembic.api import migrate_database

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)  # a service's logging: the retries show

    result = migrate_database(sys.argv[1], sys.argv[2])  # bounds from GRAPEVINE_SILENCE_TIMEOUT
    print(json.dumps({"ok": result.ok, "error": result.error, "version": result.version}))
    """
)


def test_api_fails_a_stalled_database_in_bounded_time(project, proxy, pg_server):
    setup = StallSetup(project, proxy, healthy=0)
    start_at_base(project)
    # the retry's connect through the stalled proxy waits out its connect timeout: 3 s, not the default 10
    url = pg.url_for(pg_server, "db_s1").replace(f":{pg_server.port}/", f":{proxy.port}/")
    url += ("&" if "?" in url else "?") + "connect_timeout=3"
    proc = subprocess.Popen([sys.executable, "-c", API_PROGRAM, url, str(project.migrations("tenant"))],
                            cwd=project.root, env=env_with(project, SMALL_BOUNDS), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        stalled_at = setup.stall_when_sleeping()
        stdout, stderr = proc.communicate(timeout=120)
        ended_at = time.monotonic()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    result = json.loads(stdout)
    assert result["ok"] is False and result["version"] == BASE, result
    assert ended_at - stalled_at < SMALL_BOUND_S, ended_at - stalled_at
    assert "the server stopped answering" in stderr, stderr  # the retry, logged


@pytest.mark.parametrize("value", ["0", "-1", "soon", "inf"])
def test_a_bad_silence_timeout_is_one_usage_error(project, value):
    project.migrate_control()
    result = project.cli("migrate", "--all-tenants", env={"GRAPEVINE_SILENCE_TIMEOUT": value})
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"error: GRAPEVINE_SILENCE_TIMEOUT must be a number of seconds greater than 0, not {value!r}"]
