"""`provision` of this checkout against another git ref's, alternating, on one server: wall and CPU time.

    python bench/provision_ab.py [--ref main] [--rounds 10] [--chain sample|long]

The other ref's package comes from `git archive REF grapevine_alembic` into a temporary folder, put
first on PYTHONPATH; both run `python -m grapevine_alembic provision --tenant T` against the same
embedded server and project (the sample chain, or the 300-file chain of bench/provision.py), one
after the other in each round. The CPU time (user + sys of the process, from os.wait4) moves far less
with the machine's load than the wall time does, so it shows what the process itself costs.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from provision import Server, write_long_chain  # noqa: E402
from run import BIN, CLI, REPO, must, timed  # noqa: E402


def run_cpu(args: list[str], env: dict, cwd: Path) -> tuple[float, float]:
    started = time.perf_counter()
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(args[1:])} failed:\n{output.decode()[-2000:]}")
    return time.perf_counter() - started, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref", default="main")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--chain", choices=("sample", "long"), default="long")
    args = parser.parse_args()
    load_at_start = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="grapevine-bench-provision-ab-"))
    archive = subprocess.run(["git", "-C", str(REPO), "archive", args.ref, "grapevine_alembic"],
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(work / "other", filter="data")
    server = Server(False, work)
    try:
        project = work / "project"
        project.mkdir()
        for name in ("alembic.ini", "alembic_control", "alembic_tenant"):
            source = REPO / name
            (shutil.copytree if source.is_dir() else shutil.copy)(source, project / name)
        shutil.copytree(REPO / "migrations" / "control", project / "migrations" / "control")
        folder = project / "migrations" / "tenant"
        write_long_chain(folder) if args.chain == "long" else shutil.copytree(REPO / "migrations" / "tenant", folder)
        server.execute("CREATE DATABASE bench_ab_control")
        env = {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "HOME": os.environ.get("HOME", "/root"),
               "CI": "true", "CONTROL_DATABASE_URL": f"{server.base}/bench_ab_control"}
        must(timed([CLI, "migrate", "--control"], env, project), "migrate --control")
        server.execute("INSERT INTO tenants (id, name, state) SELECT 't' || g, 't' || g, 'pending'"
                       " FROM generate_series(0, %s) g", (2 * args.rounds,), dbname="bench_ab_control")
        python = str(BIN / "python")
        envs = {args.ref: {**env, "PYTHONPATH": str(work / "other")}, "this checkout": env}
        run_cpu([python, "-m", "grapevine_alembic", "provision", "--tenant", "t0"], env, project)  # builds the template
        results = {name: ([], []) for name in envs}
        count = 0
        for _ in range(args.rounds):
            for name, run_env in envs.items():
                count += 1
                wall, cpu = run_cpu([python, "-m", "grapevine_alembic", "provision", "--tenant", f"t{count}"],
                                    run_env, project)
                results[name][0].append(wall)
                results[name][1].append(cpu)
        print(f"\nprovision --tenant T, {args.chain} chain, {args.rounds} rounds alternating; load average"
              f" {load_at_start:.2f} -> {os.getloadavg()[0]:.2f}; seconds, median (min)")
        for name, (walls, cpus) in results.items():
            print(f"  {name:<16} wall {statistics.median(walls):.3f} ({min(walls):.3f})"
                  f"   CPU user+sys {statistics.median(cpus):.3f} ({min(cpus):.3f})")
    finally:
        if server.local is not None:
            server.local.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
