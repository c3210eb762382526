"""The embedded server is never a silent stand-in for production: without a URL,
a run that is not on a terminal exits 2 naming CONTROL_DATABASE_URL, unless the embedded server was
asked for (`dev up` or another dev command, --embedded, GRAPEVINE_EMBEDDED=1, or a server already
started for this project); a person at a terminal still gets it; README's first command works as
written in a non-interactive shell."""

from __future__ import annotations

import re
import subprocess

from project import BIN, REPO, ScratchProject
from terminal import on_terminal

NAMED = "error: CONTROL_DATABASE_URL is not set"


def test_a_run_without_url_off_a_terminal_is_an_error_and_starts_nothing(bare):
    project, env = bare
    for args in (["migrate", "--control", "--all-tenants"], ["mark", "--DANGEROUS-apply-all", "--control", "--force"]):
        result = project.cli(*args, env=env)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        [line] = result.stderr.strip().splitlines()
        assert line.startswith(NAMED) and "dev up" in line and "GRAPEVINE_EMBEDDED=1" in line
    via_alembic = project.alembic("-n", "control", "upgrade", "head", env=env)
    assert via_alembic.returncode != 0 and "CONTROL_DATABASE_URL is not set" in via_alembic.stderr
    assert "Traceback" not in via_alembic.stderr
    assert not (project.root / ".grapevine").exists()  # no server was started, no state written


def test_asking_for_the_embedded_server_in_each_way(bare):
    project, env = bare
    by_option = project.cli("--embedded", "migrate", "--control", env=env, timeout=180)
    assert by_option.returncode == 0, by_option.stderr
    assert "using the embedded PostgreSQL" in by_option.stderr
    assert project.cli("dev", "down", env=env).returncode == 0
    assert project.cli("status", "--control", env=env).returncode == 2  # stopped: no longer "started for this project"
    by_variable = project.cli("migrate", "--control", env={**env, "GRAPEVINE_EMBEDDED": "1"}, timeout=180)
    assert by_variable.returncode == 0, by_variable.stdout + by_variable.stderr
    assert project.cli("dev", "down", env=env).returncode == 0
    up = project.cli("dev", "up", env=env, timeout=180)
    assert up.returncode == 0 and "the embedded PostgreSQL is running: postgresql://" in up.stdout, up.stderr
    assert ":***@" in up.stdout
    started = project.cli("status", "--control", env=env)  # a server started for this project is used
    assert started.returncode == 0, started.stdout + started.stderr
    current = project.alembic("-n", "control", "current", env=env)
    assert current.returncode == 0 and "20250115120000 (head)" in current.stdout, current.stderr


def test_in_ci_even_a_terminal_does_not_start_it_unasked(bare):
    project, env = bare
    result = project.cli("status", env={**env, "CI": "true"})
    assert result.returncode == 2
    assert result.stderr.strip() == "error: CONTROL_DATABASE_URL is not set (set it in the environment or in .env)"


def test_a_person_at_a_terminal_gets_the_embedded_server_as_before(bare):
    project, env = bare
    del project.env["CONTROL_DATABASE_URL"]  # on_terminal runs with project.env (less CI)
    run = on_terminal(project, "migrate --control")
    assert run.code == 0, run.screen
    assert "using the embedded PostgreSQL" in run.screen


def test_the_readme_first_command_works_in_a_non_interactive_shell(bare):
    """README's first line, after its venv and pip steps (this suite's venv has the package)."""
    project, env = bare
    text = (REPO / "README.md").read_text()
    first = re.search(r"```sh\n(.+?)\n```", text).group(1)
    steps = [step.strip() for step in first.split("&&")]
    assert steps[0].startswith("python3 -m venv .venv") and "pip install" in steps[1]
    assert len(first.splitlines()) == 1
    command = " && ".join(steps[2:]).replace(".venv/bin/", f"{BIN}/")
    merged = {k: v for k, v in {**project.env, **env}.items() if v is not None}
    result = subprocess.run(["bash", "-c", command], cwd=project.root, env=merged, stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "db_initech" in result.stdout


READ_ONLY = (["status"], ["status", "--control"], ["drift", "--control"], ["check", "--against-db"],
             ["schema", "check", "--control"])
NOT_RUNNING = ("error: CONTROL_DATABASE_URL is not set and the embedded local server is not running; a read-only"
               " command never starts it: run `grapevine-migrations dev up` first, or set CONTROL_DATABASE_URL")


def test_read_only_commands_never_start_the_embedded_server(bare):
    project, env = bare
    asked = {**env, "GRAPEVINE_EMBEDDED": "1"}
    del project.env["CONTROL_DATABASE_URL"]  # on_terminal runs with project.env (less CI)
    for args in READ_ONLY:
        for where in ("pipe", "asked", "--embedded"):
            run = project.cli(*(["--embedded", *args] if where == "--embedded" else args), env=asked if where == "asked" else env)
            assert run.returncode == 2 and run.stderr.strip() == NOT_RUNNING, (args, where, run.stdout, run.stderr)
        at_terminal = on_terminal(project, " ".join(args))  # a person at a terminal: still only the line
        assert at_terminal.code == 2 and NOT_RUNNING in at_terminal.screen, (args, at_terminal.screen)
        assert "using the embedded PostgreSQL" not in at_terminal.screen
    assert not (project.root / ".grapevine").exists()  # nothing started, no state written
    listed = project.cli("list", env=env)  # needs no database at all
    assert listed.returncode == 0 and "20250101090000" in listed.stdout, listed.stderr
    assert project.cli("dev", "up", env=env, timeout=180).returncode == 0
    assert project.cli("migrate", "--control", env=env).returncode == 0
    for args, shown in ((["status", "--control"], "grapevine_control"), (["drift", "--control"], "1 match")):
        run = project.cli(*args, env=env)  # a running server is used as before
        assert run.returncode == 0 and shown in run.stdout, (args, run.stdout, run.stderr)


def test_opening_parent_folders_to_the_server_account_is_said_once(bare, tmp_path, pg_server, make_db):
    import os

    if os.geteuid() != 0:
        import pytest

        pytest.skip("only root runs the server as another account")
    _, env = bare
    private = tmp_path / "private"
    (private / "proj").mkdir(parents=True)
    private.chmod(0o700)  # closed to others: the server account cannot reach the data below it
    project = ScratchProject(private / "proj", pg_server, make_db)
    try:
        first = project.cli("dev", "up", env=env, timeout=180)
        assert first.returncode == 0, first.stderr
        [line] = [line for line in first.stderr.splitlines() if line.startswith("opened ")]
        assert f"{private}," in line or f"{private} " in line, line
        assert line.endswith("to the system account grapevine_pg (o+x) so the embedded server can reach its data")
        assert project.cli("dev", "down", env=env).returncode == 0
        again = project.cli("dev", "up", env=env, timeout=180)  # already open: not said again
        assert again.returncode == 0 and str(private) not in again.stderr, again.stderr
    finally:
        project.cli("dev", "down", env=env)
