"""What happens on one database during a run: the journal that migrations, the ledger and the notice printer share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ...files.migration import MigrationFile
from ...tool_tables import DEFAULT_TABLES, ToolTables
from ..session.connection import SessionPolicy

__all__ = ["Journal", "NoticeSink"]


@dataclass
class Journal:
    """What happens on one database during a run, shared by migrations, the ledger and the notice printer."""

    database: str
    on_notice: Callable[[str, str | None, str], None] | None = None
    current: MigrationFile | None = None
    durations_ms: dict[str, int] = field(default_factory=dict)
    applied: list[str] = field(default_factory=list)
    # The tool's session state, put back before every file (None: leave the session alone).
    policy: SessionPolicy | None = None
    muted: bool = False  # while a failed transaction is replayed: its notices were shown once
    session_used: bool = False  # a file's body ran on this session since the tool last reset it
    tables: ToolTables = DEFAULT_TABLES  # the names of the tool's version table and ledger

    def notice(self, message: str) -> None:
        if self.on_notice is not None and not self.muted:
            self.on_notice(self.database, self.current.version if self.current else None, message)


class NoticeSink:
    """Stands in for ``psycopg2.connection.notices``: psycopg2 calls ``append`` once per server notice."""

    def __init__(self, journal: Journal):
        self.journal = journal

    def append(self, message: str) -> None:
        if "there is no transaction in progress" in message:
            return  # Alembic's rollback after a transaction the tool already rolled back: noise
        # "NOTICE:  text\n" -> "NOTICE: text"
        severity, _, text = message.strip().partition(":")
        self.journal.notice(f"{severity}: {text.strip()}" if text else message.strip())
