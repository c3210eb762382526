"""No CONTROL_DATABASE_URL and no CI: `dev up` starts a PostgreSQL of its own and the CLI shows the real fan-out."""

from __future__ import annotations

import json


def test_embedded_default_runs_the_main_job(bare):
    project, env = bare
    up = project.cli("dev", "up", env=env, timeout=180)  # asked for: README's first command does the same
    assert up.returncode == 0, up.stderr
    assert "using the embedded PostgreSQL" in up.stderr
    first = project.cli("migrate", "--control", env=env)
    assert first.returncode == 0, first.stderr
    assert (project.root / ".grapevine" / "pg").is_dir()
    added = project.cli("dev", "tenant", "add", "acme", "globex", env=env)
    assert added.returncode == 0, added.stderr
    assert "created db_acme" in added.stdout
    run = project.cli("migrate", "--all-tenants", "--json", env=env)
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert [d["database"] for d in doc["databases"]] == ["db_acme", "db_globex"]
    assert all(d["version"] == "20250201080000" for d in doc["databases"])
    status = project.cli("status", env=env)
    assert status.returncode == 0, status.stdout + status.stderr
    down = project.cli("dev", "down", env=env)
    assert down.returncode == 0 and "stopped" in down.stdout


def test_in_ci_a_missing_url_is_the_usual_error(project):
    result = project.cli("status", env={"CONTROL_DATABASE_URL": None, "CI": "true"})
    assert result.returncode == 2
    assert result.stderr.strip() == "error: CONTROL_DATABASE_URL is not set (set it in the environment or in .env)"
