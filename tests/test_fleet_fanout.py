"""The fan-out's scheduling on its own (no database needed): per-group caps, interleaving, stopping."""

from __future__ import annotations

import threading
from collections import Counter

from grapevine_alembic.fleet.fanout import run_all


class Gauge:
    """Counts jobs in flight per group, and the most seen at once; jobs wait until released."""

    def __init__(self):
        self.lock = threading.Lock()
        self.now: Counter = Counter()
        self.peak: Counter = Counter()
        self.peak_total = 0
        self.started: list[str] = []

    def job(self, release: threading.Event):
        def run(item):
            group = item[0]
            with self.lock:
                self.now[group] += 1
                self.peak[group] = max(self.peak[group], self.now[group])
                self.peak_total = max(self.peak_total, sum(self.now.values()))
                self.started.append(item)
            release.wait(timeout=30)
            with self.lock:
                self.now[group] -= 1
            return item

        return run


def test_per_group_cap_and_global_cap_both_hold():
    items = [f"a{i}" for i in range(12)] + [f"b{i}" for i in range(12)]
    gauge, release = Gauge(), threading.Event()
    timer = threading.Timer(0.3, release.set)
    timer.start()
    results = run_all(items, gauge.job(release), max_parallel=5, group=lambda item: item[0], max_per_group=3)
    timer.join()
    assert results == items  # in item order, every one
    # the first five slots go a, b, a, b, a: a reaches its cap of 3 and no more
    assert gauge.peak["a"] == 3 and gauge.peak["b"] <= 3
    assert gauge.peak_total == 5


def test_work_interleaves_across_groups():
    """Items listed server by server still start alternately, so one server never holds the others."""
    items = [f"a{i}" for i in range(6)] + [f"b{i}" for i in range(6)]
    gauge, release = Gauge(), threading.Event()
    release.set()
    run_all(items, gauge.job(release), max_parallel=1, group=lambda item: item[0])
    assert [item[0] for item in gauge.started] == ["a", "b"] * 6


def test_a_full_group_leaves_its_slots_to_the_others():
    items = [f"a{i}" for i in range(8)] + ["b0", "b1"]
    gauge, release = Gauge(), threading.Event()
    timer = threading.Timer(0.3, release.set)
    timer.start()
    run_all(items, gauge.job(release), max_parallel=4, group=lambda item: item[0], max_per_group=2)
    timer.join()
    assert gauge.started[:4].count("b0") + gauge.started[:4].count("b1") == 2  # b never waited behind a


def test_should_stop_stops_starting_and_the_rest_is_skipped():
    items = [f"a{i}" for i in range(10)]
    done: list[str] = []

    def job(item):
        done.append(item)
        return item

    results = run_all(items, job, max_parallel=1, skipped=lambda item: f"skipped {item}",
                      should_stop=lambda: len(done) >= 3)
    assert done == ["a0", "a1", "a2"]
    assert results == ["a0", "a1", "a2"] + [f"skipped a{i}" for i in range(3, 10)]


def test_on_start_runs_on_the_worker_just_before_its_job_and_never_for_an_unstarted_item():
    heard = []

    def on_start(index, item):
        heard.append(("start", index, item, threading.current_thread().name))

    def job(item):
        heard.append(("job", item, threading.current_thread().name))
        return item

    results = run_all(["x", "y", "z"], job, max_parallel=1, on_start=on_start, waves=[[0], [1]],
                      skipped=lambda item: f"skipped {item}")
    assert results == ["x", "y", "skipped z"]
    assert [entry[:3] for entry in heard] == [("start", 0, "x"), ("job", "x", heard[0][3]), ("start", 1, "y"),
                                               ("job", "y", heard[2][3])]
    assert all(entry[-1].startswith("db") for entry in heard)  # the pool's thread, not the caller's
