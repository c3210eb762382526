"""A streaming standby of the bench's embedded server, waited for at every durable commit (`run.py --standby`).

Production servers usually run with a synchronous standby (``synchronous_standby_names``): a
commit that waits for its WAL flush then also waits for the standby to flush it.  This copies
the primary with the wheel's ``pg_basebackup -R``, starts it as a hot standby (fsync on) on a
port of its own, and names it in the primary's ``synchronous_standby_names``.  Both servers run
on the same machine, so the standby's work competes for the same cores: an extra measurement
of the production shape, not a figure for a real pair of hosts.
"""

from __future__ import annotations

import os
import shlex
import time
from pathlib import Path

from grapevine_alembic.local.account import server_account
from grapevine_alembic.local.processes import HOST, free_port, postgres_bin_dir, run_tool

NAME = "bench_standby"


class Standby:
    def __init__(self, primary, work: Path):
        self.primary = primary
        self.dir = work / "standby"
        self.passfile = work / "standby.pgpass"
        self.log = self.dir / "server.log"
        self.port = free_port()
        self.account = server_account()
        self.bin = postgres_bin_dir()

    def _own(self, path: Path) -> None:
        if self.account is not None:
            os.chown(path, self.account.uid, self.account.gid)

    def start(self, admin) -> None:
        """Copy the primary, start the copy, and make the primary wait for it at commit."""
        self.dir.mkdir(mode=0o700)
        self._own(self.dir)
        password = self.primary.password.replace("\\", "\\\\").replace(":", "\\:")
        self.passfile.write_text(f"{HOST}:{self.primary.port}:*:{self.primary.superuser}:{password}\n")
        self.passfile.chmod(0o600)
        self._own(self.passfile)
        conninfo = (f"host={HOST} port={self.primary.port} user={self.primary.superuser}"
                    f" passfile={self.passfile} application_name={NAME}")
        self._tool([str(self.bin / "pg_basebackup"), "-D", str(self.dir), "-d", conninfo, "-R",
                    "-X", "stream", "-c", "fast", "--no-sync"], "pg_basebackup")
        options = ["-p", str(self.port), "-c", f"listen_addresses={HOST}", "-c", f"unix_socket_directories={self.dir}",
                   "-c", "fsync=on", "-c", "full_page_writes=on", "-c", "hot_standby=on",
                   "-c", "max_connections=300"]  # as the primary (embedded DEFAULT_SETTINGS): a standby needs at least that
        self._tool([str(self.bin / "pg_ctl"), "-D", str(self.dir), "-w", "-t", "60", "-l", str(self.log),
                    "-o", " ".join(shlex.quote(o) for o in options), "start"], "starting the standby")
        with admin.cursor() as cur:
            cur.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{NAME}'")
            cur.execute("SELECT pg_reload_conf()")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                cur.execute("SELECT sync_state FROM pg_stat_replication WHERE application_name = %s", (NAME,))
                if cur.fetchall() == [("sync",)]:
                    return
                time.sleep(0.1)
        raise SystemExit("the standby did not become synchronous within 60 s; see " + str(self.log))

    def stop(self, admin) -> None:
        with admin.cursor() as cur:
            cur.execute("ALTER SYSTEM RESET synchronous_standby_names")
            cur.execute("SELECT pg_reload_conf()")
        if (self.dir / "postmaster.pid").exists():
            self._tool([str(self.bin / "pg_ctl"), "-D", str(self.dir), "-m", "fast", "-w", "stop"], "stopping the standby")

    def _tool(self, cmd: list[str], what: str) -> None:
        code, output = run_tool(cmd, self.account, timeout=300)
        if code != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise SystemExit(f"{what} failed ({code}):\n{output[-2000:]}\n{log}")
