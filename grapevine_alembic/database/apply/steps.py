"""One transaction's SQL as steps (the file's statements and the tool's own SQL), grouped into round trips.

Each transaction goes to the server in as few round trips as the file allows: ``DO``, ``CALL``
and ``SELECT`` get their own, so their notices show as they finish, and a ``COPY`` is a protocol
exchange that nothing shares.  A step knows the file line it stands for, so an error position in
a round trip's text names the file's line.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...files.parsing import Statement
from . import pgerror
from ..session.connection import SessionPolicy

__all__ = ["Step", "join", "line_at", "line_of", "round_trips", "span", "statement_steps"]


@dataclass(frozen=True)
class Step:
    """One piece of a transaction's SQL: a file statement, or the tool's own SQL (``what`` says which)."""

    sql: str | None  # None: the statement's text, read when sent (a chunk's comes from the file)
    statement: Statement | None = None
    what: str = ""
    line: int | None = None  # the file line a tool step stands for (the file's COMMIT)

    @property
    def text(self) -> str:
        return self.sql if self.sql is not None else self.statement.sql

    @property
    def own_round_trip(self) -> bool:
        return self.statement is not None and self.statement.kind in _OWN_ROUND_TRIP

    @property
    def copy(self):
        """COPY ... FROM stdin's inline rows: sent with the COPY protocol, alone in its round trip."""
        return self.statement.copy if self.statement is not None else None


# Statements whose notices are worth seeing as they happen (backfills, progress reports) get a
# round trip of their own, as does each chunk of plain statements (so a round trip stays bounded);
# runs of other statements go to the server as one batch.
_OWN_ROUND_TRIP = {"DoStmt", "CallStmt", "SelectStmt", "Chunk"}


def statement_steps(statements, policy: SessionPolicy | None) -> list[Step]:
    steps = []
    for statement in statements:
        steps.append(Step(None, statement))
        if statement.resets_session and policy is not None:
            steps.append(Step(policy.restore_sql(), what="restoring the tool's session settings: "))
    return steps


def round_trips(steps: list[Step]) -> list[list[Step]]:
    """Group steps into round trips; a DO/CALL/SELECT never shares one with another statement."""
    trips: list[list[Step]] = [[]]
    last: Step | None = None  # the current trip's last file statement
    for step in steps:
        if step.copy is not None or (trips[-1] and trips[-1][-1].copy is not None):
            trips.append([])  # a COPY is a protocol exchange of its own: nothing shares it
            last = None
        elif step.statement is not None and last is not None and (step.own_round_trip or last.own_round_trip):
            trips.append([])
            last = None
        trips[-1].append(step)
        if step.statement is not None:
            last = step
    return [trip for trip in trips if trip]


def join(trip: list[Step]) -> tuple[str, list[int]]:
    """The round trip's text and where each step starts in it (0-based)."""
    parts, starts, offset = [], [], 0
    for step in trip:
        starts.append(offset)
        parts.append(step.text)
        offset += len(parts[-1]) + 3
    return "\n;\n".join(parts), starts  # newline first: ends a trailing -- comment


def span(trip: list[Step]) -> tuple[Step, Step]:
    """A failure that cannot be pinned to one step: the round trip's first and last file statements
    (the tool's COMMIT after the last one is no statement of the range)."""
    placed = [s for s in trip if s.statement is not None or s.line is not None] or trip
    statements = [s for s in placed if s.statement is not None]
    return (placed[0], statements[-1] if statements else placed[-1])


def line_of(step: Step) -> int | None:
    return step.statement.line if step.statement is not None else step.line


def last_line_of(step: Step) -> int | None:
    """The line of a step's last token: where a range that ends on it ends."""
    statement = step.statement
    if statement is None:
        return step.line
    return getattr(statement, "last_line", None) or statement.line + statement.sql.rstrip().count("\n")


def line_at(step: Step, offset: int) -> int | None:
    """The file line at character ``offset`` of a step's text (a tool step: the line it stands for)."""
    if step.statement is None:
        return step.line
    return pgerror.line_of_position(step.text, step.statement.line, offset + 1)
