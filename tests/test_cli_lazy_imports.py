"""A status or a no-op migrate pays for what it does, not for what other runs need: the parser, the code that
applies a file, Prometheus, rich's bar and the report page are loaded only by a run that uses them.

Each command runs in a fresh interpreter (``sys.modules`` of the test process says nothing), against real
PostgreSQL, and reports which of the watched modules it loaded."""

from __future__ import annotations

import json
import os
import sys

import pytest

from project import FIXTURE_MIGRATIONS

HEAD = max(p.name.split("_")[0] for p in (FIXTURE_MIGRATIONS / "tenant").glob("2*.sql"))

WATCHED = (
    "grapevine_alembic.files.parsing",  # the SQL splitter: a file is parsed only when it is applied or checked
    "grapevine_alembic.database.apply.executor",  # applying a file
    "grapevine_alembic.overview.page",  # --report
    "prometheus_client",  # --metrics-file, --pushgateway
    "rich.progress",  # the bar, at a terminal only
    "postgast",  # libpg_query
    "alembic",
    "sqlalchemy",
)
# Run the CLI as the console script does and print, on stderr's last line, which watched modules it loaded.
RUNNER = (
    "import atexit, json, sys\n"
    "from grapevine_alembic.cli.main import main\n"
    f"watched = {WATCHED!r}\n"
    "atexit.register(lambda: print('loaded: ' + json.dumps([m for m in watched if m in sys.modules]),"
    " file=sys.stderr))\n"
    "sys.argv = ['grapevine-migrations', *sys.argv[1:]]\n"
    "main()\n"
)


def _loaded(project, *args: str) -> tuple[list[str], object]:
    # the same package as the test process (PYTHONPATH too: a checkout run without installing it)
    result = project.run(sys.executable, "-c", RUNNER, *args, env={"PYTHONPATH": os.environ.get("PYTHONPATH")})
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("loaded: "), result.stderr
    return json.loads(last.removeprefix("loaded: ")), result


@pytest.fixture
def fleet(project):
    """Control and two tenants at head: every later run is a no-op."""
    project.migrate_control()
    for tenant in ("acme", "globex"):
        project.add_tenant(tenant)
    migrated = project.cli("migrate", "--all-tenants")
    assert migrated.returncode == 0, migrated.stderr
    return project


@pytest.mark.parametrize("args", [("status", "--all-tenants"), ("status", "--all-tenants", "--json"),
                                  ("migrate", "--all-tenants"), ("migrate", "--control", "--all-tenants", "--json")])
def test_status_and_a_no_op_migrate_load_no_parser_no_apply_code_no_metrics_no_bar_no_report(fleet, args):
    loaded, result = _loaded(fleet, *args)
    assert result.returncode == 0, result.stderr
    assert HEAD in result.stdout  # the run read every database: each is at the chain's head
    assert loaded == []


@pytest.mark.parametrize("args, needed", [
    (("status", "--all-tenants", "--report", "page.html"), "grapevine_alembic.overview.page"),
    (("migrate", "--all-tenants", "--metrics-file", "metrics.prom"), "prometheus_client"),
])
def test_a_flag_loads_what_it_needs_in_the_same_check(fleet, args, needed):
    """The check above can see an import: a run that asks for the page or the metrics loads exactly that."""
    loaded, result = _loaded(fleet, *args)
    assert result.returncode == 0, result.stderr
    assert needed in loaded
    assert "grapevine_alembic.files.parsing" not in loaded


def test_a_migrate_that_applies_a_file_loads_the_parser_and_the_apply_code(fleet):
    fleet.write("tenant", "20991231000000_add_note.sql", "CREATE TABLE note (id int);\n")
    loaded, result = _loaded(fleet, "migrate", "--all-tenants")
    assert result.returncode == 0, result.stderr
    assert {"grapevine_alembic.files.parsing", "grapevine_alembic.database.apply.executor"} <= set(loaded)
    assert "note" in fleet.tables("db_acme")
