"""Where the time of `bench/run.py --durable` goes, per contestant (`run.py --durable --explain`).

Around each contestant's run it reads, on the embedded server:

* the server's CPU: utime+stime (and cutime+cstime, where the postmaster keeps the CPU of the
  backends it reaped) of the postmaster and its children from /proc/<pid>/stat, the monitor's own
  backend left out; the background processes (walwriter, checkpointer, ...) shown apart;
* the contestant's own CPU (its rusage) and the whole machine's busy CPU (/proc/stat), so what
  other jobs on the machine took shows too;
* the WAL written (pg_current_wal_lsn difference, pg_stat_wal records and full-page images) and
  the WAL writes and fsyncs (pg_stat_io, object 'wal'), split into client backends and the rest;
* wait events: pg_stat_activity of the tenant databases' backends, sampled every 20 ms;
* round trips and commits per file on one tenant database (``log_min_duration_statement = 0`` on
  that database only: one log line per query message; pg_stat_database.xact_commit);
* the server time per statement (pg_stat_statements, top-level statements, which the server loads
  with --explain): the files' own statements apart from the tool's (or driver's) around them.
"""

from __future__ import annotations

import os
import re
import statistics
import threading
import time
from collections import Counter
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
SAMPLE_S = 0.02
WAITS = ("SELECT state, wait_event_type, wait_event FROM pg_stat_activity WHERE backend_type = 'client backend'"
         " AND pid <> pg_backend_pid() AND datname LIKE 'db\\_%'")
OTHERS = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
WAL = ("SELECT pg_current_wal_lsn(), wal_records, wal_fpi, wal_bytes, wal_buffers_full,"
       " (SELECT coalesce(sum(writes), 0) FROM pg_stat_io WHERE object = 'wal' AND backend_type = 'client backend'),"
       " (SELECT coalesce(sum(fsyncs), 0) FROM pg_stat_io WHERE object = 'wal' AND backend_type = 'client backend'),"
       " (SELECT coalesce(sum(writes), 0) FROM pg_stat_io WHERE object = 'wal' AND backend_type <> 'client backend'),"
       " (SELECT coalesce(sum(fsyncs), 0) FROM pg_stat_io WHERE object = 'wal' AND backend_type <> 'client backend')"
       " FROM pg_stat_wal")
COMMITS = ("SELECT xact_commit, (SELECT sum(sessions) FROM pg_stat_database) FROM pg_stat_database"
           " WHERE datname = %s")
STATEMENTS = ("SELECT min(query), sum(calls), sum(total_exec_time) FROM pg_stat_statements"
              " WHERE toplevel GROUP BY queryid")
# what a tool (or a driver) sends around the files' statements; the chain has no top-level DML or SELECT
TOOL_STATEMENT = re.compile(r"\s*(BEGIN|COMMIT|ROLLBACK|END|SET|RESET|SELECT|WITH|INSERT|UPDATE"
                            r"|CREATE TABLE (IF NOT EXISTS )?\S*(alembic_version|schema_migrations))\b", re.I)
SERVER_SETTINGS = {"shared_preload_libraries": "pg_stat_statements", "pg_stat_statements.track": "all",
                   "pg_stat_statements.max": "50000"}


