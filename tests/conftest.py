"""Shared fixtures."""

import os
import shutil
import tempfile

import pytest

import temp_root


# ---------------------------------------------------------------------------------------
# A private base temp folder per run: pytest otherwise keeps only the three newest runs under
# /tmp/pytest-of-<user> and deletes older ones, the data directory of another pytest run's
# PostgreSQL included, so two suites on one machine (developers, CI, agents) broke each other.
# It lives in memory where the machine has room (tests/temp_root.py says why).
# ---------------------------------------------------------------------------------------
def pytest_configure(config):
    if config.option.basetemp is None and "PYTEST_DEBUG_TEMPROOT" not in os.environ:
        config.option.basetemp = tempfile.mkdtemp(prefix="grapevine-tests-", dir=temp_root.temp_root())
        config._grapevine_private_basetemp = config.option.basetemp
    config.addinivalue_line("markers", "files_only: the project fixture without a server or a database")
    if config.getoption("record_durations") and not hasattr(config, "workerinput"):
        global RECORDER
        RECORDER = scheduling.Recorder()


def pytest_addoption(parser):
    parser.addoption("--record-durations", action="store_true",
                     help="write each test file's seconds to tests/file_durations.json (the longest run first)")


def pytest_report_header(config):
    return f"temporary folders: {config.option.basetemp}"


def pytest_unconfigure(config):
    private = getattr(config, "_grapevine_private_basetemp", None)
    if private:
        shutil.rmtree(private, ignore_errors=True)

# ---------------------------------------------------------------------------------------
# Longest files first (tests/scheduling.py): xdist hands whole files to free workers in this order.
# ---------------------------------------------------------------------------------------
import scheduling  # noqa: E402


RECORDER: scheduling.Recorder | None = None  # with --record-durations, on the controller only


def pytest_collection_modifyitems(items):
    items[:] = scheduling.longest_first(items, scheduling.recorded())


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    """How many workers ``-n auto`` (pyproject's addopts) starts: scheduling.workers."""
    return scheduling.workers()


def pytest_runtest_logreport(report):
    if RECORDER is not None:
        RECORDER.add(report)


# ---------------------------------------------------------------------------------------
# PostgreSQL server fixtures (helpers live in tests/pg.py; keep this block self-contained)
# ---------------------------------------------------------------------------------------
import pg


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    """The session's PostgreSQL server: TEST_DATABASE_URL's, or a local one (one per xdist worker)."""
    yield from pg.session_server(tmp_path_factory)


@pytest.fixture
def make_db(pg_server):
    """Factory make_db(name=None) -> name; every database it creates is dropped after the test."""
    factory = pg.DatabaseFactory(pg_server)
    yield factory
    factory.close()


# ------------------------------- end of PostgreSQL fixtures -------------------------------


# ---------------------------------------------------------------------------------------
# Scratch project fixtures (helpers live in tests/project.py)
# ---------------------------------------------------------------------------------------
from project import ScratchProject  # noqa: E402


@pytest.fixture
def project(tmp_path, request):
    """A copy of the project with its own control database; tests add tenants and files to it.

    A test marked ``files_only`` (commands that only read the files: create, list, check) gets the
    project without a server or a database.
    """
    root = tmp_path / "proj"
    root.mkdir()
    if request.node.get_closest_marker("files_only"):
        return ScratchProject(root, None, None)
    return ScratchProject(root, request.getfixturevalue("pg_server"), request.getfixturevalue("make_db"))


@pytest.fixture
def bare(project, pg_server):
    """(project, env) with no CONTROL_DATABASE_URL and no CI: where the embedded default applies."""
    if pg.is_external(pg_server):
        pytest.skip("the embedded default starts its own server; not with TEST_DATABASE_URL")
    env = {"CONTROL_DATABASE_URL": None, "CI": None}
    yield project, env
    project.cli("dev", "down", env=env)


@pytest.fixture(scope="session")
def installed(tmp_path_factory):
    """The wheel built from pyproject.toml, installed into a fresh venv outside the repository (once a run)."""
    from installed_package import built_once

    return built_once(tmp_path_factory)


# ---------------------------------------------------------------------------------------
# Guarantee counters: the reliability suites count what they inject and check; the totals
# are printed at the end of the run and are the figures in docs/guarantees.md.
# ---------------------------------------------------------------------------------------
from collections import Counter  # noqa: E402

GUARANTEES: Counter = Counter()


@pytest.fixture
def tally():
    def add(what: str, count: int = 1) -> None:
        GUARANTEES[what] += count

    return add


def pytest_sessionfinish(session):
    """Under pytest-xdist each worker counts its own tests: hand the counts to the controller."""
    if RECORDER is not None:
        RECORDER.write(session.config.rootpath)
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        from installed_package import TIMINGS

        output["guarantees"], output["timings"] = dict(GUARANTEES), dict(TIMINGS)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """The controller adds up what each worker counted (pytest-xdist's hook)."""
    from installed_package import TIMINGS

    output = getattr(node, "workeroutput", {})
    GUARANTEES.update(output.get("guarantees", {}))
    TIMINGS.update(output.get("timings", {}))


def pytest_terminal_summary(terminalreporter):
    from installed_package import TIMINGS

    if TIMINGS:
        terminalreporter.section("installed package")
        for what, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{what:>26}: {seconds:.1f} s")
    if not GUARANTEES:
        return
    terminalreporter.section("guarantee counts")
    for what in ("concurrent runs", "kills", "faults injected", "bad inputs tried", "databases checked", "lost"):
        terminalreporter.write_line(f"{what:>18}: {GUARANTEES.get(what, 0)}")
