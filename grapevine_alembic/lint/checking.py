"""``check``: validate the migration files for a pull request, without a database.

Ours: naming rules, duplicate versions, every file through PostgreSQL's own parser (errors
with file and line), the transaction shape, which files run outside a transaction, and the
hazards Squawk cannot see (``hazards``).  Squawk's rules (``squawk``) are merged into the same
list of findings, configured from what the runner guarantees.  ``-- grapevine-ignore``
comments (``ignores``) then silence warnings on purpose.  With ``changed_since`` only the files
a branch adds or edits are judged (``changes``).
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..files.discovery import discover
from ..files.migration import MigrationFile
from ..files.parsing import ParsedSql
from ..errors import GrapevineError
from .findings import Finding
from ..files.hazards import RULES_MOOT_ON_NEW_TABLES, find_hazards, new_table_spans
from ..files.tool_table_writes import CODE as TOOL_TABLE_CODE
from ..files.tool_table_writes import find_tool_table_writes
from .ignores import OUR_CODES, Ignores, read_ignores
from . import squawk
from .changes import changed_files, names_at, newest_version
from .squawk import Lint

@dataclass
class _Parsed:
    """A migration file that parsed: what the later passes need to know about it."""

    env: str
    parsed: ParsedSql
    ignores: Ignores


@dataclass
class CheckReport:
    findings: list[Finding] = field(default_factory=list)
    files: dict[str, int] = field(default_factory=dict)  # env -> number of migration files
    judged: int = 0  # files whose content was checked (all, or the changed ones)
    squawk: dict = field(default_factory=dict)
    _parsed: dict[str, _Parsed] = field(default_factory=dict, repr=False)  # relative path -> file

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]


def check_project(project, envs: tuple[str, ...], *, changed_since: str | None = None):
    """Every finding for the project's migration folders; returns (report, files per env)."""
    root = project.root
    changes = changed_files(root, changed_since) if changed_since is not None else None
    report = CheckReport()
    chains = {env: discover_folder(env, project.migration_dir(env), report, root, only=changes) for env in envs}
    judged = {env: [m for m in files if changes is None or m.path in changes] for env, files in chains.items()}
    squawk = Lint([_relative(m.path, root) for files in judged.values() for m in files], root)
    for env in envs:
        for migration in judged[env]:
            _check_file(env, migration, report, root, project.tool_tables(env))
        if changes is not None:
            history_findings(env, project.migration_dir(env), chains[env], changes, root, report)
    add_squawk_findings(report, squawk)
    vet_ignore_codes(report)
    apply_ignores(report)
    sort_findings(report, envs)
    return report, chains


def discover_folder(env: str, folder: Path, report: CheckReport, root: Path, *, only=None):
    """The migration files of one environment's folder; misnamed files and duplicates are findings.

    ``only`` (a ``changes.Changes``) limits the misnamed-file findings to the files it contains.
    """
    try:
        found = discover(folder)
    except GrapevineError as err:
        report.findings.append(Finding("error", env, None, None, "discovery", str(err)))
        return ()
    for warning in found.warnings:
        name = _near_miss_name(folder, warning)
        if only is not None and (name is None or folder / name not in only):
            continue
        # a near miss would be skipped by a deploy: in a pull request that is an error
        if name is None:
            report.findings.append(Finding("error", env, None, None, "file-name", warning))
        else:
            reason = warning.removeprefix(f"ignoring {folder / name}: ")
            report.findings.append(Finding("error", env, _relative(folder / name, root), None, "file-name",
                                           f"not run as a migration: {reason}", f"rename it {_NAME_HINT}"))
    report.files[env] = len(found.files)
    return found.files


_NAME_HINT = "YYYYMMDDHHMMSS_description.sql"


def _near_miss_name(folder: Path, warning: str) -> str | None:
    """The file a discovery warning is about (it starts with "ignoring <path>: ")."""
    try:
        names = os.listdir(folder)
    except OSError:
        return None
    return next((name for name in names if warning.startswith(f"ignoring {folder / name}: ")), None)


def _check_file(env: str, migration: MigrationFile, report: CheckReport, root: Path, tables) -> None:
    name = _relative(migration.path, root)
    report.judged += 1
    try:
        parsed = migration.parse()
    except GrapevineError as err:
        line = getattr(err, "line", None)
        message = str(err).split(": ", 2)[-1] if line else str(err).split(": ", 1)[-1]
        report.findings.append(Finding("error", env, name, line, "parse", message))
        return
    report._parsed[name] = _Parsed(env, parsed, read_ignores(migration.read_text(), parsed))
    if not migration.plain_description:
        report.findings.append(Finding(
            "warning", env, name, None, "file-name-characters",
            "the description has characters beyond letters, digits, _ and - (it still runs)",
            "name new files the way `create` names them",
        ))
    for note in parsed.notes:
        # shapes the previous tool ran and this one runs the same way: worth a word, never an error
        report.findings.append(Finding("warning", env, name, note.line, note.code, note.message, note.fix))
    first = next((s for s in parsed.statements if not s.transactional), parsed.statements[0] if parsed.statements else None)
    if not parsed.transactional and first is not None:
        reason = "a no-transaction directive" if parsed.no_transaction_directive else first.kind
        report.findings.append(Finding(
            "info", env, name, first.line, "no-transaction",
            f"runs outside a transaction, statement by statement ({reason})",
            "make it safe to re-run (IF NOT EXISTS, IF EXISTS)",
        ))
    for hazard in find_hazards(parsed):
        report.findings.append(Finding("warning", env, name, hazard.line, hazard.code, hazard.message, hazard.fix))
    for write in find_tool_table_writes(parsed.statements, tables, control=env == "control"):  # migrate refuses it
        report.findings.append(Finding("error", env, name, write.line, TOOL_TABLE_CODE, write.message, write.fix(env)))


