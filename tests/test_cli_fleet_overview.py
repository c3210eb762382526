"""A fleet read at a glance: grouped summaries above 20 databases, and the --report page in a real Chromium.

The grouping is the CLI's (plain ``alembic`` applies one database per call and prints no fleet
summary).  Tenants whose database holds a ``broken`` table fail the second file with an error that
names their own database, so grouping identical errors has to take that name out.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

import pg

BASE, SECOND, THIRD = "20240101000000", "20240102000000", "20240103000000"
CHAIN = {
    f"{BASE}_base.sql": "BEGIN;\nCREATE TABLE items (id int);\nCOMMIT;\n",
    f"{SECOND}_guarded.sql": (
        "BEGIN;\nDO $$ BEGIN\n  IF to_regclass('broken') IS NOT NULL THEN\n"
        "    RAISE EXCEPTION 'database % is marked broken', current_database();\n  END IF;\nEND $$;\n"
        "ALTER TABLE items ADD COLUMN name text;\nCOMMIT;\n"
    ),
}
FLEET, BROKEN = 24, 22  # above the 20 databases from which the summary groups


def fleet(project, count: int = FLEET, broken: int = BROKEN) -> list[str]:
    """``count`` tenants t01.. on CHAIN; the first ``broken`` of them fail its second file."""
    project.tenant_chain(CHAIN, tenant="t01")
    databases = ["db_t01"] + [project.add_tenant(f"t{i:02d}") for i in range(2, count + 1)]
    for database in databases[:broken]:
        project.query(database, "CREATE TABLE broken ()")
    return databases


def test_migrate_over_many_tenants_groups_identical_errors_and_verbose_keeps_a_row_each(project):
    databases = fleet(project)
    grouped = project.cli("migrate", "--all-tenants")
    assert grouped.returncode == 1, grouped.stderr
    lines = grouped.stdout.splitlines()
    assert len(lines) <= 8, grouped.stdout
    failed = [line for line in lines if line.startswith("failed: ")]
    assert failed == [f"failed: db_t01, db_t02, db_t03 and {BROKEN - 3} more: "
                      f"{_error_line(grouped.stdout)}"], grouped.stdout
    assert "database <database> is marked broken" in failed[0]
    assert re.search(rf"^FAILED\s+{BASE}\s+{BROKEN}$", grouped.stdout, re.M), grouped.stdout
    assert re.search(rf"^ok\s+{SECOND}\s+{FLEET - BROKEN}$", grouped.stdout, re.M), grouped.stdout
    assert f"{FLEET} database(s): {FLEET - BROKEN} ok, {BROKEN} failed, 0 skipped" in grouped.stdout
    assert "db_t05" not in grouped.stdout  # no row per database

    verbose = project.cli("migrate", "--all-tenants", "--verbose")  # the broken ones fail again
    assert verbose.returncode == 1, verbose.stderr
    for database in databases:
        assert re.search(rf"^t\d\d\s+{database}\s", verbose.stdout, re.M), database
    for database in databases[:BROKEN]:
        assert f"database {database} is marked broken" in verbose.stdout


def _error_line(stdout: str) -> str:
    return next(line for line in stdout.splitlines() if "marked broken" in line).split(" more: ", 1)[1]


def test_status_groups_tenants_behind_by_the_same_files(project):
    fleet(project, broken=0)
    assert project.cli("migrate", "--all-tenants").returncode == 0
    project.write("tenant", f"{THIRD}_third.sql", "BEGIN;\nCREATE TABLE more (id int);\nCOMMIT;\n")
    result = project.cli("status", "--all-tenants")
    assert result.returncode == 0, result.stderr
    assert f"needing attention: {FLEET} tenant(s)" in result.stdout
    assert (f"  db_t01, db_t02, db_t03 and {FLEET - 3} more: at {SECOND}, 1 pending ({THIRD})"
            in result.stdout.splitlines()), result.stdout
    assert "db_t07" not in result.stdout
    assert len(result.stdout.splitlines()) <= 8, result.stdout


# ---- the --report page --------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WINDOW = (1200, 1400)


def render(page: Path) -> tuple[str, str, Path]:
    """The page opened in headless Chromium: the DOM after its script ran, the console log, a screenshot beside it."""
    shot = page.with_suffix(".png")
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
         f"--window-size={WINDOW[0]},{WINDOW[1]}", f"--screenshot={shot}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    return done.stdout, done.stderr, shot


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", header[16:24])


def assert_page_works(page: Path, *databases: str) -> Path:
    text = page.read_text()
    assert not re.search(r"\b(src|href)=|@import|url\(|https?://", text), "the page must fetch nothing"
    assert pg.TEST_PASSWORD not in text
    dom, log, shot = render(page)
    assert 'id="rendered-ok"' in dom, log[-2000:]  # the page's script ran to its end
    assert "Uncaught" not in log and ":CONSOLE" not in log, log[-2000:]
    for database in databases:
        assert database in dom
    assert png_size(shot) == WINDOW
    assert shot.stat().st_size > 20_000, "a blank page is a few KiB"  # the grid, tables and histogram drawn
    return shot


def page_states(page: Path) -> dict[str, str]:
    """Each database's colour word, from the data the page's grid is drawn from."""
    found = re.search(r'<script id="data" type="application/json">(.*?)</script>', page.read_text())
    return {cell[0]: cell[2] for cell in json.loads(found.group(1))["cells"]}


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium; .ci/run installs it)")
def test_report_page_of_migrate_status_and_drift_loads_in_chromium(project, tmp_path):
    databases = fleet(project, count=6, broken=2)
    pages = tmp_path / "pages"
    pages.mkdir()
    migrate = project.cli("migrate", "--all-tenants", "--report", str(pages / "migrate.html"))
    assert migrate.returncode == 1, migrate.stderr
    assert f"report: {pages / 'migrate.html'}" in migrate.stderr
    shot = assert_page_works(pages / "migrate.html", *databases)
    text = (pages / "migrate.html").read_text()
    assert "Failures, grouped by error" in text and "database &lt;database&gt; is marked broken" in text
    assert '"failed"' in text and "Slowest" in text and "Duration per database" in text
    assert page_states(pages / "migrate.html") == {d: "failed" if d in databases[:2] else "ok" for d in databases}
    shutil.copy(shot, tmp_path / "report-page.png")  # the artifact (README's screenshot is one of these)

    project.query(databases[-1], "CREATE INDEX extra_idx ON items (id)")
    status = project.cli("status", "--all-tenants", "--report", str(pages / "status.html"))
    assert status.returncode == 0, status.stderr  # two tenants behind: pending, not failed
    assert_page_works(pages / "status.html", *databases)
    assert page_states(pages / "status.html") == {d: "behind" if d in databases[:2] else "ok" for d in databases}
    drift = project.cli("drift", "--all-tenants", "--report", str(pages / "drift.html"))
    assert drift.returncode == 1, drift.stderr
    assert_page_works(pages / "drift.html", *databases)
    assert "Drift, grouped by difference" in (pages / "drift.html").read_text()
    assert "extra_idx" in (pages / "drift.html").read_text()
    drifted = {*databases[:2], databases[-1]}  # the two with the marker table, the one with the extra index
    assert page_states(pages / "drift.html") == {d: "drifted" if d in drifted else "ok" for d in databases}


def test_report_into_a_missing_folder_is_one_line_before_anything_runs(project, tmp_path):
    [database] = fleet(project, count=1, broken=0)
    result = project.cli("migrate", "--all-tenants", "--report", str(tmp_path / "no" / "such" / "page.html"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0 and "--report" in result.stderr, result.stderr
    assert "does not exist" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert project.version(database) is None  # refused before the run: nothing applied
