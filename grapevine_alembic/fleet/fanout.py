"""Runs one job per database, at most N at a time (and at most K per server), and collects every result.

Threads, not processes: each job spends its time waiting on PostgreSQL (psycopg2
releases the GIL), and one process pays the start-up once.  Each job owns its
connection (and, for stamps, its own Alembic MigrationContext); nothing here touches
Alembic's module-global proxies.
A job never raises (the runner turns failures into results), so one tenant's
failure never stops the others; ``stop_after_failures``, ``canary`` and
``should_stop`` stop *starting* new jobs, and jobs already running finish cleanly.
With ``group`` (a tenant's server), free slots go round-robin over the groups that
are below ``max_per_group`` (a number, or a function of the group read before every
start), so one slow server never holds the others' tenants.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Callable, Hashable, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class _RoundRobin:
    """The items of one wave, queued per group; ``take`` picks the next group that has room."""

    def __init__(self, entries: list[tuple[int, T]], group: Callable[[T], Hashable] | None, cap):
        self.queues: dict[Hashable, deque] = {}
        for index, item in entries:
            self.queues.setdefault(group(item) if group else None, deque()).append((index, item))
        self.cap = cap if cap is None or callable(cap) else (lambda key: cap)
        self.running: dict[Hashable, int] = dict.fromkeys(self.queues, 0)
        self.turn = deque(self.queues)  # the group served next comes first

    def __bool__(self) -> bool:
        return any(self.queues.values())

    def take(self) -> tuple[Hashable, int, T] | None:
        for _ in range(len(self.turn)):
            key = self.turn[0]
            self.turn.rotate(-1)
            if self.queues[key] and (self.cap is None or self.running[key] < self.cap(key)):
                self.running[key] += 1
                index, item = self.queues[key].popleft()
                return key, index, item
        return None

    def finished(self, key: Hashable) -> None:
        self.running[key] -= 1


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
    group: Callable[[T], Hashable] | None = None,
    max_per_group: int | Callable[[Hashable], int] | None = None,
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

    def stopping() -> bool:
        if stop_after_failures is not None and failures >= stop_after_failures:
            return True
        return should_stop is not None and should_stop()

    order = list(enumerate(items))
    waves = [order[:canary], order[canary:]] if canary else [order]
    with ThreadPoolExecutor(max_workers=max(1, max_parallel), thread_name_prefix="db") as pool:
        for wave_number, wave in enumerate(waves):
            if canary and wave_number == 1 and failures:
                break  # a canary failed: leave the rest untouched
            queue = _RoundRobin(wave, group, max_per_group)
            running: dict[Future, tuple[Hashable, int]] = {}
            while queue or running:
                while len(running) < max_parallel and not stopping():
                    picked = queue.take()
                    if picked is None:
                        break
                    key, index, item = picked
                    running[pool.submit(job, item)] = (key, index)
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    key, index = running.pop(future)
                    queue.finished(key)
                    record(index, future.result())
    if skipped is not None:
        for index, item in order:
            if index not in results:
                results[index] = skipped(item)
    return [results[index] for index, _ in order if index in results]
