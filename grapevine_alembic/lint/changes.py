"""``check --changed-since REV``: which migration files a branch adds or edits, asked of git.

Changed means added or modified between the point where the branch left REV
(``git merge-base REV HEAD``) and the working tree, untracked files included: in a pull
request, exactly the files the pull request brings.  The newest migration *at REV itself*
tells which of them would run out of order once merged.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..files.discovery import is_migration_name
from ..errors import UsageError


@dataclass(frozen=True)
class Changes:
    rev: str
    files: frozenset[Path]  # absolute paths of added or modified files under the project root

    def __contains__(self, path: Path) -> bool:
        return Path(path).resolve() in self.files


def changed_files(root: Path, rev: str) -> Changes:
    """Files added or modified since ``rev`` (from its merge base with HEAD), untracked included."""
    _git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", what=f"unknown revision {rev!r}")
    base = _git(root, "merge-base", rev, "HEAD", what=f"{rev} and HEAD share no history").strip()
    diff = _git(root, "diff", "--name-only", "--no-renames", "--diff-filter=AM", "--relative", "-z", base, "--")
    untracked = _git(root, "ls-files", "--others", "--exclude-standard", "-z", "--")
    names = [name for name in (diff + untracked).split("\0") if name]
    return Changes(rev, frozenset((root / name).resolve() for name in names))


def names_at(root: Path, rev: str, folder: Path) -> set[str]:
    """Names of the files directly in ``folder`` as it is at ``rev``."""
    try:
        relative = folder.resolve().relative_to(root.resolve())
    except ValueError:
        raise UsageError(f"--changed-since: {folder} is outside the project at {root}") from None
    listing = _git(root, "ls-tree", "--name-only", "-z", rev, "--", f"{relative.as_posix()}/")
    return {name.rsplit("/", 1)[-1] for name in listing.split("\0") if name}


def newest_version(names: set[str]) -> str | None:
    """The newest migration version among file ``names`` (None if none is a migration)."""
    return max((name[:14] for name in names if is_migration_name(name)), default=None)


def _git(root: Path, *args: str, what: str | None = None) -> str:
    """Output of one git command run in ``root``; a UsageError with git's reason otherwise."""
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except OSError as err:
        raise UsageError(f"--changed-since needs git: {err.strerror or err}") from err
    if done.returncode != 0:
        said = next((line.strip() for line in done.stderr.splitlines() if line.strip()), "")
        reason = what or said or f"git {args[0]} failed"
        if what and "not a git repository" in done.stderr:
            reason = f"{root} is not in a git repository"
        raise UsageError(f"--changed-since: {reason}")
    return done.stdout


def repository_prefix(root: Path) -> str:
    """The project root's path inside its git repository ("" at the top or outside git), for annotations."""
    try:
        done = subprocess.run(["git", "rev-parse", "--show-prefix"], cwd=root, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL)
    except OSError:
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""
