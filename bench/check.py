"""What `check` reports, and how fast, on the bench chain: ours alone, Squawk raw, merged and configured.

    python bench/check.py [--repeat 10] [--before 67491c6]

No database.  Writes the 40-file chain (bench/chain.py) into a scratch project and prints:

1. findings on the 40 files: our hand-written rules before Squawk came in (the code at
   ``--before``, run from a ``git archive`` of it), ours alone now (Squawk switched off),
   Squawk raw (default rules, no configuration), Squawk less the moot rules only, and
   `check` as shipped (merged and configured); then `check --changed-since` after one new
   risky file is committed on a branch (only that file is judged);
2. the wall time and CPU of the whole `grapevine-migrations check` process over 80 files (the
   chain as control and as tenant migrations), min and median of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BIN = Path(sys.executable).parent
CLI = str(BIN / "grapevine-migrations")
SQUAWK = str(BIN / "squawk")
BEFORE = "67491c6"  # the last commit whose check had only its five hand-written hazard rules
TARGET_SECONDS = 1.0

sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))
from chain import write_chain  # noqa: E402

from grapevine_alembic.lint.squawk import MOOT_RULES  # noqa: E402


def make_project(root: Path, envs: tuple[str, ...]) -> Path:
    root.mkdir(parents=True)
    for name in ("alembic_control", "alembic_tenant"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "alembic.ini", root / "alembic.ini")
    for env in ("control", "tenant"):
        folder = root / "migrations" / env
        if env in envs:
            write_chain(folder)
        else:
            folder.mkdir(parents=True)
    return root


def environment(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("CONTROL_DATABASE_URL", "GRAPEVINE_SQUAWK")}
    return {**env, "CI": "true", **extra}


def check_json(root: Path, *args: str, command=(CLI,), **env: str) -> list[dict]:
    done = subprocess.run([*command, "check", "--json", *args], cwd=root, env=environment(**env),
                          capture_output=True, text=True)
    if not done.stdout.strip():
        raise SystemExit(f"check failed: {done.stderr.strip()}")
    return json.loads(done.stdout)["findings"]


def squawk_raw(root: Path, *extra: str) -> list[dict]:
    files = sorted(str(p.relative_to(root)) for p in (root / "migrations").glob("*/*.sql"))
    done = subprocess.run([SQUAWK, "--reporter", "json", *extra, *files], cwd=root, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    return json.loads(done.stdout)


def old_checker(rev: str, into: Path) -> tuple[str, ...]:
    """A command running `check` as it was at ``rev`` (its package from git, today's dependencies)."""
    archive = subprocess.run(["git", "archive", rev, "grapevine_alembic"], cwd=REPO, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    runner = f"import sys; sys.path.insert(0, {str(into)!r}); import runpy; runpy.run_module('grapevine_alembic', run_name='__main__')"
    return (sys.executable, "-c", runner)


def summary(findings: list[dict], code_key: str = "code") -> str:
    levels = Counter(f.get("level", "").lower() for f in findings)
    codes = Counter(f[code_key] for f in findings)
    top = ", ".join(f"{code} {count}" for code, count in codes.most_common())
    per_level = ", ".join(f"{count} {level}" for level, count in sorted(levels.items()))
    return f"{len(findings):4d}  ({per_level})  {top}"


def timed_check(root: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, the process and its children) of one check."""
    started = time.perf_counter()
    proc = subprocess.Popen([CLI, "check"], cwd=root, env=environment(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise SystemExit("check crashed")
    return wall, usage.ru_utime + usage.ru_stime


def count_findings(work: Path, before: str) -> None:
    chain = make_project(work / "chain40", ("tenant",))
    old = old_checker(before, Path(tempfile.mkdtemp(dir=work)))
    ours_before = [f for f in check_json(chain, command=old) if f["level"] != "info"]
    ours_now = [f for f in check_json(chain, GRAPEVINE_SQUAWK=str(work / "no-squawk"))
                if f["level"] != "info" and f["code"] != "squawk-unavailable"]
    raw = squawk_raw(chain)
    less_moot = squawk_raw(chain, "--exclude", ",".join(MOOT_RULES))
    merged = [f for f in check_json(chain) if f["level"] != "info"]

    print("Findings (errors and warnings) on the 40-file bench chain:")
    print(f"  ours alone, before ({before}): {summary(ours_before)}")
    print(f"  ours alone, now:               {summary(ours_now)}")
    print(f"  Squawk raw (default rules):    {summary(raw, 'rule_name')}")
    print(f"  Squawk less the moot rules:    {summary(less_moot, 'rule_name')}")
    print(f"  merged and configured (check): {summary(merged)}")

    git = ["git", "-c", "user.email=bench@example.com", "-c", "user.name=bench"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=chain, check=True)
    subprocess.run([*git, "add", "-A"], cwd=chain, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "history"], cwd=chain, check=True)
    subprocess.run([*git, "checkout", "-q", "-b", "feature"], cwd=chain, check=True)
    (chain / "migrations" / "tenant" / "20240301000000_unique_card_name.sql").write_text(
        "ALTER TABLE cards ADD CONSTRAINT cards_name_unique UNIQUE (name);\n")
    changed = [f for f in check_json(chain, "--changed-since", "main") if f["level"] != "info"]
    print(f"  --changed-since main, one new risky file: {summary(changed)}")


def time_checks(work: Path, repeat: int) -> None:
    project = make_project(work / "chain80", ("control", "tenant"))
    files = len(list((project / "migrations").glob("*/*.sql")))
    timed_check(project)  # warm the file cache and the bytecode
    runs = [timed_check(project) for _ in range(repeat)]
    walls, cpus = [r[0] for r in runs], [r[1] for r in runs]
    print(f"`grapevine-migrations check` over {files} files, {repeat} runs (whole process):")
    print(f"  wall s  min {min(walls):.3f}  median {statistics.median(walls):.3f}  (target < {TARGET_SECONDS:.1f} s)")
    print(f"  CPU s   min {min(cpus):.3f}  median {statistics.median(cpus):.3f}  (user + system, squawk included)")
    started = time.perf_counter()
    squawk_raw(project)
    print(f"  for scale, one raw squawk run over the same files: {time.perf_counter() - started:.3f} s wall")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--before", default=BEFORE, help="git revision of the check before Squawk")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        count_findings(work, args.before)
        print()
        time_checks(work, args.repeat)


if __name__ == "__main__":
    main()
