"""Everything a person or CI reads: tables, progress, plain lines and JSON.

On a terminal: rich tables and a progress bar on stderr.  Piped or in CI: plain
aligned lines, no colour codes.  ``--json``: one document on stdout and nothing
else there.  Every line passes through ``redact`` first, so a password can never
reach the screen, a log or a CI summary, whatever error text carries it.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections import Counter
from typing import Iterable

from ..database.state.result import DatabaseResult
from ..masking import known_secrets, mask
from .progress import Progress


# Parallel tenants print notices from their own threads: one lock and one write per line, so
# two lines never run together (print() writes the text and the newline separately).
_WRITE_LOCK = threading.Lock()


def write_line(stream, text: str, *, style: str | None = None) -> None:
    if style and colour_on(stream):
        text = f"{_ANSI[style]}{text}\x1b[0m"
    with _WRITE_LOCK:
        stream.write(text + "\n")
        stream.flush()


def notice_line(database: str, version: str | None, message: str) -> str:
    """A server notice, prefixed with the database and the migration version (the CLI and env.py print the same line)."""
    return f"{database} {version or '-'}: {message}"


def waiting_line(database: str) -> str:
    return f"{database}: waiting for another migration run to finish"


def retry_line(database: str, attempt: int, error: str, delay: float) -> str:
    """A transient failure about to be retried (the CLI and env.py print the same line)."""
    return f"{database}: attempt {attempt} failed ({error.splitlines()[0]}); retrying in {delay:.1f}s"


_ANSI = {"red": "\x1b[31m", "yellow": "\x1b[33m"}


def colour_on(stream) -> bool:
    """Colour only on a terminal, never in CI or when NO_COLOR is set."""
    return stream.isatty() and not os.environ.get("CI") and not os.environ.get("NO_COLOR")


def redact(text: str, secrets) -> str:
    """Mask every known password in ``text`` (see ``masking.mask``: the one masking function)."""
    return mask(text, secrets)


class Output:
    """Where text goes, with known secrets masked in every line."""

    # One process is one command: every Output masks every secret any of them learned.
    secrets: set[str] = set()
    password_variables: tuple[str, ...] = ()  # alembic.ini's password_env names, once read
    documents_printed = 0  # --json promises exactly one document, failures included

    def __init__(self, *, json_mode: bool = False, secrets: Iterable[str] = ()):
        self.json_mode = json_mode
        for secret in secrets:
            self.add_secret(secret)
        self.interactive = sys.stdout.isatty() and not os.environ.get("CI")

    @staticmethod
    def new_command() -> None:
        """Forget the previous command's secrets and documents: main() may run twice in one process."""
        Output.secrets = set()
        Output.password_variables = ()
        Output.documents_printed = 0

    def add_secret(self, secret: str | None) -> None:
        if secret and len(secret) >= 3:
            Output.secrets.add(secret)

    def redact(self, text: str) -> str:
        return redact(text, self.secrets | known_secrets(variables=Output.password_variables))

    def line(self, text: str = "") -> None:
        """Human output: stdout normally, stderr in --json mode so stdout stays one document."""
        write_line(sys.stderr if self.json_mode else sys.stdout, self.redact(text))

    def info(self, text: str) -> None:
        write_line(sys.stderr, self.redact(text))

    def error(self, text: str) -> None:
        write_line(sys.stderr, self.redact(f"error: {text}"), style="red")

    def document(self, payload: dict) -> None:
        Output.documents_printed += 1
        write_line(sys.stdout, self.redact(json.dumps(payload, indent=2, default=str)))

    def table(self, headers: list[str], rows: list[list[str]]) -> None:
        if not rows:
            return
        if self.interactive and not self.json_mode:
            from rich.console import Console
            from rich.table import Table

            from rich.text import Text

            table = Table(*headers, box=None, header_style="bold", pad_edge=False)
            for row in rows:  # Text, not markup: a "[...]" in an error must print as it is
                table.add_row(*(Text(self.redact(cell), style=_cell_style(cell)) for cell in row))
            with _WRITE_LOCK:
                Console().print(table)
            return
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
        for row in [headers, *rows]:
            self.line("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())

    def progress(self, total: int, label: str) -> Progress:
        """A live bar at a terminal, a plain line every few seconds otherwise; a callable to advance it."""
        return Progress(self.info, total, label, interactive=self.interactive)


def _cell_style(cell: str) -> str:
    """FAILED and errors red, pending yellow: what needs a look stands out on a terminal."""
    if cell in {"FAILED", "error", "missing", "unreachable"}:
        return "bold red"
    if "pending" in cell or "out of order" in cell or cell == "skipped":
        return "yellow"
    return ""


# ---- result documents ------------------------------------------------------------------------


def database_json(result: DatabaseResult, *, verbose: bool = False, chain=None) -> dict:
    plan = result.plan
    done = set(result.applied)
    doc = {
        "target": result.target.env,
        "tenant": result.target.tenant_id,
        "database": result.target.database,
        "server": result.target.server,
        "ok": result.ok,
        "skipped": result.skipped,
        "missing": result.missing,
        "error": result.error,
        "version_before": result.before,
        "version": result.after,
        "applied": result.applied,
        # what is still to do after this run: the plan was made before it applied anything
        "pending": [m.version for m in plan.pending if m.version not in done] if plan else [],
        "out_of_order": [m.version for m in plan.out_of_order if m.version not in done] if plan else [],
        "edited": [m.version for m in plan.edited] if plan else [],
        "unknown": list(plan.lost) if plan else [],
        "attempts": result.attempts,
        "seconds": round(result.seconds, 3),
    }
    if result.warnings:
        doc["warnings"] = result.warnings
    if result.changes:
        doc.update(changes=result.changes, marked=result.marked, unmarked=result.unmarked)
    if verbose and chain is not None and result.state is not None:
        doc["migrations"] = migration_rows(result, chain)
    return doc


def migration_rows(result: DatabaseResult, chain) -> list[dict]:
    """Every migration of the chain with its state on this database, oldest first."""
    ledger = result.state.ledger if result.state else {}
    head = result.plan.head if result.plan else None
    out_of_order = {m.version for m in result.plan.out_of_order} if result.plan else set()
    rows = []
    for migration in chain.files:
        row = ledger.get(migration.version)
        applied = row is not None or (not ledger and head is not None and migration.version <= head)
        if migration.version in out_of_order:
            applied = False
        rows.append(
            {
                "version": migration.version,
                "description": migration.message,
                "applied": applied,
                "applied_at": row.applied_at.isoformat() if row and row.applied_at else None,
                "applied_by": row.applied_by if row else None,
                "edited": bool(row and row.checksum and row.checksum != migration.checksum),
            }
        )
    return rows


def summary_json(results: list[DatabaseResult]) -> dict:
    return {
        "databases": len(results),
        "ok": sum(r.ok and not r.skipped for r in results),
        "failed": sum(not r.ok and not r.skipped for r in results),
        "skipped": sum(r.skipped for r in results),
        "applied": sum(len(r.applied) for r in results),
        "retries": sum(max(r.attempts - 1, 0) for r in results),
    }


def server_counts(results: list[DatabaseResult]) -> list[dict]:
    """Per server, in order of first appearance: its tenants and how they stand."""
    servers: dict[str, dict] = {}
    for result in results:
        counts = servers.setdefault(result.target.server, {"server": result.target.server, "tenants": 0, "at_head": 0,
                                                            "behind": 0, "failed": 0, "unreachable": 0})
        counts["tenants"] += 1
        if result.unreachable:
            counts["unreachable"] += 1
        elif not result.ok:
            counts["failed"] += 1
        elif result.plan and result.plan.up_to_date:
            counts["at_head"] += 1
        elif result.plan:
            counts["behind"] += 1
    return list(servers.values())


def version_counts(results: list[DatabaseResult]) -> list[tuple[str, int]]:
    """How many databases sit at each version, in version order ('(none)' first, then 'missing' (no such
    database) and 'error' last)."""
    counts = Counter((r.after or "(none)") if r.ok else ("missing" if r.missing else "error") for r in results)
    return sorted(counts.items(), key=lambda item: (item[0] in ("missing", "error"), item[0] == "error", item[0]))


def status_word(result: DatabaseResult) -> str:
    if result.unreachable:
        return "unreachable"
    if result.skipped:
        return "skipped"
    if not result.ok:
        return "missing" if result.missing else "error"
    plan = result.plan
    if plan is None:
        return "ok"
    bits = []
    if plan.pending:
        bits.append(f"{len(plan.pending)} pending")
    if plan.out_of_order:
        bits.append(f"{len(plan.out_of_order)} out of order")
    if plan.adopt_to:
        bits.append("previous tool's ledger: `migrate` adopts it")
    if plan.edited:
        bits.append(f"{len(plan.edited)} edited after applied")
    if plan.lost:
        bits.append(f"{len(plan.lost)} unknown in database")
    return ", ".join(bits) or "up to date"


def short(result: DatabaseResult) -> str:
    return result.target.label
