"""`--json` prints exactly one document on every command, failures included, and the CI summary
(`grapevine-migrations summary`) renders every such document."""

from __future__ import annotations

import json
import subprocess

import pytest
from pg import url_for
from project import BIN


def _summary(tmp_path, text: str) -> subprocess.CompletedProcess:
    path = tmp_path / "doc.json"
    path.write_text(text)
    return subprocess.run([str(BIN / "grapevine-migrations"), "summary", str(path)], capture_output=True, text=True,
                          timeout=60)


FAILING = {
    "migrate, wrong password": (["migrate", "--all-tenants", "--json"], "wrong-password"),
    "migrate --control, wrong password": (["migrate", "--control", "--json"], "wrong-password"),
    "status, wrong password": (["status", "--all-tenants", "--json"], "wrong-password"),
    "mark, wrong password": (["mark", "--apply", "20250101090000", "--all-tenants", "--json"], "wrong-password"),
    "check --against-db, wrong password": (["check", "--against-db", "--json"], "wrong-password"),
    "migrate without a target": (["migrate", "--json"], None),
    "list with a missing config": (["--config", "nope.ini", "list", "--json"], None),
    "check with a missing config": (["check", "--json", "--config", "nope.ini"], None),
}


@pytest.mark.parametrize("case", list(FAILING), ids=list(FAILING))
def test_a_failing_command_still_prints_one_document(project, tmp_path, case):
    args, problem = FAILING[case]
    env = {}
    if problem == "wrong-password":
        env["CONTROL_DATABASE_URL"] = url_for(project.server, project.control_db, password="not-the-password")
    result = project.cli(*args, env=env)
    assert result.returncode != 0
    doc = json.loads(result.stdout)  # exactly one document: json.loads rejects anything after it
    assert doc["ok"] is False, doc
    failed = [d for d in doc.get("databases", []) if not d["ok"]]
    error = doc.get("error") or (failed[0]["error"] if failed else None) or doc.get("findings")
    assert error, doc
    if problem == "wrong-password":
        assert "password authentication failed" in json.dumps(doc)
    rendered = _summary(tmp_path, result.stdout)
    assert rendered.returncode == 0, rendered.stderr
    assert "FAILED" in rendered.stdout and "Traceback" not in rendered.stderr


def test_summary_renders_every_successful_document(project, tmp_path):
    project.migrate_control()
    project.add_tenant("acme")
    for args, expected in [
        (["migrate", "--all-tenants", "--json"], "### migrate: 1 ok, 0 failed"),
        (["status", "--json"], "### status:"),
        (["list", "--json"], "* tenant:"),
        (["check", "--json"], "### check: ok"),
        (["mark", "--apply", "20250101090000", "--control", "--dry-run", "--json"], "### mark:"),
    ]:
        result = project.cli(*args)
        json.loads(result.stdout)
        rendered = _summary(tmp_path, result.stdout)
        assert rendered.returncode == 0 and expected in rendered.stdout, (args, rendered.stdout, rendered.stderr)


def test_summary_of_an_empty_file_is_one_line_and_exit_1(tmp_path):
    rendered = _summary(tmp_path, "")
    assert rendered.returncode == 1 and rendered.stdout.startswith("### no result: ") and "no JSON document" in rendered.stdout
    [line] = rendered.stderr.strip().splitlines()
    assert line.startswith("error: ") and "no JSON document" in line
