"""``alembic upgrade --sql``: a file's statements as a script, for a person or psql to run later."""

from __future__ import annotations

from ...files.migration import MigrationFile
from ...files.parsing import ParsedSql
from ...files.txshape import split_final
from . import copyrows
from ..session.connection import TOOL_SCOPE_SQL

__all__ = ["emit_offline"]


def emit_offline(context, migration: MigrationFile, parsed: ParsedSql) -> None:
    """``--sql`` mode: the statements, with COMMIT/BEGIN around what runs outside Alembic's transaction."""
    out = context.impl.static_output
    out(f"-- {migration.path.name}")
    for check in parsed.prechecks:  # as written: whoever runs the script sees the answers
        out(f"-- grapevine: precheck\n{check.sql};")
    earlier, final = split_final(parsed.units)
    if earlier:
        with context.autocommit_block():
            for unit in earlier:
                if unit.transactional:
                    out("BEGIN;")
                    if unit.transaction_modes:
                        out(unit.transaction_modes + ";")
                for statement in unit.statements:
                    out(copyrows.offline_text(statement))
                if unit.transactional:
                    out("ROLLBACK;" if unit.rollback else "COMMIT;")
    if final is not None:
        if final.transaction_modes:
            out(final.transaction_modes + ";")
        for statement in final.statements:
            out(copyrows.offline_text(statement))
    out(TOOL_SCOPE_SQL.replace("\n", " ") + ";")
