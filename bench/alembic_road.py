"""Time plain ``alembic upgrade head`` on one tenant from empty: this build against another, interleaved.

    python bench/alembic_road.py --baseline OTHER_CHECKOUT/.venv/bin/alembic [--repeat 5]

Uses bench/run.py's server and project (the 40-file tenant chain of bench/chain.py); before each run
the tenant's schema is emptied, so both builds apply the whole chain.  Prints each build's median wall time
and client CPU time, and the ratios ours / baseline.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from run import BIN, Bench, must, timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, required=True, help="another build's alembic executable")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    bench = Bench(argparse.Namespace(durable=False, explain=False, baseline=args.baseline))
    try:
        bench.setup_control()
        bench.add_tenants(1)
        command = ["-c", "alembic.ini", "-n", "tenant", "-x", f"tenant={bench.tenants[0]}", "upgrade", "head"]
        seconds: dict[str, list[float]] = {"ours": [], "baseline": []}
        cpu: dict[str, list[float]] = {"ours": [], "baseline": []}  # the client's CPU: less swayed by load
        for _ in range(args.repeat):
            for who, alembic in (("ours", BIN / "alembic"), ("baseline", args.baseline)):
                bench.empty_tenants()
                run = must(timed([str(alembic), *command], bench.env, bench.project), who)
                seconds[who].append(run.seconds)
                cpu[who].append(run.cpu)
        ours, base = statistics.median(seconds["ours"]), statistics.median(seconds["baseline"])
        for who, runs in seconds.items():
            print(f"{who:9} median {statistics.median(runs):.3f}s  client CPU {statistics.median(cpu[who]):.3f}s"
                  f"  runs {' '.join(f'{s:.3f}' for s in runs)}")
        print(f"ratio ours/baseline {ours / base:.3f} (client CPU"
              f" {statistics.median(cpu['ours']) / statistics.median(cpu['baseline']):.3f})")
    finally:
        if bench.server is not None:
            bench.server.stop()


if __name__ == "__main__":
    main()
