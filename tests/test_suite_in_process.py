"""``project.cli`` and ``project.alembic`` run in the test process (tests/inprocess.py): they must answer
exactly as the real executables do, and leave the test process as they found it."""

from __future__ import annotations

import logging
import os
import re
import signal
import sys

import pytest

COMMANDS = [
    ("cli", ["list", "--control"]),
    ("cli", ["status", "--tenant", "nope"]),
    ("cli", ["status", "--all-tenants", "--json"]),
    ("cli", ["migrate", "--bogus-option"]),
    ("alembic", ["-n", "control", "current"]),
    ("alembic", ["-n", "control", "upgrade", "no_such_revision"]),
]


@pytest.mark.parametrize(("road", "args"), COMMANDS, ids=[" ".join(a) for _, a in COMMANDS])
def test_in_process_commands_answer_like_the_real_executables(project, road, args):
    project.migrate_control()
    project.add_tenant("acme")
    run = getattr(project, road)
    inside, real = run(*args), run(*args, subprocess=True)
    assert (inside.returncode, _untimed(inside.stdout), inside.stderr) == (real.returncode, _untimed(real.stdout),
                                                                           real.stderr)


def _untimed(text: str) -> str:
    return re.sub(r'"seconds": [0-9.]+', '"seconds": _', text)  # how long a database took differs run to run


def test_in_process_commands_leave_the_test_process_as_they_found_it(project):
    (project.root / ".env").write_text("GRAPEVINE_FROM_DOTENV=1\nthis line is garbage\n")
    before = _process_state()
    migrated = project.cli("migrate", "--control")
    upgraded = project.alembic("-n", "control", "upgrade", "head")  # env.py runs logging.config.fileConfig
    assert migrated.returncode == 0 and upgraded.returncode == 0, migrated.stderr + upgraded.stderr
    assert "warning: .env:" in migrated.stderr  # the .env was read (and its garbage line reported) ...
    assert _process_state() == before  # ... yet no variable, folder, path, stream, handler or log level stayed behind


def _process_state() -> tuple:
    root = logging.getLogger()
    return (dict(os.environ), os.getcwd(), list(sys.path), sys.stdin, sys.stdout, sys.stderr,
            signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM), list(root.handlers), root.level)


def test_in_process_stdin_is_never_a_terminal(project):
    """Like CI's stdin: a confirmation is refused for want of a terminal, even with an answer to read."""
    project.migrate_control()
    project.add_tenant("acme")
    args = ("mark", "--DANGEROUS-apply-all", "--tenant", "acme")
    inside, real = project.cli(*args, input="y\n"), project.cli(*args, input="y\n", subprocess=True)
    assert (inside.returncode, inside.stdout, inside.stderr) == (real.returncode, real.stdout, real.stderr)
    assert inside.returncode == 2 and "no terminal to ask on" in inside.stderr, inside.stderr
    assert project.version("db_acme") is None


def test_a_second_command_in_one_process_masks_only_its_own_secrets(project):
    """cli.main() run twice in one process (the tests, a Python caller): the first command's passwords
    are not the second's, or the second masks ordinary text (and once suppressed its --json failure document)."""
    project.migrate_control()
    project.add_tenant("acme")
    first = project.cli("status", "--all-tenants", env={"PGPASSWORD": "db_acme"})
    second = project.cli("status", "--all-tenants")
    assert "db_acme" not in first.stdout and "***" in first.stdout, first.stdout  # masked while it was a password
    assert "db_acme" in second.stdout, second.stdout
