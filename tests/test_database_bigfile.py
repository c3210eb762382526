"""A big file streams: the CLI's memory stays flat in the file's size, and a failing statement deep in
a batch of plain statements still names its own line, with nothing of the file kept
(bench/bigfile.py has the 50 MB figures)."""

from __future__ import annotations

import pytest
import os
import subprocess
from pathlib import Path

from project import BIN

FILE = "20250301000000_seed_big.sql"
STATEMENTS = 60_000  # about 6 MB


def _write_seed(path: Path, statements: int, *, duplicate_at: int | None = None) -> None:
    with path.open("w") as out:
        out.write("CREATE TABLE big (id int PRIMARY KEY, name text, note text);\n")
        for i in range(1, statements + 1):
            key = 1 if i == duplicate_at else i
            out.write(f"INSERT INTO big (id, name, note) VALUES ({key}, 'name {i}', 'some padding text for row {i}');\n")


def _peak_rss_mib(project, *args: str) -> tuple[int, float, str]:
    """Exit code, peak RSS (MiB) and output of one CLI process, from wait4's rusage of that child."""
    proc = subprocess.Popen([str(BIN / "grapevine-migrations"), *args], cwd=project.root, env=project.env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    return os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024, output


def test_peak_memory_stays_flat_in_the_file_size(project):
    project.migrate_control()
    databases = [project.add_tenant(f"big{i}") for i in range(2)]
    _write_seed(project.migrations("tenant") / FILE, STATEMENTS)
    assert (project.migrations("tenant") / FILE).stat().st_size > 5_000_000
    code, peak, output = _peak_rss_mib(project, "migrate", "--all-tenants", "--max-parallel", "2")
    assert code == 0, output
    for database in databases:
        assert project.query(database, "SELECT count(*) FROM big") == [(STATEMENTS,)]
    # measured: 67 MiB after the change, 216 MiB before (a parse tree and a string per statement)
    assert peak < 140, f"peak RSS {peak:.0f} MiB"


def test_a_failing_statement_deep_in_a_batch_names_its_line(project):
    project.migrate_control()
    database = project.add_tenant("bigdup")
    _write_seed(project.migrations("tenant") / FILE, 20_000, duplicate_at=15_000)
    result = project.cli("migrate", "--tenant", "bigdup")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"{FILE}:15001:" in output and "duplicate key value" in output, output
    assert "big" not in project.tables(database)
    assert project.version(database) != "20250301000000"


@pytest.mark.files_only
def test_a_syntax_error_deep_in_a_big_file_names_its_line(project):
    path = project.migrations("tenant") / FILE
    _write_seed(path, 30_000)
    with path.open("a") as out:
        out.write("INSERT INTO big VALUES (0, 'x' 'y');\nINSERT INTO big VALUES (-1, 'ok', 'ok');\n")
    result = project.cli("check")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"{FILE}:30002" in output and "syntax error" in output, output
