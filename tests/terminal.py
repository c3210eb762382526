"""Runs the CLI on a pseudo-terminal, as a person at a terminal would: prompts, colour, progress."""

from __future__ import annotations


class Run:
    def __init__(self, screen: str, code: int):
        self.screen, self.code = screen, code


def on_terminal(project, args: str, keys: str = "", *, after: str = "[y/N]", cols: int = 200) -> Run:
    """Run the CLI on a pseudo-terminal; type ``keys`` once ``after`` is on the screen (or it exited)."""
    import fcntl
    import os
    import pty
    import select
    import struct
    import termios
    import time

    from project import BIN

    env = {**{k: v for k, v in project.env.items() if k != "CI"}, "TERM": "xterm-256color"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: the CLI on the terminal
        import signal

        # As a user's shell starts it: a suite started in the background (CI) inherits an ignored
        # SIGINT, and a terminal's Ctrl-C would then never reach the program.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGQUIT, signal.SIG_DFL)
        os.chdir(project.root)
        os.execve(str(BIN / "grapevine-migrations"), ["grapevine-migrations", *args.split()], env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, cols, 0, 0))
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
        if keys and (not typed or again) and after.encode() in screen:
            os.write(fd, keys.encode())
            typed = time.monotonic()
    else:
        os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return Run(screen.decode(errors="replace").replace("\r", ""), os.waitstatus_to_exitcode(status))
