"""The unprivileged system account the server runs as when we are root, and the file modes it needs.

PostgreSQL refuses to run as root (CI containers often are root): the data directory is handed to
``SYSTEM_USER``, created on first use, and the wheel's files and the path to the data are opened to it.
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import time
from pathlib import Path
from typing import Callable

from ..errors import ConfigError

SYSTEM_USER = "grapevine_pg"


class Account:
    """The unprivileged system account the server runs as when we are root."""

    __slots__ = ("name", "uid", "gid")  # a plain class: dataclasses would slow down the import

    def __init__(self, name: str, uid: int, gid: int) -> None:
        self.name, self.uid, self.gid = name, uid, gid

    def run_kwargs(self) -> dict:
        """Keyword arguments for subprocess.run that drop root (including root's groups)."""
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def server_account(say: Callable[[str], None] | None = None) -> Account | None:
    """None when we may run PostgreSQL ourselves; as root, the dedicated system account.

    ``say`` hears, once, that the account was created: a change to the machine nobody asked for by name.
    """
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        entry = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        entry = create_system_user()
        if say:
            say(f"PostgreSQL refuses to run as root: created the system account {SYSTEM_USER} to run the embedded server")
    return Account(SYSTEM_USER, entry.pw_uid, entry.pw_gid)


def open_path_to(account: Account | None, folder: Path, say: Callable[[str], None] | None = None) -> bool:
    """As root, open ``folder`` and its parents (o+x) to the server account; ``say`` names what was opened."""
    if account is None:
        return False
    opened = make_traversable(folder)
    if opened and say:
        names = ", ".join(str(path) for path in opened)
        say(f"opened {names} to the system account {account.name} (o+x) so the embedded server can reach its data")
    return bool(opened)


def create_system_user():
    """Create the system account (PostgreSQL refuses to run as root); tolerate a parallel creator."""
    import pwd

    shell = "/usr/sbin/nologin" if Path("/usr/sbin/nologin").exists() else "/bin/false"
    cmd = ["useradd", "--system", "--user-group", "--no-create-home",
           "--home-dir", "/nonexistent", "--shell", shell, SYSTEM_USER]
    for _ in range(5):
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        except FileNotFoundError as err:
            raise ConfigError(
                f"PostgreSQL cannot run as root and useradd is missing; create a user {SYSTEM_USER!r}"
            ) from err
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(SYSTEM_USER)  # ours, or created by another test worker meanwhile
        time.sleep(0.2)  # useradd fails while another useradd holds /etc/passwd's lock
    raise ConfigError(f"could not create system user {SYSTEM_USER!r}: {result.stderr.strip()}")


def make_traversable(path: Path) -> list[Path]:
    """Add o+x to path and all its parents so the server account can reach what is below.

    Returns the folders that had to change (empty: nothing did).
    """
    changed = []
    for directory in (path, *path.parents):
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            directory.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
            changed.append(directory)
    return changed


def empty_dir(directory: Path) -> None:
    """Delete everything inside directory, keeping the directory itself."""
    import shutil

    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


_wheel_opened: set[Path] = set()


def open_wheel_to_others(bin_dir: Path) -> None:
    """Let the server account read the wheel (a root pip with umask 077 leaves it private)."""
    prefix = bin_dir.parent
    if prefix in _wheel_opened:
        return
    make_traversable(prefix)
    for sub in ("bin", "lib", "share"):
        for root, dirs, files in os.walk(prefix / sub):
            add_mode(Path(root), stat.S_IROTH | stat.S_IXOTH)
            for name in files:
                path = Path(root) / name
                if not path.is_symlink():
                    add_mode(path, stat.S_IROTH | (stat.S_IXOTH if sub == "bin" else 0))
    _wheel_opened.add(prefix)


def add_mode(path: Path, bits: int) -> None:
    """chmod only when bits are missing, so a read-only install that is already fine works."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & bits != bits:
        path.chmod(mode | bits)
