"""Installing the tool before any index has it: the requirement README's switch
gives, `grapevine-alembic @ git+...@v<version>`, put in the shipped workflow's GRAPEVINE_ALEMBIC and
installed by the workflow's own install line, from a local bare clone of this repository."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib

import yaml
from project import REPO
from test_adoption_switch import _block, _section

VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
WORKFLOW = REPO / ".github" / "workflows" / "migrations.yml"


def _git(*args: str, cwd=None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, timeout=120).stdout.strip()


def test_the_workflow_installs_the_readmes_git_requirement_from_a_tag(tmp_path):
    [requirement] = re.findall(r'pip install "(grapevine-alembic @ git\+https://[^"]+)"', _block(_section(), "sh"))
    assert requirement.endswith(f"@v{VERSION}")
    workflow = WORKFLOW.read_text()
    assert requirement.split(" @ ", 1)[1] in workflow  # the same form, named beside GRAPEVINE_ALEMBIC
    [install] = {line.strip() for step in yaml.safe_load(workflow)["jobs"]["check"]["steps"]
                 for line in step.get("run", "").splitlines() if line.strip().startswith("pip install")}

    # the team's copy of this repository, tagged; the requirement pointed at it instead of a host
    bare = tmp_path / "grapevine-alembic.git"
    _git("clone", "--quiet", "--bare", str(REPO), str(bare))
    commit = _git("rev-parse", "HEAD", cwd=bare)
    _git("tag", f"v{VERSION}", commit, cwd=bare)
    local = re.sub(r"git\+https://\S+@", f"git+{bare.as_uri()}@", requirement)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    # a current pip, as on a runner: the pip bundled with Python 3.11 rejects `name @ git+file:///...`
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True,
                   capture_output=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}/usr/local/bin:/usr/bin:/bin", GRAPEVINE_ALEMBIC=local)
    installed = subprocess.run(["bash", "-e", "-c", f"{install} --quiet --no-compile"], env=env, capture_output=True,
                               text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    version = subprocess.run([str(venv / "bin" / "grapevine-migrations"), "--version"], env=env, capture_output=True,
                             text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.strip().endswith(VERSION), version.stdout + version.stderr
    [direct_url] = venv.glob("lib/python*/site-packages/grapevine_alembic-*.dist-info/direct_url.json")
    origin = json.loads(direct_url.read_text())
    assert origin["url"] == bare.as_uri() and origin["vcs_info"]["commit_id"] == commit
    assert origin["vcs_info"]["requested_revision"] == f"v{VERSION}"
