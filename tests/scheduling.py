"""Longest test files first: the order pytest-xdist's ``--dist loadfile`` hands whole files to its workers.

xdist gives the next file in collection order to whichever worker is free (with ``--no-loadscope-reorder``;
by default it orders files by their number of tests, which says little about their time here). Starting
the longest files first keeps one worker from ending the run alone on a long file. The seconds per file
come from a recorded run, kept in ``tests/file_durations.json``; refresh it with
``.venv/bin/python -m pytest -q --record-durations`` (a partial run updates the files it ran only).
"""

from __future__ import annotations

import json
import os
import statistics
from collections import Counter
from pathlib import Path

DURATIONS = Path(__file__).resolve().parent / "file_durations.json"
MOST_WORKERS = 8  # past this the longest file alone bounds the run (about 130 s of 1,390)


def workers(cores: int | None = None) -> int:
    """``-n auto``: two workers a core and one more, at most MOST_WORKERS.

    A worker waits on sleeps, timeouts, restarts and its own server about half of its time, so two a
    core keep the cores busy; each worker starts its own PostgreSQL (about 40 MB on disk, little memory).
    PYTEST_XDIST_AUTO_NUM_WORKERS still wins, as in pytest-xdist.
    """
    chosen = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS", "").strip()
    if chosen.isdigit():
        return int(chosen)
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(MOST_WORKERS, 2 * cores + 1))


def _file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def recorded(path: Path = DURATIONS) -> dict[str, float]:
    """Seconds per test file (relative to the repository root) from the last recorded run; {} if none."""
    try:
        return {str(name): float(seconds) for name, seconds in json.loads(path.read_text()).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def longest_first(items: list, seconds: dict[str, float]) -> list:
    """``items`` with whole files kept together, the longest recorded file first.

    A file the record does not know yet (a new one) counts as a median file. Ties keep collection order.
    """
    default = statistics.median(seconds.values()) if seconds else 0.0
    first_seen: dict[str, int] = {}
    for item in items:
        first_seen.setdefault(_file_of(item.nodeid), len(first_seen))

    def key(item):
        name = _file_of(item.nodeid)
        return (-seconds.get(name, default), first_seen[name])

    return sorted(items, key=key)  # stable: a file's own tests keep their order


class Recorder:
    """Adds up each test file's setup, call and teardown seconds (on xdist's controller, from the reports)."""

    def __init__(self) -> None:
        self.seconds: Counter = Counter()

    def add(self, report) -> None:
        self.seconds[_file_of(report.nodeid)] += report.duration

    def write(self, root: Path, path: Path = DURATIONS) -> None:
        """Update ``path`` with the files this run timed; files gone from the repository are dropped."""
        merged = {**recorded(path), **{name: round(s, 1) for name, s in self.seconds.items()}}
        kept = {name: s for name, s in merged.items() if (root / name).is_file()}
        ordered = dict(sorted(kept.items(), key=lambda kv: (-kv[1], kv[0])))
        path.write_text(json.dumps(ordered, indent=1) + "\n")
