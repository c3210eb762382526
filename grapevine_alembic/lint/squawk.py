"""Run Squawk (PyPI ``squawk-cli``, a prebuilt binary) over migration files; return its findings.

Configured from what the runner guarantees (see ``MOOT_RULES``); the project's ``.squawk.toml``
is passed on, its ``excluded_rules`` added to ours.  Each file is linted the way it will run:
a transactional file without its own ``BEGIN``/``COMMIT`` is run inside one transaction by the
runner, so Squawk is told to assume one (``--assume-in-transaction``); files with their own
``BEGIN``/``COMMIT`` and files that run outside a transaction are linted as written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

# Rules the runner makes moot, and why (docs/ci.md says the same).
MOOT_RULES = {
    "require-lock-timeout": "every session sets lock_timeout (default 5 s, on every way in)",
    "require-statement-timeout": "every session sets statement_timeout (default 300 s, on every way in)",
    "transaction-nesting": "the file's own BEGIN/COMMIT are honoured; check reports their shape itself",
    "ban-uncommitted-transaction": "check reports a BEGIN without COMMIT itself, with its line",
    "ban-concurrent-index-creation-in-transaction": (
        "check rejects any statement that cannot run in a transaction inside the file's BEGIN/COMMIT"
    ),
}
ENV_BINARY = "GRAPEVINE_SQUAWK"  # path of the squawk binary to use instead of the installed one
CONFIG_NAME = ".squawk.toml"
DOCS = "https://squawkhq.com/docs/"


@dataclass(frozen=True)
class SquawkFinding:
    file: str  # as passed to squawk: relative to the project root
    line: int  # from 1
    level: str  # "error" or "warning"
    code: str
    message: str
    fix: str


@dataclass
class SquawkResult:
    findings: list[SquawkFinding] = field(default_factory=list)
    binary: str | None = None
    excluded_rules: list[str] = field(default_factory=list)
    unavailable: str | None = None  # why Squawk did not run, one line
    config_error: str | None = None  # .squawk.toml could not be used, one line


def find_binary() -> str | None:
    """``$GRAPEVINE_SQUAWK``, else the squawk installed beside this Python, else on PATH."""
    configured = os.environ.get(ENV_BINARY)
    if configured:
        return configured
    beside = Path(sys.executable).parent / ("squawk.exe" if os.name == "nt" else "squawk")
    if beside.is_file():
        return str(beside)
    return shutil.which("squawk")


class Lint:
    """Squawk running in the background over some files, linted both ways at once.

    Whether the runner wraps a file in a transaction is known only once our parser has read
    it; Squawk is fast, so both runs start at once (beside our parser, on another core) and
    ``result`` keeps, for each file, the findings of the run that matches how it will run.
    """

    def __init__(self, paths: list[str], root: Path):
        self._result = SquawkResult(binary=find_binary())
        self._runs: dict[bool, Future] = {}
        config_path = root / CONFIG_NAME
        try:
            config = _read_config(config_path)
        except ValueError as err:
            self._result.config_error = str(err)
            return
        excluded = sorted(set(MOOT_RULES) | set(config.get("excluded_rules", [])))
        self._result.excluded_rules = excluded
        if not paths:
            return
        if self._result.binary is None:
            self._result.unavailable = (
                "squawk is not installed (pip install squawk-cli): its rules were not checked")
            return
        base = [self._result.binary, "--reporter", "json", "--no-error-on-unmatched-pattern",
                "--exclude", ",".join(excluded)]
        if config_path.is_file():
            base += ["--config", str(config_path)]
        pool = ThreadPoolExecutor(max_workers=2)
        for assume in (True, False):
            flag = "--assume-in-transaction" if assume else "--no-assume-in-transaction"
            self._runs[assume] = pool.submit(_run, [*base, flag, *paths], root, config_path)
        pool.shutdown(wait=False)

    def result(self, in_transaction: dict[str, bool]) -> SquawkResult:
        """Findings for the files in ``in_transaction`` (path -> the runner wraps it in a transaction)."""
        result = self._result
        for assume, run in self._runs.items():
            outcome = run.result()
            if isinstance(outcome, str):
                if outcome.startswith(CONFIG_NAME):
                    result.config_error = outcome
                else:
                    result.unavailable = outcome
                result.findings = []
                return result
            result.findings += [f for f in outcome if in_transaction.get(f.file) is assume]
        return result


def _read_config(path: Path) -> dict:
    """The project's .squawk.toml (empty without one); ValueError with a one-line reason."""
    if not path.is_file():
        return {}
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ValueError(f"{CONFIG_NAME}: {err}") from err
    excluded = config.get("excluded_rules", [])
    if not isinstance(excluded, list) or not all(isinstance(rule, str) for rule in excluded):
        raise ValueError(f"{CONFIG_NAME}: excluded_rules must be a list of rule names")
    return config


def _run(args: list[str], root: Path, config_path: Path) -> list[SquawkFinding] | str:
    """Run squawk once; its findings, or one line saying why it could not run."""
    try:
        done = subprocess.run(args, cwd=root, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              timeout=120)
    except (OSError, subprocess.SubprocessError) as err:
        return f"squawk at {args[0]} cannot run ({_reason(err)}): its rules were not checked"
    try:
        raw = json.loads(done.stdout)
        return [_finding(item) for item in raw]
    except (ValueError, TypeError, KeyError, AttributeError):
        said = next((line.strip() for line in done.stderr.splitlines() if line.strip()), "")
        if config_path.is_file() and ("Configuration error" in said or "invalid value" in said):
            return f"{CONFIG_NAME}: squawk rejected it: {said}"
        why = said or f"exit status {done.returncode}, no JSON report"
        return f"squawk at {args[0]} cannot run ({why}): its rules were not checked"


def _reason(err: Exception) -> str:
    if isinstance(err, subprocess.TimeoutExpired):
        return "no answer after 120 s"
    return getattr(err, "strerror", None) or str(err)


def _finding(item: dict) -> SquawkFinding:
    """One entry of squawk's JSON report (0-based lines) as a finding (lines from 1)."""
    code = item["rule_name"]
    return SquawkFinding(
        file=item["file"],
        line=int(item["line"]) + 1,
        level="error" if str(item.get("level", "")).lower() == "error" else "warning",
        code=code,
        message=" ".join(str(item["message"]).split()),
        fix=item.get("help") or f"see {DOCS}{code}",
    )


def unknown_rules(names: set[str], binary: str | None) -> set[str] | None:
    """Which of ``names`` Squawk has no rule for, asked of the binary (its rules change between
    releases); None when it cannot tell (not installed, or an answer we do not understand)."""
    left, unknown = set(names), set()
    while left and binary:
        try:
            done = subprocess.run([binary, "--exclude", ",".join(sorted(left))], capture_output=True, text=True,
                                  stdin=subprocess.DEVNULL, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        if done.returncode == 0:
            return unknown
        refused = re.search(r"invalid rule name (\S+)", done.stderr)  # it names the first one it refuses
        if refused is None or refused[1] not in left:
            return None
        unknown.add(refused[1])
        left.discard(refused[1])
    return unknown if binary else None
