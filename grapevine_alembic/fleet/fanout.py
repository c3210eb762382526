"""Runs one job per database, at most N at a time (and at most K per server), and collects every result.

Threads, not processes: each job spends its time waiting on PostgreSQL (psycopg2
releases the GIL), and one process pays the start-up once.  Each job owns its
connection (and, for stamps, its own Alembic MigrationContext); nothing here touches
Alembic's module-global proxies.
A job never raises (the runner turns failures into results), so one tenant's
failure never stops the others; ``halt`` (a failure budget), a wave that ``next_wave`` does
not let follow, and ``should_stop`` stop *starting* new jobs; jobs already running finish cleanly.
``waves`` (lists of item indices, run one after the other) stage the run; items in no wave never start.
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
    on_start: Callable[[int, T], None] | None = None,
    waves: Sequence[Sequence[int]] | None = None,
    halt: Callable[[int, int], bool] | None = None,
    next_wave: Callable[[int, int], bool] | None = None,
    group: Callable[[T], Hashable] | None = None,
    max_per_group: int | Callable[[Hashable], int] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[R]:
    """Results in the order of ``items``; items never started get ``skipped(item)``.

    ``halt(failures, started)`` is asked after each result; once it says True nothing more starts.
    ``next_wave(finished_wave, failures)`` runs between two waves (it may wait) and says whether
    the next one starts.  ``on_start(index, item)`` runs on the worker thread just before the job.
    """
    results: dict[int, R] = {}
    failures = started = 0
    halted = False

    def record(index: int, result: R) -> None:
        nonlocal failures, halted
        results[index] = result
        failures += bool(failed(result))
        halted = halted or (halt is not None and halt(failures, started))  # sticky: more starts would dilute a ratio
        if on_result is not None:
            on_result(result)

    def stopping() -> bool:
        return halted or (should_stop is not None and should_stop())

    def started_job(index: int, item: T) -> R:
        on_start(index, item)
        return job(item)

    order = list(enumerate(items))
    staged = [[order[i] for i in wave] for wave in waves] if waves is not None else [order]
    with ThreadPoolExecutor(max_workers=max(1, max_parallel), thread_name_prefix="db") as pool:
        for wave_number, wave in enumerate(staged):
            if wave_number and (stopping() or (next_wave is not None and not next_wave(wave_number - 1, failures))):
                break  # leave the later waves untouched
            queue = _RoundRobin(wave, group, max_per_group)
            running: dict[Future, tuple[Hashable, int]] = {}
            while queue or running:
                while len(running) < max_parallel and not stopping():
                    picked = queue.take()
                    if picked is None:
                        break
                    key, index, item = picked
                    started += 1
                    future = pool.submit(started_job, index, item) if on_start else pool.submit(job, item)
                    running[future] = (key, index)
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
