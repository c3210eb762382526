"""What the suite's fixtures spare: a run builds one initdb'd cluster and one wheel for all its xdist workers
(tests/run_shared.py), and a test of the files alone gets its project without a server or a database."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pg
import pytest
import run_shared

HERE = Path(__file__).resolve().parent


def test_concurrent_workers_build_once_and_all_get_the_result(tmp_path):
    """Three processes ask at once: one builds (slowly), the others wait for it and read its result."""
    base = tmp_path / "run"
    base.mkdir()
    asker = textwrap.dedent(f"""
        import json, sys, time
        from pathlib import Path
        sys.path.insert(0, {str(HERE)!r})
        import run_shared

        class Factory:  # what pytest's tmp_path_factory gives a run without xdist
            def getbasetemp(self):
                return Path({str(base)!r})

        def build(where):
            with open(Path({str(base)!r}) / "builds", "a") as log:
                log.write("built\\n")
            time.sleep(1)
            (where / "artefact").write_text("made")
            return {{"artefact": str(where / "artefact")}}

        print(json.dumps(run_shared.once(Factory(), "thing", build)))
    """)
    askers = [subprocess.Popen([sys.executable, "-c", asker], stdout=subprocess.PIPE, text=True) for _ in range(3)]
    answers = {process.communicate(timeout=60)[0] for process in askers}
    assert [process.returncode for process in askers] == [0, 0, 0]
    assert (base / "builds").read_text() == "built\n"
    assert len(answers) == 1 and Path(json.loads(answers.pop())["artefact"]).read_text() == "made"


def test_a_fresh_cluster_is_a_private_copy_of_the_runs_one_initdb(tmp_path_factory, pg_server):
    if pg.is_external(pg_server):
        pytest.skip("the suite starts no server of its own with TEST_DATABASE_URL")
    first = pg.fresh_cluster(tmp_path_factory, "copy-a")
    second = pg.fresh_cluster(tmp_path_factory, "copy-b")
    template = run_shared.folder(tmp_path_factory) / "cluster" / "data"
    assert (template / "PG_VERSION").is_file()
    assert len({first.data_dir, second.data_dir, template}) == 3
    first.start()
    try:
        # the suite's superuser and password work on the copy, and what it holds stays its own
        pg.query(first, None, "CREATE DATABASE only_in_the_copy")
        assert pg.database_exists(first, "only_in_the_copy")
        second.start()
        try:
            assert not pg.database_exists(second, "only_in_the_copy")
        finally:
            second.stop()
    finally:
        first.stop()


@pytest.mark.files_only
def test_a_files_only_project_has_no_database_and_a_command_that_connects_fails(project):
    assert project.control_db is None
    assert project.cli("list").returncode == 0  # reads the files only
    status = project.cli("status", "--control")
    assert status.returncode != 0 and "127.0.0.1" in status.stderr + status.stdout, status.stderr
