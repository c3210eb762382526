"""CPU time of `python -m grapevine_alembic --help`, and which heavy libraries it loads.

    python bench/startup.py [--runs 21] [--baseline OTHER_CHECKOUT]

CPU time (user + system of the child, from getrusage) rather than wall time, so the other work on a
shared machine counts less. With --baseline, the same command runs from another checkout's source
tree (cwd is put first on sys.path by -m), interleaved with this one. The target is < 0.3 s.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
HEAVY = ("sqlalchemy", "alembic", "psycopg2", "postgast", "rich")
PROBE = ("import json, sys; sys.argv = ['grapevine-migrations', '--help']\n"
         "from grapevine_alembic.cli.main import main\n"
         "try:\n    main()\nexcept SystemExit:\n    pass\n"
         f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))), file=sys.stderr)")


def cpu_of_help(tree: Path) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "grapevine_alembic", "--help"], cwd=tree, check=True,
                   stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def heavy_loaded(tree: Path) -> list[str]:
    probe = subprocess.run([sys.executable, "-c", PROBE], cwd=tree, check=True, capture_output=True, text=True)
    return json.loads(probe.stderr.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--baseline", type=Path, help="another checkout's root (holding grapevine_alembic/)")
    args = parser.parse_args()
    trees = {"ours": HERE, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
    times = {name: [] for name in trees}
    for _ in range(args.runs):
        for name, tree in trees.items():  # interleaved, so load on the machine hits both alike
            times[name].append(cpu_of_help(tree))
    report = {name: {"median_s": round(statistics.median(t), 3), "min_s": round(min(t), 3),
                     "max_s": round(max(t), 3), "runs": len(t), "heavy_loaded": heavy_loaded(trees[name])}
              for name, t in times.items()}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
