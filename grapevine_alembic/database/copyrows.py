"""``COPY ... FROM stdin`` with the rows inline in the file, as pg_dump and psql write it.

The executor sends the rows through the COPY protocol (psycopg2's ``copy_expert``), streamed
from the file in the file's transaction; a bad row's error names its file line, from the
``COPY t, line N`` that PostgreSQL puts in the error's CONTEXT.
"""

from __future__ import annotations

import re

__all__ = ["READ_BYTES", "emit_offline", "failed_line"]

READ_BYTES = 256 * 1024  # per read from the file and message to the server

_CONTEXT_LINE = re.compile(r"\bCOPY [^\n]*?, line (\d+)")


def failed_line(statement, err) -> int:
    """The file line of the row PostgreSQL names in the error, else the COPY statement's own line."""
    diag = getattr(err, "diag", None)
    context = getattr(diag, "context", None) or ""
    match = _CONTEXT_LINE.search(context)
    if match is None or statement.copy is None:
        return statement.line
    return statement.copy.line + int(match[1]) - 1


def emit_offline(out, statement) -> None:
    """``--sql`` mode: the rows and their end marker after the COPY statement, as psql reads them."""
    if statement.copy is None:
        return
    rows = statement.copy.reader().read().decode("utf-8").rstrip("\n")
    if rows:
        out(rows)
    out("\\.")
