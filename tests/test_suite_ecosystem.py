"""The three ways in (mise, plain Alembic, CI) and the rollout controls, each as its users run it."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from grapevine_alembic.fleet.targets import shard_of

REPO = Path(__file__).resolve().parent.parent
HEAD = "20250201080000"


# ---- mise ---------------------------------------------------------------------------------------


def _mise() -> str:
    found = shutil.which("mise") or str(REPO / ".ci" / "tools" / "node_modules" / ".bin" / "mise")
    if not os.path.exists(found):
        if os.environ.get("CI"):
            pytest.fail("mise is not installed: .ci/run installs it from the npm registry")
        pytest.skip("mise is not installed (npm install --prefix .ci/tools)")
    return found


@pytest.fixture
def mise_project(project):
    shutil.copy(REPO / ".mise.toml", project.root / ".mise.toml")
    mise = _mise()
    env = {"MISE_DATA_DIR": str(project.root / ".mise-data"), "MISE_CONFIG_DIR": str(project.root / ".mise-config"),
           "MISE_CACHE_DIR": str(project.root / ".mise-cache"), "MISE_STATE_DIR": str(project.root / ".mise-state")}
    project.env.update(env)
    trust = project.run(mise, "trust", str(project.root / ".mise.toml"))
    assert trust.returncode == 0, trust.stderr
    return project, mise


def test_mise_passes_every_argument_through(mise_project):
    project, mise = mise_project
    created = project.run(mise, "migrations", "create", "tenant", "add user preferences")
    assert created.returncode == 0, created.stderr
    path = Path(created.stdout.strip().splitlines()[-1])
    assert path.parent == project.migrations("tenant") and path.is_file()
    assert re.fullmatch(r"\d{14}_add_user_preferences\.sql", path.name) and path.name[:14] != "20250120143000"
    dry = project.run(mise, "migrations", "migrate", "--control", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would apply" in dry.stdout and "20250101090000_create_tenants.sql" in dry.stdout


def test_mise_keeps_exit_codes(mise_project):
    project, mise = mise_project
    assert project.run(mise, "migrations", "migrate").returncode == 1  # no target
    project.migrate_control()
    project.add_tenant("acme")
    assert project.run(mise, "migrations", "status", "--tenant", "acme", "--exit-code").returncode == 3  # pending
    assert project.run(mise, "migrations", "migrate", "--tenant", "acme").returncode == 0
    assert project.run(mise, "migrations", "status", "--tenant", "acme").returncode == 0


# ---- plain Alembic, exactly as docs/alembic.md shows it ------------------------------------------


def _readme_alembic_commands() -> list[str]:
    text = (REPO / "docs" / "alembic.md").read_text()
    section = text.split("# For engineers who know Alembic\n", 1)[1].split("\n## ", 1)[0]
    return [line.split("#")[0].strip() for line in section.splitlines() if line.startswith("alembic -c")]


def test_every_alembic_command_in_the_readme_works(project):
    commands = _readme_alembic_commands()
    assert len(commands) >= 8
    project.migrate_control()
    project.add_tenant("acme")
    for command in commands:
        args = shlex.split(command)[1:]  # drop "alembic"; project.alembic adds "-c alembic.ini"
        assert args[:2] == ["-c", "alembic.ini"]
        result = project.alembic(*args[2:])
        assert result.returncode == 0, (command, result.stdout, result.stderr)
    assert project.version("db_acme") == HEAD


# ---- check --------------------------------------------------------------------------------------


@pytest.mark.files_only
def test_check_passes_the_shipped_migrations(project):
    result = project.cli("check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 error(s)" in result.stdout
    assert "info: migrations/tenant/20250201080000_index_open_tasks_by_due_date.sql:3: runs outside a transaction" in result.stdout


@pytest.mark.files_only
@pytest.mark.parametrize(
    "name, sql, level, expected",
    [
        ("20991231000000_typo.sql", "BEGIN;\nCREATE TABEL x (a int);\nCOMMIT;\n", "error",
         'migrations/tenant/20991231000000_typo.sql:2: syntax error at or near "TABEL"'),
        ("20991231000000_open.sql", "BEGIN;\nCREATE TABLE x (a int);\n", "warning", "begin-without-commit"),
        ("2099123100_short.sql", "SELECT 1;\n", "error", "2099123100_short.sql"),
        ("20991231000000_index.sql", "CREATE INDEX users_name_idx ON users (full_name);\n", "warning",
         "require-concurrent-index-creation"),
        ("20991231000000_retype.sql", "ALTER TABLE users ALTER COLUMN full_name TYPE varchar(200);\n", "warning",
         "changing-column-type"),
        ("20991231000000_volatile.sql", "ALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid();\n",
         "warning", "adding-field-with-default"),
    ],
)
def test_check_reports_problems_with_file_and_line(project, name, sql, level, expected):
    project.write("tenant", name, sql)
    result = project.cli("check", "--json")
    doc = json.loads(result.stdout)
    found = [f for f in doc["findings"] if f["level"] == level]
    assert any(expected in f"{f['file']}:{f['line']}: {f['message']}" or expected == f["code"] for f in found), doc
    assert result.returncode == (1 if level == "error" else 0)
    if level == "warning":
        assert project.cli("check", "--strict").returncode == 1
    human = project.cli("check")
    assert "Traceback" not in human.stderr and f"{level}:" in human.stdout


def test_check_against_db_reports_out_of_order_files(project):
    project.migrate_control()
    project.add_tenant("acme")
    assert project.cli("migrate", "--tenant", "acme").returncode == 0
    project.write("tenant", "20250110000000_late.sql", "CREATE TABLE late (a int);\n")
    assert project.cli("check").returncode == 0  # the files themselves are fine
    result = project.cli("check", "--against-db", "--json")
    doc = json.loads(result.stdout)
    [late] = [f for f in doc["findings"] if f["code"] == "out-of-order"]
    assert late["file"] == "20250110000000_late.sql" and "db_acme" in late["message"]


# ---- the GitHub Actions workflow -------------------------------------------------------------------


def _workflow_commands() -> list[list[str]]:
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "migrations.yml").read_text())
    commands = []
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            for line in step.get("run", "").splitlines():
                if line.strip().startswith("grapevine-migrations"):
                    line = line.split(">")[0].replace("${{ matrix.shard }}", "2")
                    commands.append(shlex.split(line)[1:])
    return commands


def _parse(command, name, args, parent) -> None:
    """Parse (never run) a command line with click, down through nested groups; bad flags raise."""
    import click

    if isinstance(command, click.Group):
        # the group's own options, then the sub-command and what follows it
        options = args[: next(i for i, a in enumerate(args) if not a.startswith("-"))]
        # resilient only for the group's own (empty) option list: sub-commands parse strictly
        ctx = command.make_context(name, options, parent=parent, resilient_parsing=not options)
        sub_name, sub, rest = command.resolve_command(ctx, args[len(options):])
        _parse(sub, sub_name, rest, ctx)
    else:
        command.make_context(name, args, parent=parent)


def test_workflow_commands_parse_with_the_real_cli():
    from grapevine_alembic.cli.main import cli

    commands = _workflow_commands()
    names = Counter(c[0] for c in commands)
    assert {"check", "migrate", "status", "dev"} <= set(names) and names["migrate"] >= 3
    for args in commands:
        _parse(cli, "grapevine-migrations", list(args), None)
    shard_run = next(c for c in commands if "--shard" in c)
    assert shard_run[shard_run.index("--shard") + 1] == "2/4" and "--json" in shard_run


def test_pull_requests_judge_only_their_own_files():
    steps = yaml.safe_load((REPO / ".github" / "workflows" / "migrations.yml").read_text())["jobs"]["check"]["steps"]
    [gate] = [step for step in steps if "--changed-since" in step.get("run", "")]
    assert gate["if"] == "github.event_name == 'pull_request'" and gate["env"] == {"BASE_REF": "${{ github.base_ref }}"}
    args = shlex.split(gate["run"])
    assert args[:2] == ["grapevine-migrations", "check"] and "--strict" in args
    assert args[args.index("--changed-since") + 1] == "origin/$BASE_REF" and args[args.index("--format") + 1] == "github"
    assert steps[0]["uses"].startswith("actions/checkout@") and steps[0]["with"]["fetch-depth"] == 0  # the base is there


# ---- shards, canary, max failures ---------------------------------------------------------------


def test_shards_cover_every_tenant_once_and_stay_balanced():
    ids = [f"tenant-{i}" for i in range(2000)]
    for count in (2, 3, 4, 8):
        sizes = Counter(shard_of(t, count) for t in ids)
        assert set(sizes) == set(range(1, count + 1))
        assert sum(sizes.values()) == len(ids)
        expected = len(ids) / count
        assert all(abs(size - expected) / expected < 0.12 for size in sizes.values()), sizes
    assert shard_of("acme", 4) == shard_of("acme", 4)  # stable


def test_shard_flag_splits_the_tenants_disjointly(project):
    project.migrate_control()
    ids = [f"s{i:02d}" for i in range(12)]
    for tenant_id in ids:
        project.add_tenant(tenant_id, create_db=False)
    seen = []
    for index in (1, 2, 3):
        doc = json.loads(project.cli("status", "--all-tenants", "--shard", f"{index}/3", "--json").stdout)
        seen += [d["tenant"] for d in doc["databases"]]
    assert sorted(seen) == ids


def _picky_chain(project, failing: set[str]) -> None:
    names = " OR ".join(f"current_database() = 'db_{t}'" for t in sorted(failing))
    project.clear("tenant")
    project.write("tenant", "20240101000000_picky.sql",
                  f"BEGIN;\nCREATE TABLE done (a int);\nDO $$\nBEGIN\n  IF {names} THEN\n"
                  "    RAISE EXCEPTION 'not here';\n  END IF;\nEND\n$$;\nCOMMIT;\n")


def test_canary_failure_stops_the_rollout(project):
    project.migrate_control()
    ids = [f"c{i:02d}" for i in range(1, 7)]
    for tenant_id in ids:
        project.add_tenant(tenant_id)
    _picky_chain(project, {"c02"})
    result = project.cli("migrate", "--all-tenants", "--canary", "3", "--json")
    assert result.returncode == 1
    states = {d["tenant"]: ("skipped" if d["skipped"] else ("ok" if d["ok"] else "failed"))
              for d in json.loads(result.stdout)["databases"]}
    assert states == {"c01": "ok", "c02": "failed", "c03": "ok", "c04": "skipped", "c05": "skipped", "c06": "skipped"}
    assert all("done" not in project.tables(f"db_{t}") for t in ("c04", "c05", "c06"))
    healthy = project.cli("migrate", "--all-tenants", "--canary", "1", "--json")
    doc = json.loads(healthy.stdout)
    assert sum(d["skipped"] for d in doc["databases"]) == 0  # c01 passes: everyone else goes


def test_max_failures_stops_starting_new_tenants(project):
    project.migrate_control()
    ids = [f"m{i:02d}" for i in range(1, 9)]
    for tenant_id in ids:
        project.add_tenant(tenant_id)
    _picky_chain(project, {"m01", "m02", "m05"})
    result = project.cli("migrate", "--all-tenants", "--max-failures", "2", "--max-parallel", "1", "--json")
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    assert [d["tenant"] for d in doc["databases"] if not d["ok"]] == ["m01", "m02"]
    assert [d["tenant"] for d in doc["databases"] if d["skipped"]] == ids[2:]
    assert doc["summary"]["skipped"] == 6


# ---- polish ---------------------------------------------------------------------------------------


def test_version_help_examples_and_completion(project):
    version = project.cli("--version")
    assert version.returncode == 0 and re.search(r"grapevine-migrations, version \d+\.\d+", version.stdout)
    assert project.cli("-h").stdout == project.cli("--help").stdout
    for command in ("create", "list", "status", "migrate", "mark", "reset", "check"):
        shown = project.cli(command, "-h")
        text = shown.stdout
        assert "Examples:" in text and f"grapevine-migrations {command}" in text, (command, shown.returncode,
                                                                                  shown.stderr[-2000:])
    completion = project.run(str(Path(sys.executable).parent / "grapevine-migrations"),
                             env={"_GRAPEVINE_MIGRATIONS_COMPLETE": "bash_source"})
    assert "complete" in completion.stdout and "grapevine-migrations" in completion.stdout
    assert "_GRAPEVINE_MIGRATIONS_COMPLETE=bash_source" in (REPO / "docs" / "commands.md").read_text()


def test_tenants_file_for_partial_rollouts(project):
    project.migrate_control()
    for tenant_id in ("f1", "f2", "f3"):
        project.add_tenant(tenant_id)
    (project.root / "wave1.txt").write_text("# first wave\nf1\nf3  # and this one\n\n")
    result = project.cli("migrate", "--tenants-file", "wave1.txt", "--json")
    assert result.returncode == 0, result.stderr
    assert [d["tenant"] for d in json.loads(result.stdout)["databases"]] == ["f1", "f3"]
    assert project.tables("db_f2") == set()
    status = json.loads(project.cli("status", "--tenant", "f1", "--tenant", "f2", "--json").stdout)
    assert [d["tenant"] for d in status["databases"]] == ["f1", "f2"]