def _stat(pid: int) -> tuple[int, float, float] | None:
    """(ppid, own CPU s, reaped children's CPU s) of a process, from /proc/<pid>/stat."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK, (int(fields[13]) + int(fields[14])) / TICK


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return "?"


def server_cpu(postmaster: int, skip: int) -> dict:
    """CPU seconds so far: 'all' (postmaster, children, reaped children) and each live background process."""
    own = _stat(postmaster)
    total = own[1] + own[2] if own else 0.0
    background = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in (postmaster, skip):
            continue
        stat = _stat(int(entry))
        if stat and stat[0] == postmaster:
            total += stat[1] + stat[2]
            name = _name(int(entry)).removeprefix("postgres: ")
            if not name.startswith(("postgres", "bench", "db_")) and " " not in name.strip():
                background[name.strip()] = stat[1] + stat[2]  # walwriter, checkpointer, ...
    return {"all": total, "background": background}


def machine_busy() -> float:
    """Busy CPU seconds of the whole machine so far (all but idle and iowait, /proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / TICK


class Profiler:
    """Reads the numbers around each contestant's run; ``report`` prints the medians per contestant."""

    def __init__(self, bench, tenant_db: str):
        import psycopg2

        self.bench = bench
        self.tenant_db = tenant_db
        pidfile = Path(bench.server.data_dir) / "postmaster.pid" if bench.server is not None else None
        self.postmaster = int(pidfile.read_text().split()[0]) if pidfile else None
        self.log = Path(bench.server.log_path) if bench.server is not None else None
        self.conn = psycopg2.connect(f"{bench.base}/postgres")
        self.conn.autocommit = True
        with self.conn.cursor() as cur:
            cur.execute("SET stats_fetch_consistency = none")
            cur.execute("SELECT pg_backend_pid()")
            self.pid = cur.fetchone()[0]
            if self.log is not None:  # one log line per query message to this one tenant database
                cur.execute(f'ALTER DATABASE "{tenant_db}" SET log_min_duration_statement = 0')
            cur.execute("SHOW shared_preload_libraries")
            self.statements = "pg_stat_statements" in cur.fetchone()[0]
            if self.statements:
                cur.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        self.rows: dict[str, list[dict]] = {}

    def close(self) -> None:
        with self.conn.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{self.tenant_db}" RESET log_min_duration_statement')
        self.conn.close()

    def _quiet(self) -> None:
        """Wait until no other client backend is left (so the postmaster has reaped their CPU)."""
        deadline = time.monotonic() + 10
        with self.conn.cursor() as cur:
            while time.monotonic() < deadline:
                cur.execute(OTHERS)
                if cur.fetchone()[0] == 0:
                    break
                time.sleep(0.02)
        time.sleep(0.3)  # reaping, and the background processes' statistics

    def _snapshot(self) -> dict:
        with self.conn.cursor() as cur:
            cur.execute("SELECT pg_stat_clear_snapshot()")
            cur.execute(WAL)
            lsn, *wal = cur.fetchone()
            cur.execute("SELECT %s::pg_lsn - '0/0'::pg_lsn", (lsn,))
            position = int(cur.fetchone()[0])
            cur.execute(COMMITS, (self.tenant_db,))
            commits, sessions = cur.fetchone()
        cpu = server_cpu(self.postmaster, self.pid) if self.postmaster else None
        log_size = self.log.stat().st_size if self.log and self.log.exists() else 0
        return {"lsn": position, "wal": [int(v) for v in wal], "commits": commits, "sessions": int(sessions), "cpu": cpu,
                "busy": machine_busy(), "log": log_size}

    def run(self, who: str, fn):
        """Run ``fn`` (a contestant, returns run.Timed) with the numbers read around it."""
        self._quiet()
        if self.statements:
            with self.conn.cursor() as cur:
                cur.execute("SELECT pg_stat_statements_reset()")
        before = self._snapshot()
        waits: Counter = Counter()
        samples = [0]
        stop = threading.Event()
        sampler = psycopg2_connect(self.bench.base)
        with sampler.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            sampler_pid = cur.fetchone()[0]

        def sample():
            with sampler.cursor() as cur:
                while not stop.is_set():
                    cur.execute(WAITS)
                    for state, kind, event in cur.fetchall():
                        if state == "active":
                            waits[f"{kind}:{event}" if kind else "on CPU (active, no wait event)"] += 1
                        else:
                            waits[f"{state} ({event or '-'})"] += 1
                    samples[0] += 1
                    stop.wait(SAMPLE_S)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        result = fn()
        stop.set()
        thread.join()
        sampler_stat = _stat(sampler_pid)  # the sampler's own backend: not the contestant's work
        sampler.close()
        self._quiet()
        after = self._snapshot()
        row = self._row(result, before, after, waits, samples[0])
        if self.statements:
            row["statements"] = self._statements()
        if "server_cpu" in row and sampler_stat:
            row["server_cpu"] -= sampler_stat[1]
        self.rows.setdefault(who, []).append(row)
        return result

    def _statements(self) -> dict:
        """Server milliseconds in the files' statements and in the tool's, and the tool's costliest."""
        with self.conn.cursor() as cur:
            cur.execute(STATEMENTS)
            rows = [(q, int(c), float(t)) for q, c, t in cur.fetchall()
                    if "pg_stat_activity" not in q and "pg_stat_statements" not in q]
        tool = [r for r in rows if TOOL_STATEMENT.match(r[0])]
        top = sorted(tool, key=lambda r: -r[2])[:6]
        return {"files_ms": sum(r[2] for r in rows if r not in tool), "tool_ms": sum(r[2] for r in tool),
                "top_tool": [(" ".join(q.split())[:70], c, round(t, 1)) for q, c, t in top]}

    def _row(self, result, before, after, waits: Counter, samples: int) -> dict:
        wal = [a - b for a, b in zip(after["wal"], before["wal"])]
        row = {"wall": result.seconds, "client_cpu": result.cpu, "busy": after["busy"] - before["busy"],
               "wal_mb": (after["lsn"] - before["lsn"]) / 2**20, "wal_records": wal[0], "wal_fpi": wal[1],
               "wal_buffers_full": wal[3], "backend_wal_writes": wal[4], "backend_wal_fsyncs": wal[5],
               "other_wal_writes": wal[6], "other_wal_fsyncs": wal[7],
               "commits": after["commits"] - before["commits"],
               "sessions": after["sessions"] - before["sessions"] - 1,  # less the sampler's
               "waits": {k: v / max(samples, 1) for k, v in waits.items()}}
        if before["cpu"] is not None:
            row["server_cpu"] = after["cpu"]["all"] - before["cpu"]["all"]
            row["background_cpu"] = {name: after["cpu"]["background"].get(name, 0) - value
                                     for name, value in before["cpu"]["background"].items()}
        if self.log is not None:
            with self.log.open("rb") as fh:
                fh.seek(before["log"])
                text = fh.read(after["log"] - before["log"]).decode(errors="replace")
            row["round_trips"] = sum(1 for line in text.splitlines() if "LOG:  duration:" in line)
        return row

    def report(self, tenants: int, files: int) -> dict:
        """Print and return the medians per contestant."""
        out = {}
        for who, rows in self.rows.items():
            med = {key: statistics.median(r[key] for r in rows) for key, value in rows[0].items()
                   if isinstance(value, (int, float))}
            waits = Counter()
            for r in rows:
                waits.update(r["waits"])
            med["waits"] = {k: round(v / len(rows), 2) for k, v in waits.most_common(6)}
            if "statements" in rows[0]:
                med["files_ms"] = statistics.median(r["statements"]["files_ms"] for r in rows)
                med["tool_ms"] = statistics.median(r["statements"]["tool_ms"] for r in rows)
                med["top_tool"] = rows[len(rows) // 2]["statements"]["top_tool"]
            if "background_cpu" in rows[0]:
                med["background_cpu"] = {k: round(statistics.median(r["background_cpu"].get(k, 0) for r in rows), 3)
                                         for k in rows[0]["background_cpu"]}
            out[who] = med
        print(f"\nwhere the time goes (median of {len(next(iter(self.rows.values())))} profiled runs;"
              f" {tenants} tenants x {files} files; {os.cpu_count()} CPUs)")
        columns = [("wall s", "wall", 3), ("client CPU s", "client_cpu", 3), ("server CPU s", "server_cpu", 3),
                   ("machine busy s", "busy", 3), ("WAL MB", "wal_mb", 1), ("WAL FPI", "wal_fpi", 0),
                   ("backend WAL fsyncs", "backend_wal_fsyncs", 0), ("other WAL fsyncs", "other_wal_fsyncs", 0),
                   ("sessions", "sessions", 0), ("commits/tenant", "commits", 0), ("round trips/file", "round_trips", 2)]
        print(f"{'':<20}" + "".join(f"{label:>20}" for label, _, _ in columns))
        for who, med in out.items():
            cells = []
            for _, key, digits in columns:
                value = med.get(key)
                if key == "round_trips" and value is not None:
                    value /= files
                cells.append(f"{value:>20.{digits}f}" if value is not None else f"{'-':>20}")
            print(f"{who:<20}" + "".join(cells))
        for who, med in out.items():
            share = ", ".join(f"{k} {v:.2f}" for k, v in med["waits"].items())
            print(f"{who}: backends by state (mean count per sample): {share}")
            if "files_ms" in med:
                print(f"{who}: server time in statements (pg_stat_statements, top level): the files'"
                      f" {med['files_ms']:.0f} ms, around them {med['tool_ms']:.0f} ms; the costliest around them:")
                for query, calls, ms in med["top_tool"]:
                    print(f"    {ms:>8.1f} ms {calls:>6} calls  {query}")
            if med.get("background_cpu"):
                print(f"{who}: background CPU s: " + ", ".join(f"{k} {v:.3f}" for k, v in med["background_cpu"].items() if v))
        return out


def psycopg2_connect(base: str):
    import psycopg2

    conn = psycopg2.connect(f"{base}/postgres")
    conn.autocommit = True
    return conn
