"""``-- grapevine: precheck``: SELECTs at the head of a file that must answer true before it runs.

A line ``-- grapevine: precheck`` followed by one ``SELECT`` returning one boolean named with
``AS`` (the check's name), anywhere before the file's first other statement.  The tool takes these
SELECTs out of the file's body and runs them first, read-only (``database/apply/prechecks``); the
previous tool and psql see an ordinary comment and an ordinary SELECT, so the file stays portable.

Only the shape is judged here (one plain SELECT, one named column, nothing that writes or locks);
whether the answer is a boolean, and whether the query writes through a function, only the
database can say: it runs in a read-only transaction.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from typing import Any

from ..errors import MigrationFileError
from .sqlstream import BLOCK_BYTES, Source

__all__ = ["Precheck", "directive_lines", "take_prechecks"]

_DIRECTIVE = re.compile(rb"^(?:\xef\xbb\xbf)?[ \t]*--[ \t]*grapevine[ \t]*:[ \t]*precheck[ \t]*\r?$",
                        re.IGNORECASE | re.MULTILINE)

_SHAPE = "a precheck is one SELECT returning one boolean named with AS, e.g. SELECT count(*) = 0 AS no_orphans FROM ..."


@dataclass(frozen=True)
class Precheck:
    """One check: its name (the column's alias), its SELECT as written, its first line."""

    name: str
    sql: str
    line: int


def directive_lines(source: Source) -> list[int]:
    """The lines holding only ``-- grapevine: precheck`` (wherever they are: ``take_prechecks`` judges)."""
    found: list[int] = []
    line, carry = 1, b""
    for block in source.blocks(BLOCK_BYTES):
        data = carry + block
        cut = data.rfind(b"\n") + 1
        data, carry = data[:cut], data[cut:]
        line = _scan(data, line, found)
    _scan(carry, line, found)
    return found


def _scan(data: bytes, line: int, found: list[int]) -> int:
    if b"precheck" in data.lower():  # a fast test first: most files have none
        found += [line + data.count(b"\n", 0, match.start()) for match in _DIRECTIVE.finditer(data)]
    return line + data.count(b"\n")


def take_prechecks(written: list, lines: list[int], path: Any) -> tuple[tuple[Precheck, ...], list]:
    """The prechecks the directive ``lines`` mark, and the statements left for the file's body.

    A directive inside a statement (a string, a function body) is not one.  Any other directive
    must be followed by a precheck-shaped SELECT that comes before the file's first other statement.
    """
    if not lines:
        return (), written
    starts = [statement.line for statement in written]
    taken: list[Precheck] = []
    for line in lines:
        after = bisect_right(starts, line)  # the first statement that starts after the directive
        if after > 0 and _last_line(written[after - 1]) >= line:
            continue  # inside that statement's text
        if after == len(written):
            raise MigrationFileError(f"a precheck line is not followed by a SELECT ({_SHAPE})", path=path, line=line)
        if after < len(taken):
            raise MigrationFileError("one precheck line per SELECT", path=path, line=line)
        if after > len(taken):
            first = written[len(taken)]
            raise MigrationFileError(
                f"a precheck must come before the file's first other statement (line {first.line})", path=path, line=line)
        taken.append(_precheck(written[after], path))
    return tuple(taken), written[len(taken):]


def _last_line(statement: Any) -> int:
    last = getattr(statement, "last_line", None)  # a chunk of plain statements knows it
    return last if last is not None else statement.line + statement.sql.count("\n")


def _precheck(statement: Any, path: Any) -> Precheck:
    """The statement as a precheck, or one line saying why it cannot be one (no ": " in it: `check` splits there)."""
    problem = _shape_problem(statement)
    if problem:
        raise MigrationFileError(f"{problem} ({_SHAPE})", path=path, line=statement.line)
    return Precheck(statement.node.targetList[0].name, statement.sql, statement.line)


def _shape_problem(statement: Any) -> str | None:
    node = statement.node
    if statement.kind != "SelectStmt":
        return f"the precheck is {statement.sql.split(None, 1)[0].upper()}, not a SELECT"
    if node.intoClause is not None:
        return "SELECT ... INTO creates a table"
    if node.lockingClause:
        return "the precheck locks rows (FOR UPDATE/SHARE)"
    if node.op not in (None, "SETOP_NONE") or node.valuesLists:
        return "the precheck is not one plain SELECT (UNION, INTERSECT, EXCEPT or VALUES)"
    ctes = node.withClause.ctes if node.withClause is not None else ()
    if any(type(cte.ctequery).__name__ != "SelectStmt" for cte in ctes):
        return "the precheck's WITH query writes"
    targets = node.targetList or ()
    if len(targets) != 1 or not targets[0].name:
        return "the precheck must return one column named with AS (the check's name)"
    return None
