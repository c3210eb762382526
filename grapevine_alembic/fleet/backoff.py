"""Trying again with growing pauses, for the control database's reads and the rollout record's connection."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def retried(attempt: Callable[[], T], *, window_s: float, again: Callable[[BaseException], bool] = lambda _: True,
            first_s: float = 0.2, most_s: float = 2.0) -> T:
    """``attempt()``'s answer. An error ``again`` accepts is tried again after a pause that doubles from
    ``first_s`` up to ``most_s``, while the next try would still start within ``window_s``; the last
    error (or one ``again`` refuses) is raised."""
    deadline, pause = time.monotonic() + window_s, first_s
    while True:
        try:
            return attempt()
        except Exception as err:  # noqa: BLE001 - ``again`` decides, the rest is raised
            if not again(err) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, most_s)