def add_squawk_findings(report: CheckReport, lint) -> None:
    """Merge Squawk's findings (``lint``, a ``squawk.Lint``) on the files that parsed, where they still apply."""
    wrapped_by_runner = {name: p.parsed.transactional and not p.parsed.wrapped for name, p in report._parsed.items()}
    result = lint.result(wrapped_by_runner)
    report.squawk = {"binary": result.binary, "excluded_rules": result.excluded_rules,
                     "ran": bool(wrapped_by_runner) and not (result.unavailable or result.config_error)}
    if result.config_error:
        report.findings.append(Finding("error", None, squawk.CONFIG_NAME, None, "squawk-config", result.config_error))
    if result.unavailable:
        report.findings.append(Finding("warning", None, None, None, "squawk-unavailable", result.unavailable,
                                       f"pip install squawk-cli, or point {squawk.ENV_BINARY} at a squawk binary"))
    unparsed = set()
    for found in result.findings:
        checked = report._parsed.get(found.file)
        if checked is None or _moot(found.code, found.line, checked.parsed):
            continue
        if found.code == "syntax-error":
            # PostgreSQL's own parser accepted the file: Squawk's parser is the one that fell short
            if found.file not in unparsed:
                unparsed.add(found.file)
                report.findings.append(Finding(
                    "warning", checked.env, found.file, found.line, "squawk-parse",
                    f"Squawk cannot parse this file ({found.message}), so its rules were not checked here",
                    "check the statement by hand; silence with -- grapevine-ignore-file: squawk-parse",
                ))
            continue
        report.findings.append(Finding(found.level, checked.env, found.file, found.line, found.code,
                                       found.message, found.fix, "squawk"))


def _moot(code: str, line: int, parsed: ParsedSql) -> bool:
    """Squawk findings our view of the whole file shows to be harmless."""
    if code == "prefer-robust-stmts" and parsed.transactional:
        return True  # the whole file is one transaction: a failure leaves nothing to re-run around
    if code in RULES_MOOT_ON_NEW_TABLES:
        return any(first <= line <= last for first, last in new_table_spans(parsed))
    return False


def history_findings(env: str, folder: Path, files, changes, root: Path, report: CheckReport) -> None:
    """An error for every changed file not newer than the newest migration at the base revision."""
    changed = [m for m in files if m.path in changes]
    if not changed:
        return
    at_base = names_at(root, changes.rev, folder)
    newest = newest_version(at_base)
    for migration in changed:
        if newest is None or migration.version > newest:
            continue
        name = _relative(migration.path, root)
        if migration.path.name in at_base:
            report.findings.append(Finding(
                "error", env, name, None, "edited-after-merge",
                f"this migration is already in {changes.rev}; editing it changes history "
                "(databases that applied it will not run it again)",
                "revert the edit and write a new migration",
            ))
        else:
            report.findings.append(Finding(
                "error", env, name, None, "older-than-merged",
                f"version {migration.version} is not newer than {newest}, the newest migration in {changes.rev}: "
                "databases already past it would never run it",
                f"rename it with a timestamp after {newest}",
            ))


def vet_ignore_codes(report: CheckReport) -> None:
    """An error for each code in a ``grapevine-ignore`` comment that no check has: it would silence nothing.

    A code that is not ours is asked of Squawk; when Squawk cannot tell (not installed), it is let be.
    """
    named = {code for checked in report._parsed.values() for _, code in checked.ignores.named} - OUR_CODES
    unknown = squawk.unknown_rules(named, report.squawk.get("binary")) if named else set()
    for name, checked in report._parsed.items():
        for line, code in checked.ignores.named:
            if code in (unknown or ()):
                close = difflib.get_close_matches(code, sorted(OUR_CODES), n=1)
                report.findings.append(Finding(
                    "error", checked.env, name, line, "ignore-code",
                    f"grapevine-ignore names {code}, which is no warning or note code of check or Squawk:"
                    " it silences nothing", f"did you mean {close[0]}?" if close else "use the code check printed",
                ))


def apply_ignores(report: CheckReport) -> None:
    """Drop the warnings and notes that a ``-- grapevine-ignore`` comment silences."""
    def silenced(finding: Finding) -> bool:
        checked = report._parsed.get(finding.file or "")
        return (finding.level != "error" and checked is not None
                and checked.ignores.covers(finding.code, finding.line))

    report.findings = [f for f in report.findings if not silenced(f)]


def sort_findings(report: CheckReport, envs: tuple[str, ...]) -> None:
    """Project-wide findings first, then file by file in chain order, by line."""
    order = {env: index for index, env in enumerate(envs)}
    report.findings.sort(key=lambda f: (f.file is not None, order.get(f.env, -1), f.file or "", f.line or 0))


def against_database(env: str, files, results, report: CheckReport) -> None:
    """Files older than a database's head that it never applied (they would otherwise look applied)."""
    for result in results:
        if not result.ok:
            report.findings.append(Finding("error", env, None, None, "database",
                                           f"{result.target.database}: {result.error}"))
            continue
        for migration in result.plan.out_of_order:
            report.findings.append(Finding(
                "warning", env, migration.path.name, None, "out-of-order",
                f"older than {result.target.database}'s version {result.plan.head} and never applied there",
            ))


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)
