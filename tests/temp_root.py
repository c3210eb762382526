"""Where a run's temporary folders go: a memory-backed file system when the machine has one to spare.

Every test database is a CREATE DATABASE (a copy of template1's few hundred files) and a DROP, and
each worker's server writes its WAL and data there. On a disk those writes cost the kernel's journal
and writeback CPU beside the server's own; on tmpfs they are memory copies. Measured on the 2-core
machine, the same four server-heavy test files ran in 94 s with the folders on /dev/shm against
159 s on the disk, and 88 s against 245 s in the other order. A run is throwaway data, so memory is
the right place for it when there is room; GRAPEVINE_TEST_TMP names another folder.
"""

from __future__ import annotations

import os
import tempfile

OVERRIDE = "GRAPEVINE_TEST_TMP"
MEMORY = "/dev/shm"
ROOM_NEEDED = 4 * 1024**3  # the run's servers, projects and installed venvs take under 1 GiB; leave headroom


def is_tmpfs(path: str) -> bool:
    """Whether ``path`` is the mount point of a tmpfs that may run programs (the installed-package tests
    run venvs from the base temp), read from /proc/mounts; False where there is none."""
    try:
        with open("/proc/mounts", encoding="utf-8") as mounts:
            return any(fields[1] == path and fields[2] == "tmpfs" and "noexec" not in fields[3].split(",")
                       for fields in map(str.split, mounts))
    except OSError:
        return False


def free_bytes(path: str) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def temp_root() -> str:
    """The folder a run's private base temp goes under: the override, else /dev/shm when it is a tmpfs
    with room to spare and writable, else the system's temporary folder."""
    chosen = os.environ.get(OVERRIDE)
    if chosen:
        return chosen
    if is_tmpfs(MEMORY) and os.access(MEMORY, os.W_OK) and free_bytes(MEMORY) >= ROOM_NEEDED:
        return MEMORY
    return tempfile.gettempdir()
