"""``grapevine-migrations summary FILE``: any ``--json`` document of the CLI as a Markdown job summary.

Run documents (migrate, mark, reset), status, check, list, and the failure document a command
prints when it could not run at all (``{"command", "ok": false, "error"}``).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import GrapevineError


class NoDocument(GrapevineError):
    """The file holds no JSON document: the step that should have written it crashed or never ran."""


def render(path: Path) -> list[str]:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise NoDocument(f"{path} holds no JSON document ({type(err).__name__}): the step that writes it failed"
                         " before printing one") from None
    if not isinstance(doc, dict):
        raise NoDocument(f"{path} holds JSON but not a grapevine-migrations document")
    command = doc.get("command") or "list"
    if "databases" in doc:
        return _run(command, doc)
    if command == "check":
        return _check(doc)
    if doc.get("ok") is False:
        return [f"### {command}: FAILED", "", _cell(doc.get("error") or "unknown error")]
    if command == "list":
        return ["### list", ""] + [f"* {env}: {len(files)} migration(s)" for env, files in doc.items()]
    return [f"### {command}: ok"]


def _run(command: str, doc: dict) -> list[str]:
    summary = doc.get("summary", {})
    title = (f"### {command}: {summary.get('ok', 0)} ok, {summary.get('failed', 0)} failed,"
             f" {summary.get('skipped', 0)} skipped, {summary.get('applied', 0)} migration(s) applied")
    lines = [title + (" (interrupted)" if doc.get("interrupted") else ""), ""]
    if doc.get("error"):
        lines += [_cell(doc["error"]), ""]
    lines += ["| database | applied | version | result |", "| --- | --- | --- | --- |"]
    for db in doc["databases"]:
        result = "skipped" if db.get("skipped") else ("ok" if db.get("ok") else f"FAILED: {db.get('error')}")
        lines.append(f"| {db.get('database')} | {len(db.get('applied') or [])} | {db.get('version') or '-'}"
                     f" | {_cell(result)} |")
    return lines


def _check(doc: dict) -> list[str]:
    state = "ok" if doc.get("ok") else "FAILED"
    lines = [f"### check: {state}, {doc.get('errors', 0)} error(s), {doc.get('warnings', 0)} warning(s)", ""]
    for finding in doc.get("findings", []):
        where = f"{finding.get('file')}:{finding.get('line')}" if finding.get("line") else finding.get("file")
        lines.append(f"* {finding.get('level')}: {where}: {_cell(finding.get('message') or '')}")
    return lines


def _cell(text: str) -> str:
    """One Markdown line: a pipe would split the table, a newline would end it."""
    return str(text).replace("|", "\\|").replace("\n", " ")
