"""The private Alembic behaviour the loader extends: fail loudly if a future Alembic changes it."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from alembic.script.revision import RevisionMap

from grapevine_alembic.database.jobs import alembic_bridge

REPO = Path(__file__).resolve().parent.parent
ALEMBIC = Path(sys.executable).parent / "alembic"


def _params(func) -> list[str]:
    return list(inspect.signature(func).parameters)


def test_private_names_the_bridge_relies_on():
    assert _params(ScriptDirectory._load_revisions) == ["self"]
    assert inspect.isgeneratorfunction(ScriptDirectory._load_revisions)
    assert _params(ScriptDirectory._upgrade_revs)[:3] == ["self", "destination", "current_rev"]
    assert _params(ScriptDirectory._stamp_revs)[:3] == ["self", "revision", "heads"]
    assert "_per_migration" in _params(MigrationContext.begin_transaction)
    assert _params(Script.__init__) == ["self", "module", "rev_id", "path"]
    assert _params(RevisionMap.__init__)[:2] == ["self", "generator"]
    assert "version_locations" in _params(ScriptDirectory.__init__)


def test_installed_alembic_is_inside_the_pinned_range():
    spec = next(d for d in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
                if d.startswith("alembic"))
    low, high = re.search(r">=([\d.]+),<([\d.]+)", spec).groups()
    installed = tuple(int(p) for p in metadata.version("alembic").split(".")[:2])
    assert tuple(int(p) for p in low.split(".")[:2]) <= installed < tuple(int(p) for p in high.split(".")[:2])


def test_plugin_is_registered_and_installed_on_import():
    names = {ep.value for ep in metadata.entry_points(group="alembic.plugins")}
    assert "grapevine_alembic.alembic_plugin" in names
    assert ScriptDirectory.from_config.__func__.__qualname__.startswith("install.")


def test_sql_folder_becomes_a_linear_chain(tmp_path):
    folder = tmp_path / "versions"
    folder.mkdir()
    for version, name in [("20240103000000", "c"), ("20240101000000", "a"), ("20240102000000", "b_two")]:
        (folder / f"{version}_{name}.sql").write_text("SELECT 1;\n")
    (folder / "schema.sql").write_text("CREATE TABLE x (a int);\n")
    config = Config()
    config.set_main_option("script_location", str(REPO / "alembic_tenant"))
    config.set_main_option("version_locations", str(folder))
    config.set_main_option("path_separator", "os")
    config.set_main_option("sql_revisions", "true")
    script = ScriptDirectory.from_config(config)
    assert isinstance(script, alembic_bridge.SqlScriptDirectory)
    chain = [(s.revision, s.down_revision, s.doc) for s in reversed(list(script.walk_revisions()))]
    assert chain == [
        ("20240101000000", None, "a"),
        ("20240102000000", "20240101000000", "b two"),
        ("20240103000000", "20240102000000", "c"),
    ]
    assert script.get_current_head() == "20240103000000"


def test_without_the_opt_in_a_folder_is_left_to_alembic(tmp_path):
    folder = tmp_path / "versions"
    folder.mkdir()
    (folder / "20240101000000_a.sql").write_text("SELECT 1;\n")
    config = Config()
    config.set_main_option("script_location", str(REPO / "alembic_tenant"))
    config.set_main_option("version_locations", str(folder))
    config.set_main_option("path_separator", "os")
    script = ScriptDirectory.from_config(config)
    assert type(script) is ScriptDirectory
    assert list(script.walk_revisions()) == []


def test_an_ordinary_python_alembic_project_is_untouched(tmp_path):
    """Another project on the same machine, with .py revisions (and a stray .sql), works as before."""
    init = subprocess.run([str(ALEMBIC), "init", "env"], cwd=tmp_path, capture_output=True, text=True)
    assert init.returncode == 0, init.stderr
    versions = tmp_path / "env" / "versions"
    (versions / "abc123_first.py").write_text(
        '"""first"""\nrevision = "abc123"\ndown_revision = None\nbranch_labels = None\ndepends_on = None\n'
        "def upgrade():\n    pass\n\ndef downgrade():\n    pass\n"
    )
    (versions / "20240101000000_stray.sql").write_text("SELECT 1;\n")
    history = subprocess.run([str(ALEMBIC), "history"], cwd=tmp_path, capture_output=True, text=True)
    assert history.returncode == 0, history.stderr
    assert history.stdout.strip() == "<base> -> abc123 (head), first"
    assert "warning" not in history.stderr
    revision = subprocess.run([str(ALEMBIC), "revision", "-m", "second"], cwd=tmp_path, capture_output=True, text=True)
    assert revision.returncode == 0, revision.stderr
    assert len(list(versions.glob("*_second.py"))) == 1


@pytest.mark.parametrize("module", ["grapevine_alembic.cli.main", "grapevine_alembic.database.jobs.runner", "grapevine_alembic.files.discovery"])
def test_light_modules_do_not_import_alembic_or_sqlalchemy(module):
    code = f"import sys, {module}; print(sorted(m for m in ('alembic', 'sqlalchemy', 'postgast') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("env", ["control", "tenant"])
def test_migrate_path_is_the_one_alembic_computes(env, tmp_path):
    """`migrate` moves the version table along plan.pending; Alembic's own planner must agree
    from every starting version (the suite's fixture chains and the 40-file benchmark chain)."""
    from grapevine_alembic.database.state.ledger import DatabaseState
    from grapevine_alembic.database.state.plan import make_plan
    from grapevine_alembic.files.discovery import discover

    sys.path.insert(0, str(REPO / "bench"))
    from chain import write_chain

    folders = [REPO / "tests" / "fixtures" / "migrations" / env]
    if env == "tenant":
        write_chain(tmp_path / "bench")
        folders.append(tmp_path / "bench")
    for folder in folders:
        config = Config()
        config.set_main_option("script_location", str(REPO / f"alembic_{env}"))
        config.set_main_option("version_locations", str(folder))
        config.set_main_option("path_separator", "os")
        config.set_main_option("sql_revisions", "true")
        script = ScriptDirectory.from_config(config)
        files = discover(folder).files
        for head in [None, *(m.version for m in files)]:
            state = DatabaseState(has_version_table=head is not None, heads=(head,) if head else ())
            pending = [m.version for m in make_plan(files, state).pending]
            expected = list(zip([head, *pending[:-1]], pending))
            assert alembic_bridge.upgrade_path(script, head) == expected, (folder, head)
