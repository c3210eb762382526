"""A scratch project for ``check`` alone: alembic.ini, both env folders, no database at all.

``check`` never connects (without ``--against-db``), so these tests run the CLI (in this process,
isolated like a child: tests/inprocess.py) with no ``CONTROL_DATABASE_URL`` and look at its output
and exit code.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


class CheckProject:
    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        for name in ("alembic_control", "alembic_tenant"):
            shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(REPO / "alembic.ini", root / "alembic.ini")
        shutil.copytree(REPO / "migrations" / "control", root / "migrations" / "control")
        (root / "migrations" / "tenant").mkdir(parents=True)
        self.env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/root"), "CI": "true",
                    "PYTHONDONTWRITEBYTECODE": "1"}

    def write(self, name: str, sql: str, env: str = "tenant") -> Path:
        path = self.root / "migrations" / env / name
        path.write_text(sql)
        return path

    def cli(self, *args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
        import inprocess  # lazy: collecting the suite does not import the product

        merged = {k: v for k, v in {**self.env, **(env or {})}.items() if v is not None}
        if os.environ.get("GRAPEVINE_TESTS_SUBPROCESS"):  # the old way, to compare or bisect
            return subprocess.run([str(BIN / "grapevine-migrations"), *args], cwd=cwd or self.root, env=merged,
                                  capture_output=True, text=True, timeout=120)
        return inprocess.run("grapevine-migrations", list(args), env=merged, cwd=cwd or self.root)

    def check_json(self, *args: str, env: dict | None = None) -> dict:
        result = self.cli("check", "--json", *args, env=env)
        assert "Traceback" not in result.stderr, result.stderr
        doc = json.loads(result.stdout)
        doc["exit"] = result.returncode
        return doc

    def git(self, *args: str) -> str:
        return subprocess.run(["git", "-c", "user.email=dev@example.com", "-c", "user.name=dev", *args],
                              cwd=self.root, capture_output=True, text=True, check=True).stdout


def codes_by_file(doc: dict) -> dict[str, set[str]]:
    """{file name: the codes found in it} from a ``check --json`` document."""
    found: dict[str, set[str]] = {}
    for finding in doc["findings"]:
        if finding["file"]:
            found.setdefault(Path(finding["file"]).name, set()).add(finding["code"])
    return found
