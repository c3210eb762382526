"""What one `CREATE DATABASE ... TEMPLATE` costs, and what that depends on.

    python bench/copycost.py [--rounds 7] [--durable] [--tmpfs]

Starts an embedded PostgreSQL (with --durable fsync, synchronous_commit and full_page_writes on;
with --tmpfs its data directory in /dev/shm) and builds source databases beside template1:

- the templates `provision` keeps for this project's sample chain and for the generated 300-file
  chain of bench/provision.py (each built by provision_database, as a user's first provision does);
- "one big table": template1 plus one 4.7 MB table (the 300-file template's bytes, in 5 files);
- "many small relations": template1 plus 120 one-row tables with a primary key (its file count);
- the 300-file template after VACUUM FREEZE (what "compacting" it before sealing would give).

Then, in interleaved rounds (a busy moment on a shared machine hits every source alike), copies
each with STRATEGY WAL_LOG and FILE_COPY and prints the median and minimum per source with its
size and number of files. Databases are never dropped in between (DROP DATABASE takes a checkpoint).
Last, what the file system alone charges: creating 800 files of 8 kB beside the data directory.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg2

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from provision import Server, write_long_chain  # noqa: E402
from run import REPO  # noqa: E402

TEMPLATE = "grapevine_template_tenant"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--durable", action="store_true", help="fsync, synchronous_commit, full_page_writes on")
    parser.add_argument("--tmpfs", action="store_true", help="the server's data directory in /dev/shm")
    args = parser.parse_args()
    load_at_start = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="grapevine-bench-copycost-"))
    data_parent = Path(tempfile.mkdtemp(prefix="grapevine-bench-copycost-", dir="/dev/shm")) if args.tmpfs else None
    server = Server(args.durable, work, data_parent)
    if server.local is None:
        raise SystemExit("copycost.py counts files in the data directory: unset TEST_DATABASE_URL")
    try:
        sources = build_sources(server, work)
        admin = server.admin()
        cursor = admin.cursor()
        cursor.execute("CHECKPOINT")
        times: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
        count = 0
        for _ in range(args.rounds):
            for source in sources:
                for strategy in ("WAL_LOG", "FILE_COPY"):
                    count += 1
                    started = time.perf_counter()
                    cursor.execute(f"CREATE DATABASE copy{count} TEMPLATE {source} STRATEGY {strategy}")
                    times[source, strategy].append(time.perf_counter() - started)
        load_at_end = os.getloadavg()[0]
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
        print(f"\nCREATE DATABASE ... TEMPLATE, {args.rounds} rounds ({'fsync on' if args.durable else 'fsync off'}"
              f"{', data directory on tmpfs' if args.tmpfs else ''}); load average {load_at_start:.2f} ->"
              f" {load_at_end:.2f}; PostgreSQL {version}; ms, median (min)")
        print(f"{'source':<34}{'MB':>6}{'files':>7}{'WAL_LOG':>16}{'FILE_COPY':>16}")
        for source, label in sources.items():
            size, files = size_and_files(server, cursor, source)
            cells = [f"{statistics.median(times[source, s]) * 1000:.0f} ({min(times[source, s]) * 1000:.0f})"
                     for s in ("WAL_LOG", "FILE_COPY")]
            print(f"{label:<34}{size / 1e6:>6.1f}{files:>7}{cells[0]:>16}{cells[1]:>16}")
        print(f"creating 800 files of 8 kB beside the data directory, ms: {file_creation_ms(server.local.data_dir.parent)}")
        if args.durable:  # with fsync on, the shutdown checkpoint can outlast pg_ctl's wait: take it first
            cursor.execute("CHECKPOINT")
        admin.close()
    finally:
        server.local.stop()
        shutil.rmtree(work, ignore_errors=True)
        if data_parent is not None:
            shutil.rmtree(data_parent, ignore_errors=True)


def build_sources(server: Server, work: Path) -> dict[str, str]:
    from grapevine_alembic.api import provision_database

    admin = server.admin()
    cursor = admin.cursor()
    for name, make in (("sample", lambda f: shutil.copytree(REPO / "migrations" / "tenant", f)),
                       ("long", write_long_chain)):
        folder = work / name / "tenant"
        make(folder)
        result = provision_database(f"{server.base}/first_{name}", folder)
        assert result.ok and result.method == "template", result.error
        cursor.execute(f"ALTER DATABASE {TEMPLATE} RENAME TO tpl_{name}")  # the next provision builds its own
    build(server, cursor, "one_big_table", ["CREATE TABLE b (id int, t text)",
                                            "INSERT INTO b SELECT g, repeat('x', 100) FROM generate_series(1, 33000) g"])
    build(server, cursor, "many_small", [f"CREATE TABLE m{i} (id int PRIMARY KEY, t text); INSERT INTO m{i} VALUES (1, 'a')"
                                         for i in range(120)])
    build(server, cursor, "tpl_long_frozen", ["VACUUM FREEZE"], template="tpl_long")
    admin.close()
    return {"template1": "template1 (an empty database)", "tpl_sample": "template, sample chain (4 files)",
            "tpl_long": "template, 300-file chain", "tpl_long_frozen": "300-file template, VACUUM FREEZE",
            "one_big_table": "template1 + one 4.7 MB table", "many_small": "template1 + 120 small tables"}


def build(server: Server, cursor, name: str, statements: list[str], template: str = "template1") -> None:
    cursor.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    conn = psycopg2.connect(f"{server.base}/{name}")
    conn.autocommit = True
    with conn.cursor() as inner:
        for statement in statements:
            inner.execute(statement)
    conn.close()


def file_creation_ms(parent: Path, rounds: int = 3) -> list[int]:
    """What the file system charges per file, as a copy creates them (no fsync)."""
    block = b"x" * 8192
    times = []
    for _ in range(rounds):
        folder = Path(tempfile.mkdtemp(dir=parent))
        started = time.perf_counter()
        for index in range(800):
            fd = os.open(folder / str(index), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            os.write(fd, block)
            os.close(fd)
        times.append(round((time.perf_counter() - started) * 1000))
        shutil.rmtree(folder)
    return times


def size_and_files(server: Server, cursor, name: str) -> tuple[int, int]:
    cursor.execute("SELECT pg_database_size(%s), oid FROM pg_database WHERE datname = %s", (name, name))
    size, oid = cursor.fetchone()
    return size, len(os.listdir(server.local.data_dir / "base" / str(oid)))


if __name__ == "__main__":
    main()
