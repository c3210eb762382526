"""Progress a person can plan with: done/total, failures so far, the rate, an ETA and the wave, as a
live bar at a terminal and as one plain line every few seconds through a pipe (CI, a Job's log)."""

from __future__ import annotations

import re

from terminal import on_terminal

IDS = [f"p{i}" for i in range(6)]
# p0 fails at once; every other tenant takes a while, so the run lasts long enough to be watched
SLOW_BUT_P0 = ("DO $$ BEGIN\n  IF current_database() = 'db_p0' THEN RAISE EXCEPTION 'p0 refuses'; END IF;\n"
               "  PERFORM pg_sleep(0.5);\nEND $$;\n")
ARGS = ("migrate", "--all-tenants", "--max-parallel", "1", "--waves", "2,rest", "--max-failures", "3")
PLAIN = re.compile(r"^(wave \d of 2: )?\d/6 done, \d failed, \d+(\.\d)?/s, ETA (unknown|\d+ s)$")


def _fleet(project):
    project.migrate_control()
    for tenant_id in IDS:
        project.add_tenant(tenant_id)
    project.clear("tenant")
    project.write("tenant", "20240101000000_slow.sql", SLOW_BUT_P0)


def test_piped_progress_is_a_plain_line_every_interval_with_failures_rate_eta_and_wave(project):
    _fleet(project)
    result = project.cli(*ARGS, env={"GRAPEVINE_PROGRESS_INTERVAL": "0.3"})
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if " done, " in line]
    assert len(lines) >= 3, result.stderr
    assert all(PLAIN.match(line) for line in lines), lines
    assert any(re.match(r"wave 2 of 2: [2-5]/6 done, 1 failed, \d\.\d/s, ETA \d+ s$", line) for line in lines), lines
    assert "\x1b" not in result.stderr + result.stdout and "\r" not in result.stderr


def test_piped_progress_waits_the_default_ten_seconds(project):
    _fleet(project)
    result = project.cli(*ARGS)
    assert result.returncode == 1, result.stderr
    assert " done, " not in result.stderr  # a 3-second run ends before the first line is due


def test_terminal_progress_shows_failures_rate_eta_and_wave(project):
    _fleet(project)
    run = on_terminal(project, " ".join(ARGS))
    assert run.code == 1, run.screen[-2000:]
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", run.screen)
    assert re.search(r"migrate wave 2 of 2 .*[2-5]/6 1 failed  \d\.\d/s  ETA \d+ s", text), text[-3000:]
