"""docs/previous-tool.md, "uv and mise", step by step on a repository laid out like the previous tool's
when it manages Python with uv (pyproject.toml and uv.lock, a mise task run through uv with its env
from .env.local, a multi-stage Dockerfile that copies the venv), with the real `uv` (PyPI) and the
real `mise` (.ci/tools). The tool is the wheel built in this session; uv sees only a wheelhouse that
pip fills from its own index, so uv itself never goes to the network.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import yaml
from installed_package import TIMINGS
from pg import query, url_for
from project import REPO
from test_adoption_switch import HEAD, Product, _block, _mise

UV_FIXTURE = Path(__file__).resolve().parent / "fixtures" / "previous_tool_uv"


def _section() -> str:
    text = (REPO / "docs" / "previous-tool.md").read_text()
    return text.split("## uv and mise", 1)[1].split("\n## ", 1)[0]


def _uv() -> str:
    try:
        from uv import find_uv_bin
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("uv is not installed: it is in the test extra")
        pytest.skip("uv is not installed (pip install -e '.[test]')")
    return find_uv_bin()


def _build_image(dockerfile: Path, context: Path, root: Path, env: dict) -> dict:
    """Run a Dockerfile's stages without Docker: every stage in turn at `root` (so absolute paths in the
    venv hold, as in the image), a finished stage moved aside for `COPY --from`, and deleted at the end.
    Returns the last stage's ENV; the image's files are under `root`."""
    stages: dict[str, Path] = {}
    name, stage_env, workdir = None, {}, "/"
    for line in dockerfile.read_text().splitlines():
        if not line.strip():
            continue
        op, rest = line.split(" ", 1)
        words = shlex.split(rest)
        if op == "FROM":
            if root.exists():
                stages[name] = root.rename(root.with_name(f"stage-{name}"))
            root.mkdir()
            name, stage_env, workdir = (words[2] if len(words) == 3 else None), {}, "/"
        elif op == "WORKDIR":
            workdir = words[0]
            (root / workdir.lstrip("/")).mkdir(parents=True, exist_ok=True)
        elif op == "ENV":
            for word in words:
                key, value = word.split("=", 1)
                path = env["PATH"] if key == "PATH" else ""
                value = value.replace("$PATH", path)
                stage_env[key] = ":".join(str(root / p.lstrip("/")) if p.startswith(workdir + "/") else p
                                          for p in value.split(":"))
        elif op == "COPY" and words[0].startswith("--from=ghcr.io/astral-sh/uv:"):
            (root / "bin").mkdir(exist_ok=True)
            (root / "bin" / "uv").symlink_to(_uv())  # the uv image's binary: the real one
        elif op == "COPY":
            *sources, dest = words
            base = context
            if sources[0].startswith("--from="):
                base = stages[sources.pop(0).split("=", 1)[1]]
            target = root / (dest if dest.startswith("/") else f"{workdir}/{dest}").lstrip("/")
            for source in sources:
                found = base / source.lstrip("/")
                into = target / found.name if dest.endswith("/") else target
                if found.is_dir():
                    shutil.copytree(found, into, symlinks=True)
                else:
                    shutil.copy(found, into)
        elif op == "RUN":
            run_env = {**env, **stage_env, "PATH": f"{root / 'bin'}:{stage_env.get('PATH', env['PATH'])}"}
            done = subprocess.run(["bash", "-e", "-c", rest], cwd=root / workdir.lstrip("/"), env=run_env,
                                  capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
            assert done.returncode == 0, (line, done.stdout, done.stderr)
    for finished in stages.values():
        shutil.rmtree(finished)  # the final image holds nothing of the other stages
    return stage_env


@pytest.fixture
def uv_product(tmp_path, installed, pg_server, make_db):
    """The previous tool's repository and databases, turned into a uv project with its lock."""
    uv = _uv()
    made = Product(tmp_path / "product", installed, pg_server, make_db)
    made.as_previous_tool_left_it()
    (made.root / "requirements.txt").unlink()
    shutil.copytree(UV_FIXTURE, made.root, dirs_exist_ok=True)
    started = time.monotonic()
    wheelhouse = tmp_path / "wheelhouse"  # pip fills it from its own index: the tool's dependencies
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(wheelhouse), str(installed.wheel)],
                   check=True, capture_output=True, timeout=600)
    TIMINGS["wheelhouse for uv"] = time.monotonic() - started
    # uv offline on the wheelhouse, with this machine's Python (no download); uv alone on PATH, not the
    # suite's venv it came in, so the tool runs only from the product's venv
    bin_dir = tmp_path / "uv-bin"
    bin_dir.mkdir()
    (bin_dir / "uv").symlink_to(uv)
    made.env.update(PATH=f"{bin_dir}:/usr/local/bin:/usr/bin:/bin", UV_NO_INDEX="true", UV_OFFLINE="true",
                    UV_FIND_LINKS=str(wheelhouse), UV_CACHE_DIR=str(tmp_path / "uv-cache"), UV_NO_PROGRESS="1",
                    UV_PYTHON=sys._base_executable, UV_PYTHON_DOWNLOADS="never")
    assert shutil.which("grapevine-migrations", path=made.env["PATH"]) is None
    locked = made.run("uv", "lock")
    assert locked.returncode == 0, locked.stderr
    return made


