"""Fan a per-database job out over targets that may live on several servers.

The glue between the generic fan-out and the per-server pieces: slots are shared
round-robin by server (at most ``max_per_server`` each), and a server whose breaker
has tripped gets its remaining targets skipped instead of attempted.
"""

from __future__ import annotations

from typing import Callable

from . import fanout
from .breakers import skipped_unreachable


def run_targets(targets: list, job: Callable, *, options, max_parallel: int, max_per_server: int | None = None,
                **fanout_options) -> list:
    """Results in target order; ``options.servers`` (the run's Breakers) guards every job when set."""
    breakers = options.servers
    cap = max_per_server or max_parallel
    if not breakers:
        return fanout.run_all(targets, job, max_parallel=max_parallel, group=lambda target: target.server,
                              max_per_group=cap, **fanout_options)
    return fanout.run_all(
        targets, breakers.guard(job, skipped_unreachable), max_parallel=max_parallel,
        group=lambda target: target.server, max_per_group=lambda server: breakers.cap(server, cap),
        **fanout_options,
    )
