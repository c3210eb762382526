"""What a whole pytest run builds once and its xdist workers share: one initdb'd cluster, one wheel.

The first worker to ask builds under a file lock; the others wait for it and reuse the result. The
folder is the run's base temp folder (under xdist the parent of each worker's own), so a run never
sees another run's leftovers.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path


def folder(tmp_path_factory) -> Path:
    """The folder shared by the run's workers (the run's own base temp folder without xdist)."""
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "shared"
    shared.mkdir(exist_ok=True)
    return shared


@contextmanager
def locked(path: Path):
    """An exclusive lock on ``path`` (created) for as long as the block runs; other processes wait."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def once(tmp_path_factory, name: str, build) -> dict:
    """``build(folder)`` -> a JSON-able dict, run by the first worker only; every worker gets the dict."""
    shared = folder(tmp_path_factory)
    done = shared / f"{name}.json"
    with locked(shared / f"{name}.lock"):
        if not done.exists():
            where = shared / name
            shutil.rmtree(where, ignore_errors=True)  # what a worker's failed (timed out) build left
            where.mkdir()
            done.write_text(json.dumps(build(where)))
    return json.loads(done.read_text())


def copy_tree(source: Path, target: Path) -> None:
    """A copy keeping owners and modes (a data directory belongs to the server's account)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", str(source), str(target)], check=True, timeout=300)