def test_switch_a_uv_and_mise_repository_as_the_docs_say(uv_product, tmp_path):
    product, section = uv_product, _section()
    started = time.monotonic()

    # 1. uv add of the wheel `python -m build` wrote, committed under vendor/
    [add] = _block(section, "sh").splitlines()
    wheel = shlex.split(add)[-1]
    (product.root / wheel).parent.mkdir(parents=True)
    shutil.copy(product.installed.wheel, product.root / wheel)
    added = product.run("bash", "-e", "-c", add)
    assert added.returncode == 0, added.stderr
    pyproject = tomllib.loads((product.root / "pyproject.toml").read_text())
    assert "grapevine-alembic" in pyproject["project"]["dependencies"]
    assert pyproject["tool"]["uv"]["sources"]["grapevine-alembic"] == {"path": wheel.removeprefix("./")}
    assert 'name = "grapevine-alembic"' in (product.root / "uv.lock").read_text()

    # 2. mise: the task through uv run; the URL only in .env.local, read by mise's [env]
    mise_block = _block(section, "toml")
    toml = product.root / ".mise.toml"
    assert '_.file = ".env.local"' in mise_block and '_.file = ".env.local"' in toml.read_text()
    [run_line] = [line for line in mise_block.splitlines() if line.startswith("run = ")]
    toml.write_text(toml.read_text().replace('run = "uv run python -m src.migrations.cli"', run_line))
    assert tomllib.loads(toml.read_text())["tasks"]["migrations"]["run"] == "uv run grapevine-migrations"
    url = product.env.pop("CONTROL_DATABASE_URL")
    (product.root / ".env.local").write_text(f"# the previous tool's local settings\nCONTROL_DATABASE_URL={url}\n")
    mise = _mise()
    mise_env = {f"MISE_{k}_DIR": str(tmp_path / f"mise-{k.lower()}") for k in ("DATA", "CONFIG", "CACHE", "STATE")}
    assert product.run(mise, "trust", str(toml), env=mise_env).returncode == 0
    status = product.run(mise, "migrations", "status", "--tenant", product.globex, env=mise_env)
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"db_{product.globex}" in status.stdout and "pending" in status.stdout, status.stdout
    assert product.server.password not in status.stdout + status.stderr
    init = product.run(mise, "migrations", "init", env=mise_env)
    assert init.returncode == 0 and "wrote alembic.ini" in init.stdout, init.stderr

    # 3. the Dockerfile: the wheel copied before the sync, then the image built stage by stage
    docker_block = _block(section, "dockerfile").splitlines()
    dockerfile = product.root / "Dockerfile"
    before, added_line, after = docker_block
    assert f"{before}\n{after}\n" in dockerfile.read_text()
    dockerfile.write_text(dockerfile.read_text().replace(f"{before}\n", f"{before}\n{added_line}\n"))
    image = tmp_path / "image"
    image_env = _build_image(dockerfile, product.root, image, {**product.env, "CONTROL_DATABASE_URL": url})
    app = image / "app"
    assert sorted(p.name for p in app.iterdir()) == [".venv", "migrations", "src"]

    # 4. the Job's command in the image: the tool from the copied venv, on the image's PATH
    job = yaml.safe_load((product.root / "deploy" / "migrate-job.yaml").read_text())
    [container] = job["spec"]["template"]["spec"]["containers"]
    command = ["grapevine-migrations", *container["command"][3:]]
    assert shutil.which("grapevine-migrations", path=image_env["PATH"]) == str(app / ".venv" / "bin" / "grapevine-migrations")
    deploy = subprocess.run(command, cwd=app, env={**image_env, "HOME": product.env["HOME"], "CONTROL_DATABASE_URL": url},
                            capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    assert product.version(product.acme) == product.version(product.globex) == HEAD
    rows = query(product.server, f"db_{product.globex}", "SELECT applied_by FROM schema_migrations ORDER BY version")
    assert [r[0] for r in rows] == ["adopt", "migrate", "migrate"]

    # 5. plain alembic through uv, from the files init wrote (.env.local through mise's env again)
    current = product.run(mise, "exec", "--", "uv", "run", "alembic", "-c", "alembic.ini", "-n", "tenant",
                          "-x", f"tenant={product.acme}", "current", env=mise_env)
    assert current.returncode == 0 and f"{HEAD} (head)" in current.stdout, current.stdout + current.stderr
    TIMINGS["uv + mise switch"] = time.monotonic() - started
