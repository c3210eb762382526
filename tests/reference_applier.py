"""How the previous tool applied a migration file, for differential tests.

It sent the whole file text as one simple-query string inside a transaction that
the driver (psycopg2, autocommit off) had opened, inserted the version row, and
committed.  So a file's own BEGIN only warned, a COMMIT in the file committed early,
and a file without COMMIT was committed at the end together with its version row.
"""

from __future__ import annotations

import os
import subprocess

import psycopg2

from grapevine_alembic.local.embedded import postgres_bin_dir
from pg import connect

LEGACY_LEDGER = "CREATE TABLE IF NOT EXISTS public.schema_migrations (version varchar PRIMARY KEY, applied_at timestamptz DEFAULT now())"


def apply_like_previous_tool(server, dbname: str, text: str, version: str) -> None:
    """Apply ``text`` as the previous tool did; raises psycopg2.Error when PostgreSQL refuses it."""
    conn = connect(server, dbname)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(LEGACY_LEDGER)
        conn.autocommit = False
        with conn.cursor() as cur:
            try:
                cur.execute(text.removeprefix("\ufeff"))
            except psycopg2.ProgrammingError as err:
                # only comments: the server answers EmptyQueryResponse, which the previous
                # tool took as success (it recorded the version and ran nothing)
                if "empty query" not in str(err):
                    raise
            # qualified: a pg_dump header's search_path = '' lasts for the session
            cur.execute("INSERT INTO public.schema_migrations (version) VALUES (%s)", (version,))
        conn.commit()
    finally:
        conn.close()


def dump(server, dbname: str, *, data: bool) -> str:
    """``pg_dump --schema-only`` (or ``--data-only``, rows sorted) without the version tables."""
    env = {**os.environ, "PGPASSWORD": server.password or ""}
    cmd = [
        str(postgres_bin_dir() / "pg_dump"), "-h", server.host, "-p", str(server.port), "-U", server.superuser,
        "--no-owner", "-T", "public.alembic_version", "-T", "public.schema_migrations",
        "--data-only" if data else "--schema-only", dbname,
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    # PostgreSQL 18's pg_dump frames its output with a random \restrict key
    lines = [line for line in out.splitlines() if not line.startswith(("\\restrict", "\\unrestrict"))]
    return "\n".join(sorted(lines) if data else lines)


def ledger_versions(server, dbname: str) -> list[str]:
    conn = connect(server, dbname)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT version FROM public.schema_migrations ORDER BY version")
            return [row[0] for row in cur.fetchall()]
    finally:
        conn.close()


__all__ = ["apply_like_previous_tool", "dump", "ledger_versions", "psycopg2"]
