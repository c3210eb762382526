"""``check``: validate the migration files for a pull request, without a database.

Naming rules, duplicate versions, every file through PostgreSQL's own parser
(errors with file and line), which files run outside a transaction, and
warnings for common deploy hazards on existing tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import sqlfile
from .errors import GrapevineError
from .hazards import find_hazards


@dataclass
class Finding:
    level: str  # "error", "warning" or "info"
    env: str
    file: str | None
    line: int | None
    code: str
    message: str

    def text(self) -> str:
        where = f"{self.file}:{self.line}: " if self.line else (f"{self.file}: " if self.file else "")
        return f"{self.level}: {where}{self.message}"

    def as_json(self) -> dict:
        return {"level": self.level, "env": self.env, "file": self.file, "line": self.line, "code": self.code,
                "message": self.message}


@dataclass
class CheckReport:
    findings: list[Finding] = field(default_factory=list)
    files: dict[str, int] = field(default_factory=dict)  # env -> number of migration files

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]


def check_folder(env: str, folder: Path, report: CheckReport, root: Path) -> tuple[sqlfile.MigrationFile, ...]:
    """Add every finding for one environment's folder; returns its migration files."""

    def rel(path: Path) -> str:
        try:
            return str(Path(path).relative_to(root))
        except ValueError:
            return str(path)

    try:
        found = sqlfile.discover(folder)
    except GrapevineError as err:
        report.findings.append(Finding("error", env, None, None, "discovery", str(err)))
        return ()
    for warning in found.warnings:
        # a near miss would be skipped by a deploy: in a pull request that is an error
        report.findings.append(Finding("error", env, None, None, "file-name", warning))
    report.files[env] = len(found.files)
    for migration in found.files:
        name = rel(migration.path)
        try:
            parsed = migration.parse()
        except GrapevineError as err:
            line = getattr(err, "line", None)
            message = str(err).split(": ", 2)[-1] if line else str(err).split(": ", 1)[-1]
            report.findings.append(Finding("error", env, name, line, "parse", message))
            continue
        if not migration.plain_description:
            report.findings.append(Finding(
                "warning", env, name, None, "file-name-characters",
                "the description has characters beyond letters, digits, _ and - (it still runs);"
                " fix: rename new files the way `create` names them",
            ))
        for note in parsed.notes:
            # shapes the previous tool ran and this one runs the same way: worth a word, never an error
            report.findings.append(Finding("warning", env, name, note.line, note.code, f"{note.message}; fix: {note.fix}"))
        if not parsed.transactional:
            first = next((s for s in parsed.statements if not s.transactional), parsed.statements[0] if parsed.statements else None)
            if first is None:
                continue
            reason = "a no-transaction directive" if parsed.no_transaction_directive else first.kind
            report.findings.append(Finding(
                "info", env, name, first.line, "no-transaction",
                f"runs outside a transaction, statement by statement ({reason}); make it safe to re-run",
            ))
        for hazard in find_hazards(parsed):
            report.findings.append(Finding("warning", env, name, hazard.line, hazard.code, hazard.message))
    return found.files


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
