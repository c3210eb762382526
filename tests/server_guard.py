"""Stops the suite's PostgreSQL when the pytest process dies, however it dies (SIGKILL included).

A small watcher process in its own session holds the read end of a pipe whose write end only
pytest has.  When pytest exits, the kernel closes that end; the watcher reads EOF and shuts the
postmaster down (SIGQUIT: immediate shutdown; SIGKILL if it lingers).  After a clean stop the
postmaster is already gone and the watcher just exits.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_WATCHER = r"""
import os, signal, sys, time
from pathlib import Path

sys.stdin.buffer.read()  # returns only when the pytest process has gone away
pid_file = Path(sys.argv[1]) / "postmaster.pid"
try:
    pid = int(pid_file.read_text().split()[0])
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
except (OSError, ValueError, IndexError):
    sys.exit(0)  # stopped cleanly already
if b"postgres" not in cmdline:
    sys.exit(0)  # the pid was reused by something else: not ours to kill
os.kill(pid, signal.SIGQUIT)
deadline = time.monotonic() + 10
while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
    time.sleep(0.1)
if Path(f"/proc/{pid}").exists():
    os.kill(pid, signal.SIGKILL)
"""


def guard(data_dir: Path) -> None:
    """Start the watcher for the server in ``data_dir``; it lives as long as this process does."""
    read_end, write_end = os.pipe()
    subprocess.Popen(
        [sys.executable, "-c", _WATCHER, str(data_dir)],
        stdin=read_end, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C or kill of pytest's process group leaves it running
        close_fds=True,
    )
    os.close(read_end)
    os.set_inheritable(write_end, False)  # children (the CLI under test) must not keep the pipe open
    _held.append(write_end)  # never closed by us: the kernel closes it when this process ends


_held: list[int] = []
