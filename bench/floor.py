"""The floors the tool is measured against: minimal programs, one process each, five databases at a time.

    python bench/floor.py apply   DRIVER MIGRATIONS_DIR   # each file's text as one batch, per tenant
    python bench/floor.py connect DRIVER                  # connect to each tenant, read its version
    python bench/floor.py previous psycopg2 MIGRATIONS_DIR  # the previous tool's way of applying, per tenant

Both read the tenant list from the control database first (as the tool must), from
CONTROL_DATABASE_URL, and reach tenants db_<id> on the same server.  DRIVER is
psycopg2, psycopg (3) or asyncpg.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import unquote, urlsplit

PARALLEL = 5
TENANTS = "SELECT id FROM tenants WHERE state = 'provisioned' AND deleted_at IS NULL ORDER BY id"
VERSION = "SELECT version_num FROM alembic_version"


def params() -> dict:
    url = urlsplit(os.environ["CONTROL_DATABASE_URL"])
    return {"host": url.hostname, "port": url.port, "user": unquote(url.username),
            "password": unquote(url.password), "dbname": url.path.lstrip("/")}


def run_threads(connect, mode: str, texts: list[str]) -> None:
    """Tenant list from control, then each tenant on its own DB-API connection, five at a time."""
    base = params()
    control = connect(dict(base))
    with control.cursor() as cursor:
        cursor.execute(TENANTS)
        tenants = [row[0] for row in cursor.fetchall()]
    control.close()

    def job(tenant):
        conn = connect({**base, "dbname": f"db_{tenant}"})
        with conn.cursor() as cursor:
            if mode == "apply":
                for text in texts:
                    cursor.execute(text)
            else:
                cursor.execute(VERSION)
                cursor.fetchall()
        conn.close()

    with ThreadPoolExecutor(PARALLEL) as pool:
        list(pool.map(job, tenants))


def psycopg2_main(mode: str, texts: list[str]) -> None:
    import psycopg2

    def connect(p):
        conn = psycopg2.connect(**p)
        conn.autocommit = True
        return conn

    run_threads(connect, mode, texts)


def psycopg3_main(mode: str, texts: list[str]) -> None:
    import psycopg

    def connect(p):
        # ClientCursor sends parameterless text with the simple protocol: several statements per call
        return psycopg.connect(**p, autocommit=True, cursor_factory=psycopg.ClientCursor)

    run_threads(connect, mode, texts)


def asyncpg_main(mode: str, texts: list[str]) -> None:
    import asyncio

    import asyncpg

    async def main():
        base = params()
        base["database"] = base.pop("dbname")
        control = await asyncpg.connect(**base)
        tenants = [r[0] for r in await control.fetch(TENANTS)]
        await control.close()
        gate = asyncio.Semaphore(PARALLEL)

        async def one(tenant):
            async with gate:
                conn = await asyncpg.connect(**{**base, "database": f"db_{tenant}"})
                if mode == "apply":
                    for text in texts:
                        await conn.execute(text)  # no arguments: simple protocol, several statements
                else:
                    await conn.fetch(VERSION)
                await conn.close()

        await asyncio.gather(*(one(t) for t in tenants))

    asyncio.run(main())


LEGACY_LEDGER = "CREATE TABLE IF NOT EXISTS schema_migrations (version varchar PRIMARY KEY, applied_at timestamptz DEFAULT now())"


def previous_main(paths: list[Path]) -> None:
    """The previous tool (see tests/reference_applier.py): each file's text inside a transaction the driver
    opened, then its version row, then COMMIT; at the server's own synchronous_commit.  It could not run
    CREATE INDEX CONCURRENTLY at all: such a file is sent in autocommit here, with its row after it."""
    import psycopg2

    files = [(p.name.split("_", 1)[0], p.read_text()) for p in paths]
    base = params()
    control = psycopg2.connect(**base)
    with control.cursor() as cursor:
        cursor.execute(TENANTS)
        tenants = [row[0] for row in cursor.fetchall()]
    control.close()

    def job(tenant):
        conn = psycopg2.connect(**{**base, "dbname": f"db_{tenant}"})
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute(LEGACY_LEDGER)
            for version, text in files:
                conn.autocommit = "CONCURRENTLY" in text.upper()
                cursor.execute(text)
                cursor.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
                if not conn.autocommit:
                    conn.commit()
        conn.close()

    with ThreadPoolExecutor(PARALLEL) as pool:
        list(pool.map(job, tenants))


DRIVERS = {"psycopg2": psycopg2_main, "psycopg": psycopg3_main, "asyncpg": asyncpg_main}

if __name__ == "__main__":
    mode, driver = sys.argv[1], sys.argv[2]
    if mode == "previous":
        previous_main(sorted(Path(sys.argv[3]).glob("2*.sql")))
        sys.exit(0)
    texts = [p.read_text() for p in sorted(Path(sys.argv[3]).glob("2*.sql"))] if mode == "apply" else []
    DRIVERS[driver](mode, texts)
