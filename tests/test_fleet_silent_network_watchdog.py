"""On a silent network short of a failure: a lost answer is retried, a long statement is never cut,
and a signal ends the process within 10 s whatever the network does (the proxy of ``stall``).
"""

from __future__ import annotations

import json
import signal
import time

import pytest

from faultproxy import send_signals
from stall import BASE, CHAIN, HEAD, SILENCE_S, SMALL_BOUNDS, StallRun, StallSetup, start_at_base
from stall import proxy  # noqa: F401 (a fixture)


def test_an_answer_lost_on_a_reachable_server_ends_the_session_and_is_retried(project, proxy, pg_server):
    """Only the open connection hangs (new ones get through), so the watchdog sees the backend idle in
    transaction, ends it at once (its locks go well before the server's own bound, silence + 10 s)
    and the retry applies the file."""
    setup = StallSetup(project, proxy, healthy=1)
    start_at_base(project)
    run = StallRun(project.spawn("migrate", "--all-tenants", env=SMALL_BOUNDS), setup, pg_server,
                   new_connections=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "the server finished the statement and waits for us" in run.stderr, run.stderr  # the retry's line
    done_at = run.reader.done_at
    assert done_at is not None and done_at - run.stalled_at < SILENCE_S + 5, (run.reader.error, done_at)
    assert project.version("db_s1") == HEAD and setup.columns() == {"id", "x", "y"}


SIGNAL_BOUND_S = 10


@pytest.mark.parametrize("signals", [(signal.SIGTERM,), (signal.SIGINT, signal.SIGINT)], ids=["SIGTERM", "Ctrl-C twice"])
def test_signal_during_a_stall_ends_the_process_within_ten_seconds(project, proxy, signals):
    """Default options: the watchdog alone would wait 20 s; the signal may not take longer than 10 s."""
    setup = StallSetup(project, proxy)
    start_at_base(project)
    proc = project.spawn("migrate", "--all-tenants", "--json")
    try:
        setup.stall_when_sleeping()
        time.sleep(1.0)
        signalled_at = send_signals(proc, signals)
        stdout, stderr = proc.communicate(timeout=60)
        ended_at = time.monotonic()
    finally:
        if proc.poll() is None:
            proc.kill()
    print(f"signal to exit {ended_at - signalled_at:.1f}s")
    assert ended_at - signalled_at < SIGNAL_BOUND_S, (ended_at - signalled_at, stderr)
    assert proc.returncode == 130, stderr
    doc = json.loads(stdout)  # the summary, as one document
    assert doc["interrupted"] is True
    by_tenant = {d["tenant"]: d for d in doc["databases"] if d.get("tenant")}
    assert by_tenant["s1"]["ok"] is False and by_tenant["s1"]["error"]
    assert "not starting any more databases" in stderr
    assert project.version("db_s1") == BASE


def test_a_long_statement_through_a_healthy_proxy_is_never_cut(project, proxy):
    """A statement twice as long as the silence timeout runs to its end although the watchdog probes it
    from the first second."""
    long_s = 2 * SILENCE_S
    long_chain = {**CHAIN, "20240102000000_stall.sql": f"ALTER TABLE a ADD COLUMN x int;\nSELECT pg_sleep({long_s});\n"}
    setup = StallSetup(project, proxy, chain=long_chain, healthy=1)
    start_at_base(project)
    started = time.monotonic()
    result = project.cli("migrate", "--all-tenants", env=SMALL_BOUNDS, timeout=180)
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert seconds >= long_s and "stopped answering" not in result.stdout + result.stderr
    assert project.version("db_s1") == HEAD and setup.columns() == {"id", "x"}
    watchdog_probes = project.query(
        "postgres", "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'grapevine-migrations watchdog'")
    assert watchdog_probes == [(0,)]  # the watchdog's connection ends with the run
