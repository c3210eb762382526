"""deploy/kubernetes and the Dockerfile: valid manifests, commands the real CLI accepts, shards that
cover every tenant exactly once, and control before tenants."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import click
import kubernetes_validate
import pytest
import yaml

from grapevine_alembic.cli.main import cli
from project import BIN, REPO

DEPLOY = REPO / "deploy" / "kubernetes"
MANIFESTS = sorted(DEPLOY.glob("*.yaml"))
SECRET = "grapevine-migrations-db"


def _documents() -> list[dict]:
    return [doc for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


def _job(component: str) -> dict:
    return next(d for d in _documents() if d["metadata"]["labels"]["app.kubernetes.io/component"] == component)


def _containers(doc: dict) -> list[dict]:
    spec = doc["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def _env(container: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", [])}


def test_every_manifest_validates():
    assert MANIFESTS
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_production_envelope_and_credentials_from_the_secret():
    for doc in _documents():
        for container in _containers(doc):
            assert container["resources"]["limits"] == {"cpu": "500m", "memory": "512Mi"}, container["name"]
            assert container["envFrom"] == [{"secretRef": {"name": SECRET}}]
            assert not any("PASSWORD" in e["name"] or "URL" in e["name"] for e in container.get("env", []))


def test_tenants_are_an_indexed_job_of_n_shards():
    job = _job("tenants")
    spec = job["spec"]
    shards = int(_env(job["spec"]["template"]["spec"]["containers"][0])["SHARDS"])
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == shards


def test_argo_cd_hooks_are_documented_in_wave_order():
    waves = {}
    for path in MANIFESTS:
        text = path.read_text()
        assert "#   argocd.argoproj.io/hook: PreSync" in text
        waves[path.name] = next(line.split('"')[1] for line in text.splitlines() if "sync-wave" in line)
    assert waves == {"control-job.yaml": "0", "tenants-job.yaml": "1"}


def _argv_of(container: dict, tmp_path: Path, env: dict[str, str]) -> list[list[str]]:
    """The grapevine-migrations command lines a container runs, after its shell expanded them."""
    stub_dir = tmp_path / "stub"
    stub_dir.mkdir(exist_ok=True)
    record = tmp_path / "argv.jsonl"
    stub = stub_dir / "grapevine-migrations"
    stub.write_text(f"#!{shutil.which('python3')}\nimport json, sys\n"
                    f"open({str(record)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n")
    stub.chmod(0o755)
    record.unlink(missing_ok=True)
    command = container["command"] + container.get("args", [])
    merged = {**os.environ, **_env(container), **env, "PATH": f"{stub_dir}{os.pathsep}{os.environ['PATH']}"}
    if command[0] == "grapevine-migrations":
        command = [str(stub), *command[1:]]
    subprocess.run(command, env=merged, check=True, timeout=30)
    return [json.loads(line) for line in record.read_text().splitlines()]


def _parse(argv: list[str]) -> None:
    """Parse with the real click command tree (no callback runs): a bad flag or value raises."""
    ctx = click.Context(cli, info_name="grapevine-migrations")
    name, command, rest = cli.resolve_command(ctx, list(argv))
    command.make_context(name, rest, parent=ctx)


def test_every_command_line_is_accepted_by_the_cli_parser(tmp_path):
    seen = []
    for doc in _documents():
        for container in _containers(doc):
            for argv in _argv_of(container, tmp_path, {"JOB_COMPLETION_INDEX": "2"}):
                _parse(argv)
                seen.append(argv)
    assert [a[0] for a in seen] == ["migrate", "status", "migrate"]
    assert seen[2][seen[2].index("--shard") + 1] == "3/4"
    with pytest.raises(click.BadParameter):
        _parse(["migrate", "--all-tenants", "--max-parallel-per-server", "0"])  # the check can fail


def _sh(container: dict, project, extra_env: dict[str, str], **kw) -> subprocess.Popen:
    env = {**project.env, **_env(container), **extra_env}
    command = container["command"]
    if command[0] == "grapevine-migrations":
        command = [str(BIN / "grapevine-migrations"), *command[1:]]
    return subprocess.Popen(command, cwd=project.root, env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **kw)


def test_tenants_wait_for_control_then_shards_cover_every_tenant_once(project):
    """The init container waits while control is behind; the control Job's command releases it; then
    for N = 1..8 the N pods' commands migrate every tenant exactly once between them."""
    [wait, tenants_container] = _containers(_job("tenants"))
    [control_container] = _containers(_job("control"))
    project.migrate_control()
    ids = [f"k{i:02d}" for i in range(12)]
    for tenant in ids:
        project.add_tenant(tenant)
    (project.migrations("control") / "20991231000000_later.sql").write_text("BEGIN;\nSELECT 1;\nCOMMIT;\n")
    waiting = _sh(wait, project, {})
    lines = iter(waiting.stdout.readline, "")
    assert any(line.strip() == "control database not at head yet" for line in lines)  # status said: behind
    assert waiting.poll() is None
    control = _sh(control_container, project, {})
    assert control.wait(timeout=120) == 0, control.stderr.read()
    assert waiting.wait(timeout=60) == 0
    for count in range(1, 9):
        covered = []
        for index in range(count):
            pod = _sh(tenants_container, project, {"SHARDS": str(count), "JOB_COMPLETION_INDEX": str(index)})
            stdout, stderr = pod.communicate(timeout=120)
            assert pod.returncode == 0, stderr
            covered += [d["tenant"] for d in json.loads(stdout)["databases"]]
        assert sorted(covered) == ids, count  # every tenant, none twice
    assert all(project.version(f"db_{t}") == "20250201080000" for t in ids)


