"""The suite stands on its own: its own fixture chains (a team's migrations never break it), and a
killed test run leaves no PostgreSQL behind."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pg import is_external
from project import REPO

TESTS = Path(__file__).resolve().parent


@pytest.fixture
def local_only(pg_server):
    if is_external(pg_server):
        pytest.skip("starts its own local server")


# What tests/conftest.py needs beside it, for the child pytest runs below.
HELPERS = ("conftest.py", "pg.py", "project.py", "server_guard.py", "installed_package.py", "scheduling.py", "run_shared.py",
           "temp_root.py")


def _child_env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith(("TEST_DATABASE_URL", "PYTEST_"))}


def test_a_killed_test_run_leaves_no_server_behind(tmp_path, local_only):
    for name in HELPERS:
        shutil.copy(TESTS / name, tmp_path / name)
    (tmp_path / "test_hang.py").write_text(
        "import time\n\n"
        "def test_hang(pg_server):\n"
        "    print('READY', pg_server.data_dir, flush=True)\n"
        "    time.sleep(600)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-s", "-q", "-p", "no:cacheprovider", f"--basetemp={tmp_path / 'bt'}",
         "test_hang.py"],
        cwd=tmp_path, env=_child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        for line in proc.stdout:
            if "READY" in line:
                data_dir = Path(line.split("READY", 1)[1].strip())
                break
        else:
            pytest.fail("the child test run never started its server")
        postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
        assert Path(f"/proc/{postmaster}").exists()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{postmaster}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not Path(f"/proc/{postmaster}").exists(), "the postmaster outlived the killed test run"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_the_suite_ignores_the_projects_own_migrations(tmp_path, local_only):
    """A copy of the repository with a team's own files added: a representative subset still passes."""
    copy = tmp_path / "repo"
    # without what other workers write into the checkout meanwhile (the wheel's build folders come and go)
    shutil.copytree(REPO, copy, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", ".grapevine", "node_modules",
                                                              "build", "dist", "*.egg-info", "grapevine_alembic-*"))
    (copy / "migrations" / "tenant" / "20261126123707_team_change.sql").write_text(
        "BEGIN;\nCREATE TABLE team_table (id int);\nCOMMIT;\n")
    (copy / "migrations" / "control" / "20261126123708_team_control.sql").write_text("SELECT 1/0;\n")
    subset = ["tests/test_cli_commands.py::test_migrate_control_and_all_tenants", "tests/test_cli_commands.py::test_list_shows_both_chains_in_order",
              "tests/test_cli_commands.py::test_status_exit_codes_pending_then_up_to_date",
              "tests/test_alembic_bridge.py::test_migrate_path_is_the_one_alembic_computes"]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n0", "-p", "no:cacheprovider", f"--basetemp={tmp_path / 'bt'}", *subset],
        cwd=copy, env=_child_env(), capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert " passed" in run.stdout and "deselected" not in run.stdout


def test_the_suite_runs_on_workers_adds_up_their_counts_and_prints_its_ten_slowest_tests(tmp_path):
    """The README's command as configured in pyproject.toml: xdist workers, each worker's guarantee counts
    added up at the end, and the ten slowest tests printed on every run."""
    (tmp_path / "tests").mkdir()
    for name in HELPERS:
        shutil.copy(TESTS / name, tmp_path / "tests" / name)
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    for part in "abc":  # three files: whole files go to the workers
        (tmp_path / "tests" / f"test_counted_{part}.py").write_text(
            "import pytest\n\n"
            "@pytest.mark.parametrize('n', range(4))\n"
            "def test_counted(tally, n):\n"
            "    tally('kills')\n"
        )
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--basetemp={tmp_path / 'bt'}"],
                         cwd=tmp_path, env={**_child_env(), "CI": "true"}, stdin=subprocess.DEVNULL,  # as .ci/run
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "12 passed" in run.stdout and "slowest 10 durations" in run.stdout, run.stdout[-3000:]
    assert " workers [12 items]" in run.stdout, run.stdout[-3000:]  # spread over pytest-xdist workers
    assert "kills: 12" in run.stdout, run.stdout[-3000:]  # every worker's count, not the controller's zero
    # The longest recorded file is collected (so handed to a worker) first, whatever its name.
    (tmp_path / "tests" / "file_durations.json").write_text('{"tests/test_counted_b.py": 9.0, "tests/test_counted_a.py": 1.0}')
    listed = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "0", "--collect-only", "-q"],
                            cwd=tmp_path, env=_child_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=300)
    files = list(dict.fromkeys(line.split("::")[0] for line in listed.stdout.splitlines() if "::" in line))
    assert files == ["tests/test_counted_b.py", "tests/test_counted_c.py", "tests/test_counted_a.py"], listed.stdout
