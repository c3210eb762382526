"""``COPY ... FROM stdin`` with the rows inline in the file, as pg_dump and psql write it.

``send`` streams the rows through the COPY protocol (psycopg2's ``copy_expert``) from the file,
in the file's transaction; a bad row's error names its file line, from the
``COPY t, line N`` that PostgreSQL puts in the error's CONTEXT.
"""

from __future__ import annotations

import re

__all__ = ["READ_BYTES", "failed_line", "offline_text", "send"]

READ_BYTES = 256 * 1024  # per read from the file and message to the server

_CONTEXT_LINE = re.compile(r"\bCOPY [^\n]*?, line (\d+)")


def send(cursor, statement) -> None:
    """COPY ... FROM stdin with the file's inline rows, streamed from the file."""
    cursor.copy_expert(statement.sql, statement.copy.reader(), size=READ_BYTES)


def failed_line(statement, err) -> int:
    """The file line of the row PostgreSQL names in the error, else the COPY statement's own line."""
    diag = getattr(err, "diag", None)
    context = getattr(diag, "context", None) or ""
    match = _CONTEXT_LINE.search(context)
    if match is None or statement.copy is None:
        return statement.line
    return statement.copy.line + int(match[1]) - 1


def offline_text(statement) -> str:
    """``--sql`` mode: the statement, and after a COPY its rows and end marker as psql reads them
    (one piece of output: Alembic puts a blank line after each, which psql would take for a row)."""
    if statement.copy is None:
        return statement.sql + ";"
    rows = statement.copy.reader().read().decode("utf-8")
    return f"{statement.sql};\n{rows}\\."
