"""Confirmation prompts come after the targets are resolved and name what they change; declining
and Ctrl-C at the prompt both exit 2 with nothing changed.  Run on a pseudo-terminal."""

from __future__ import annotations

import pytest


class Run:
    def __init__(self, screen: str, code: int):
        self.screen, self.code = screen, code


def _on_terminal(project, args: str, keys: str, *, after: str = "[y/N]") -> Run:
    """Run the CLI on a pseudo-terminal; type ``keys`` once ``after`` is on the screen (or it exited)."""
    import fcntl
    import os
    import pty
    import select
    import struct
    import termios
    import time

    from project import BIN

    env = {k: v for k, v in project.env.items() if k != "CI"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: the CLI on the terminal
        os.chdir(project.root)
        os.execve(str(BIN / "grapevine-migrations"), ["grapevine-migrations", *args.split()], env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))
    screen, typed = b"", 0.0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            screen += chunk
        # A Ctrl-C that lands while the prompt is still setting up the line can be lost: repeat it
        # until the program reacts (a second one at a prompt means the same as the first).
        again = keys == "\x03" and typed and time.monotonic() - typed > 1.0
        if (not typed or again) and after.encode() in screen:
            os.write(fd, keys.encode())
            typed = time.monotonic()
    else:
        os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return Run(screen.decode(errors="replace").replace("\r", ""), os.waitstatus_to_exitcode(status))


@pytest.fixture
def fleet(project):
    project.migrate_control()
    project.add_tenant("acme")
    project.add_tenant("globex")
    return project


def test_apply_all_names_the_databases_and_heads_before_asking(fleet):
    run = _on_terminal(fleet, "mark --DANGEROUS-apply-all --all-tenants", "n\n")
    screen = run.screen
    assert "in 2 database(s): db_acme, db_globex?" in screen and "tenant head 20250201080000" in screen, screen
    assert run.code == 2 and "nothing was changed" in screen
    assert fleet.version("db_acme") is None


def test_an_unknown_tenant_fails_before_the_question(fleet):
    run = _on_terminal(fleet, "mark --DANGEROUS-apply-all --tenant nope", "y\n")
    screen = run.screen
    assert "unknown tenant nope" in screen and "[y/N]" not in screen and run.code == 2, screen


@pytest.mark.parametrize("args", ["mark --DANGEROUS-apply-all --tenant acme", "reset --tenant acme"])
def test_ctrl_c_at_the_prompt_exits_like_declining(fleet, args):
    assert fleet.cli("migrate", "--tenant", "acme").returncode == 0
    run = _on_terminal(fleet, args, "\x03")
    screen = run.screen
    assert run.code == 2 and "nothing was changed" in screen and "Traceback" not in screen, screen
    assert fleet.version("db_acme") == "20250201080000"
    assert "users" in fleet.tables("db_acme")
