"""Runs one job per database, at most N at a time, and collects every result.

Threads, not processes: each job spends its time waiting on PostgreSQL (psycopg2
releases the GIL), and one process pays the start-up once.  Each job owns its
connection (and, for stamps, its own Alembic MigrationContext); nothing here touches
Alembic's module-global proxies.
A job never raises (the runner turns failures into results), so one tenant's
failure never stops the others; ``stop_after_failures``, ``canary`` and
``should_stop`` (a Ctrl-C, say) stop *starting* new jobs, and jobs already
running finish cleanly.
"""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Callable, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def run_all(
    items: Sequence[T],
    job: Callable[[T], R],
    *,
    max_parallel: int,
    failed: Callable[[R], bool] = lambda result: False,
    skipped: Callable[[T], R] | None = None,
    on_result: Callable[[R], None] | None = None,
    stop_after_failures: int | None = None,
    canary: int = 0,
    should_stop: Callable[[], bool] | None = None,
) -> list[R]:
    """Results in the order of ``items``; items never started get ``skipped(item)``."""
    results: dict[int, R] = {}
    failures = 0

    def record(index: int, result: R) -> None:
        nonlocal failures
        results[index] = result
        failures += bool(failed(result))
        if on_result is not None:
            on_result(result)

    def stop_starting() -> bool:
        if should_stop is not None and should_stop():
            return True
        return stop_after_failures is not None and failures >= stop_after_failures

    order = list(enumerate(items))
    waves = [order[:canary], order[canary:]] if canary else [order]
    with ThreadPoolExecutor(max_workers=max(1, max_parallel), thread_name_prefix="db") as pool:
        for wave_number, wave in enumerate(waves):
            if canary and wave_number == 1 and failures:
                break  # a canary failed: leave the rest untouched
            queue = list(reversed(wave))
            running: dict[Future, int] = {}
            while queue or running:
                while queue and len(running) < max_parallel and not stop_starting():
                    index, item = queue.pop()
                    running[pool.submit(job, item)] = index
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    record(running.pop(future), future.result())
    if skipped is not None:
        for index, item in order:
            if index not in results:
                results[index] = skipped(item)
    return [results[index] for index, _ in order if index in results]
