"""``create``: a new timestamped migration file from the template."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from pathlib import Path

from .discovery import discover
from .parsing import TEMPLATE_MARKER
from ..errors import UsageError

TEMPLATE = """\
-- {description}
--
-- This file runs in ONE transaction together with its version record: if any
-- statement fails, nothing of it is applied. Keep BEGIN/COMMIT around the body.
-- Statements PostgreSQL refuses inside a transaction (CREATE INDEX CONCURRENTLY,
-- VACUUM, ...) need a file of their own without BEGIN/COMMIT: it then runs
-- statement by statement (see docs/writing-migrations.md, "Transactions").
BEGIN;

{marker}

COMMIT;
"""

# `init --tenants-table`: the control table the default tenants query reads (id, state, deleted_at)
TENANTS_TABLE = """\
CREATE TABLE tenants (
    id          text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,60}$'),
    state       text NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'provisioned', 'suspended', 'deleted')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);"""


def slug(description: str) -> str:
    """Lower-case words joined by ``_``: "Add user preferences!" -> "add_user_preferences".

    Accents are transliterated first ("añadir índice" -> "anadir_indice"), not dropped with their letter.
    """
    ascii_text = unicodedata.normalize("NFKD", description).encode("ascii", "ignore").decode("ascii")
    return "_".join(re.findall(r"[a-z0-9]+", ascii_text.lower()))


def create_migration(folder: Path, description: str, now: dt.datetime | None = None, body: str = TEMPLATE_MARKER) -> Path:
    """Write the next ``<UTC now>_<slug>.sql`` in ``folder``; ``body`` stands where the template's marker is."""
    name = slug(description)
    if not name:
        raise UsageError("the description is empty: say what the migration does, e.g. \"add user preferences\"")
    if not folder.is_dir():
        raise UsageError(f"migration folder {folder} does not exist")
    moment = (now or dt.datetime.now(dt.timezone.utc)).replace(microsecond=0)
    taken = {m.version for m in discover(folder).files}
    while moment.strftime("%Y%m%d%H%M%S") in taken:  # two files in the same second: the next free one
        moment += dt.timedelta(seconds=1)
    version = moment.strftime("%Y%m%d%H%M%S")
    path = folder / f"{version}_{name}.sql"
    path.write_text(TEMPLATE.format(description=description.strip().replace("\n", " "), marker=body))
    return path
