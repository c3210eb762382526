"""The longest test files start first under pytest-xdist (tests/scheduling.py). No database, no subprocess."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from types import SimpleNamespace

import scheduling

ROOT = Path(__file__).resolve().parent.parent


def _items(*nodeids: str) -> list:
    return [SimpleNamespace(nodeid=nodeid) for nodeid in nodeids]


def test_the_longest_recorded_file_starts_first_and_files_stay_whole():
    items = _items("tests/a.py::one", "tests/b.py::one", "tests/a.py::two", "tests/c.py::one", "tests/b.py::two")
    ordered = scheduling.longest_first(items, {"tests/a.py": 1.0, "tests/b.py": 30.0, "tests/c.py": 5.0})
    assert [i.nodeid for i in ordered] == [
        "tests/b.py::one", "tests/b.py::two", "tests/c.py::one", "tests/a.py::one", "tests/a.py::two"]


def test_a_file_missing_from_the_record_counts_as_a_median_file():
    items = _items("tests/new.py::t", "tests/short.py::t", "tests/long.py::t", "tests/mid.py::t")
    ordered = scheduling.longest_first(items, {"tests/short.py": 1.0, "tests/mid.py": 10.0, "tests/long.py": 90.0})
    assert [i.nodeid.split("::")[0] for i in ordered] == [
        "tests/long.py", "tests/new.py", "tests/mid.py", "tests/short.py"]  # ties keep collection order


def test_recording_updates_the_files_it_timed_and_drops_files_that_are_gone(tmp_path):
    (tmp_path / "tests").mkdir()
    for name in ("a", "b"):
        (tmp_path / "tests" / f"test_{name}.py").write_text("")
    record = tmp_path / "durations.json"
    record.write_text(json.dumps({"tests/test_a.py": 3.0, "tests/test_b.py": 4.0, "tests/test_gone.py": 9.0}))
    recorder = scheduling.Recorder()
    for phase in (0.25, 2.0, 0.25):  # setup, call, teardown
        recorder.add(SimpleNamespace(nodeid="tests/test_a.py::t", duration=phase))
    recorder.write(tmp_path, record)
    assert json.loads(record.read_text()) == {"tests/test_b.py": 4.0, "tests/test_a.py": 2.5}


def test_xdist_keeps_the_collection_order_and_the_record_names_real_files():
    addopts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["addopts"]
    # xdist's default orders files by their number of tests; ours by their recorded seconds.
    assert "-n auto" in addopts and "--dist loadfile" in addopts and "--no-loadscope-reorder" in addopts
    seconds = scheduling.recorded()
    assert seconds and all((ROOT / name).is_file() and value >= 0 for name, value in seconds.items())


def test_auto_starts_two_workers_a_core_and_one_more_within_bounds(monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_AUTO_NUM_WORKERS", raising=False)
    assert [scheduling.workers(cores) for cores in (1, 2, 3, 16)] == [3, 5, 7, scheduling.MOST_WORKERS]
    monkeypatch.setenv("PYTEST_XDIST_AUTO_NUM_WORKERS", "2")  # pytest-xdist's own override still wins
    assert scheduling.workers(2) == 2