# ---- the image ---------------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    lines = (REPO / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
    return [tuple(line.split(None, 1)) for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_dockerfile_installs_the_pinned_tool_and_copies_only_migrations():
    """A team copies the Dockerfile as it is: the tool from its release (or a wheel), never this repository."""
    import tomllib

    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    instructions = _instructions()
    assert ("ARG", f"GRAPEVINE_ALEMBIC=grapevine-alembic=={version}") in instructions
    assert [arg for op, arg in instructions if op == "RUN"] == ['pip install --no-cache-dir "$GRAPEVINE_ALEMBIC"']
    assert [arg for op, arg in instructions if op == "COPY"] == ["migrations ./migrations"]
    env = " ".join(arg for op, arg in instructions if op == "ENV")
    assert "CI=" not in env  # a production image is not CI: the tool must be safe there without it
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".env" in ignored and ".venv" in ignored


def test_the_image_layout_runs_the_jobs_commands(project, tmp_path):
    """The files the Dockerfile copies, laid out as in the image, are enough for the Jobs' commands."""
    app = tmp_path / "app"
    app.mkdir()
    workdir = None
    for op, arg in _instructions():
        if op == "WORKDIR":
            workdir = arg
        if op == "COPY":
            *sources, dest = shlex.split(arg)
            for source in sources:
                target = app / dest if dest.endswith("/") else app / dest
                if (REPO / source).is_dir():
                    shutil.copytree(REPO / source, target, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(REPO / source, target)
    assert workdir == "/app"
    [control_container] = _containers(_job("control"))
    env = {**project.env, "PATH": project.env["PATH"]}
    result = subprocess.run([str(BIN / "grapevine-migrations"), *control_container["command"][1:]], cwd=app,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["databases"][0]["version"] == "20250115120000"
    # a Job whose Secret lost the URL: exit 2 naming it, never a throwaway server (the extra is installed here)
    unset = {k: v for k, v in env.items() if k not in ("CONTROL_DATABASE_URL", "CI")}
    lost = subprocess.run([str(BIN / "grapevine-migrations"), *control_container["command"][1:]], cwd=app,
                          env=unset, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert lost.returncode == 2 and "CONTROL_DATABASE_URL is not set" in lost.stderr, lost.stderr
    assert not (app / ".grapevine").exists()  # nothing written: the root filesystem is read-only there
