"""README's "Switch from the previous tool", step by step, as a team does it.

A scratch repository laid out like the previous tool's (its own chains, a tenants table without a
name column, a mise task, a Dockerfile that copies src/ and migrations/, a Job, a provisioning
service), with the databases the previous tool left behind; the tool comes from the wheel built in
this session, installed into a fresh venv outside this repository. Then the commands a team runs.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tomllib
import uuid
from pathlib import Path

import pytest
import yaml
from pg import query, url_for
from project import REPO
from reference_applier import apply_like_previous_tool

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "previous_tool"
HEAD = "20250825000000"
PREVIOUS_IMPORT = "from src.migrations.migrate import get_tenant_migrations_dir, migrate_database  # the previous tool"


def _section() -> str:
    text = (REPO / "README.md").read_text()
    return text.split("## Switch from the previous tool", 1)[1].split("\n## ", 1)[0]


def _block(section: str, language: str) -> str:
    [block] = re.findall(rf"```{language}\n(.*?)\n\s*```", section, flags=re.S)
    return "\n".join(line.strip() for line in block.splitlines())


def _mise() -> str:
    found = shutil.which("mise") or str(REPO / ".ci" / "tools" / "node_modules" / ".bin" / "mise")
    if not Path(found).exists():
        if os.environ.get("CI"):
            pytest.fail("mise is not installed: .ci/run installs it from the npm registry")
        pytest.skip("mise is not installed (npm install --prefix .ci/tools)")
    return found


class Product:
    """The team's repository and its databases, driven with the installed tool only."""

    def __init__(self, root: Path, installed, server, make_db):
        self.root, self.installed, self.server, self.make_db = root, installed, server, make_db
        shutil.copytree(FIXTURE, root)
        stem = uuid.uuid4().hex[:6]
        self.acme, self.globex, self.newco = f"acme{stem}", f"globex{stem}", f"newco{stem}"
        self.control_db = make_db()
        self.env = installed.env(CONTROL_DATABASE_URL=url_for(server, self.control_db))

    def files(self, env: str) -> list[Path]:
        return sorted((self.root / "migrations" / env).glob("2*.sql"))

    def as_previous_tool_left_it(self) -> None:
        """Control and acme fully migrated, globex two files behind, newco still being provisioned."""
        for path in self.files("control"):
            apply_like_previous_tool(self.server, self.control_db, path.read_text(), path.name[:14])
        self.control("INSERT INTO tenants (id, state) VALUES (%s, 'provisioned'), (%s, 'provisioned'),"
                     " (%s, 'provisioning')", (self.acme, self.globex, self.newco))
        for tenant, count in ((self.acme, 3), (self.globex, 1)):
            database = self.make_db(f"db_{tenant}")
            for path in self.files("tenant")[:count]:
                apply_like_previous_tool(self.server, database, path.read_text(), path.name[:14])

    def run(self, *args: str, cwd: Path | None = None, env: dict | None = None):
        result = subprocess.run(list(args), cwd=cwd or self.root, env={**self.env, **(env or {})},
                                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180)
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def cli(self, *args: str, **kw):
        return self.run(str(self.installed.bin / "grapevine-migrations"), *args, **kw)

    def control(self, sql: str, params=None):
        return query(self.server, self.control_db, sql, params)

    def version(self, tenant: str) -> str:
        return query(self.server, f"db_{tenant}", "SELECT version_num FROM alembic_version")[0][0]


@pytest.fixture
def product(tmp_path, installed, pg_server, make_db):
    assert not str(tmp_path).startswith(str(REPO))  # outside this repository
    made = Product(tmp_path / "product", installed, pg_server, make_db)
    made.as_previous_tool_left_it()
    return made


def test_switch_from_the_previous_tool_as_the_readme_says(product, tmp_path):
    section = _section()

    # 1. install: the fixture installed the wheel; the CLI is the fresh venv's (the git form: test_adoption_install.py)
    assert 'pip install "grapevine-alembic @ git+https://' in _block(section, "sh") and "python -m build" in section
    assert product.cli("--version").stdout.strip().endswith("0.1.0")

    # 2. init: the files for `alembic -c`, the .gitignore line, and the two lines to copy
    init = product.cli("init")
    assert init.returncode == 0, init.stderr
    assert init.stdout.splitlines()[:4] == ["wrote alembic.ini", "wrote alembic_control/env.py",
                                            "wrote alembic_tenant/env.py", "added .grapevine/ to .gitignore"]
    assert (product.root / ".gitignore").read_text() == "__pycache__/\n.env\n.grapevine/\n"
    again = product.cli("init")
    assert "left alembic.ini as it is (it exists)" in again.stdout and ".gitignore already ignores .grapevine/" in again.stdout
    assert (product.root / ".gitignore").read_text().count(".grapevine/") == 1

    # 3. mise: the task line init printed, as README shows it
    mise_block = _block(section, "toml")
    assert mise_block in "\n".join(line.strip() for line in init.stdout.splitlines())
    toml = product.root / ".mise.toml"
    toml.write_text(toml.read_text().replace('run = "python -m src.migrations.cli"', mise_block.splitlines()[1]))
    assert tomllib.loads(toml.read_text())["tasks"]["migrations"]["run"] == "grapevine-migrations"
    mise = _mise()
    mise_env = {f"MISE_{k}_DIR": str(tmp_path / f"mise-{k.lower()}") for k in ("DATA", "CONFIG", "CACHE", "STATE")}
    assert product.run(mise, "trust", str(toml), env=mise_env).returncode == 0
    listed = product.run(mise, "migrations", "list", "--tenant", env=mise_env)  # arguments pass through
    assert listed.returncode == 0 and "20250815000000_create_documents.sql" in listed.stdout, listed.stderr

    # 4. Dockerfile: the one line init printed; the image holds src/ and migrations/ only
    run_line = _block(section, "dockerfile")
    assert f"  {run_line}" in init.stdout.splitlines()
    dockerfile = product.root / "Dockerfile"
    previous = "RUN pip install --no-cache-dir -r requirements.txt\n"
    dockerfile.write_text(dockerfile.read_text().replace(previous, previous + run_line + "\n"))
    image = tmp_path / "image"
    image.mkdir()
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY "):
            source, dest = shlex.split(line)[1:]
            copy = shutil.copytree if (product.root / source).is_dir() else shutil.copy
            copy(product.root / source, image / dest)
    assert sorted(p.name for p in image.iterdir()) == ["migrations", "requirements.txt", "src"]

    # 5. the Job: the same flags, the tool as the program; run in the image's layout
    job_line = _block(section, "yaml")
    job_file = product.root / "deploy" / "migrate-job.yaml"
    job = yaml.safe_load(job_file.read_text())
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["command"][:3] == ["python", "-m", "src.migrations.cli"]
    container["command"] = ["grapevine-migrations", *container["command"][3:]]
    assert yaml.safe_load(job_line)["command"] == container["command"]
    job_file.write_text(yaml.safe_dump(job))
    deploy = product.cli(*container["command"][1:], cwd=image)
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    assert product.version(product.acme) == product.version(product.globex) == HEAD
    rows = query(product.server, f"db_{product.globex}", "SELECT version, applied_by FROM schema_migrations ORDER BY 1")
    assert [r[1] for r in rows] == ["adopt", "migrate", "migrate"]  # the previous tool's row kept, the rest applied
    assert product.control("SELECT version_num FROM alembic_version") == [("20250812000000",)]
    unset = product.cli(*container["command"][1:], cwd=image, env={"CONTROL_DATABASE_URL": ""})
    assert unset.returncode == 2 and "CONTROL_DATABASE_URL" in unset.stderr  # never a local stand-in

    # 6. the provisioning service: the import README gives, the call unchanged
    import_line = _block(section, "python")
    service = product.root / "src" / "provisioning" / "service.py"
    assert PREVIOUS_IMPORT in service.read_text()
    service.write_text(service.read_text().replace(PREVIOUS_IMPORT, import_line))
    newco = product.make_db(f"db_{product.newco}")
    provisioned = product.run(str(product.installed.bin / "python"), "-m", "src.provisioning.service",
                              url_for(product.server, newco))
    assert provisioned.returncode == 0 and provisioned.stdout.strip() == "applied 3 of 3, ok=True", provisioned.stderr
    assert provisioned.stderr == "" and product.version(product.newco) == HEAD

    # 7. schema.sql from the files: the shipped workflow's rehearsal checks it
    assert "`grapevine-migrations schema dump`" in section
    dumped = product.cli("schema", "dump")
    assert dumped.returncode == 0, dumped.stdout + dumped.stderr
    assert "CREATE TABLE public.bot_responses" in (product.root / "migrations" / "tenant" / "schema.sql").read_text()
    assert product.cli("schema", "check").returncode == 0

    # 8. the commands a team runs from then on
    status = product.cli("status")
    assert status.returncode == 0, status.stdout + status.stderr
    created = product.cli("create", "tenant", "add summaries")
    assert created.returncode == 0, created.stderr
    new_file = Path(created.stdout.strip().splitlines()[-1])
    assert new_file.parent == product.root / "migrations" / "tenant"
    new_file.write_text("BEGIN;\nCREATE TABLE summaries (id bigint PRIMARY KEY, body text);\nCOMMIT;\n")
    new_version = new_file.name[:14]
    assert product.cli("migrate", "--control", "--all-tenants").returncode == 0
    assert product.version(product.acme) == product.version(product.globex) == new_version

    unmarked = product.cli("mark", "--unapply", new_version, "--tenant", product.acme)
    assert unmarked.returncode == 0, unmarked.stdout + unmarked.stderr
    assert product.version(product.acme) == HEAD
    marked = product.cli("mark", "--apply", new_version, "--tenant", product.acme)
    assert marked.returncode == 0 and product.version(product.acme) == new_version, marked.stderr

    reset = product.cli("reset", "--tenant", product.globex, "--force")
    assert reset.returncode == 0, reset.stdout + reset.stderr
    assert query(product.server, f"db_{product.globex}", "SELECT to_regclass('documents')") == [(None,)]
    assert product.cli("migrate", "--tenant", product.globex).returncode == 0
    assert product.version(product.globex) == new_version
    assert product.cli("status").returncode == 0

    # plain alembic, from the files init wrote and the installed package alone
    current = product.run(str(product.installed.bin / "alembic"), "-c", "alembic.ini", "-n", "tenant",
                          "-x", f"tenant={product.acme}", "current")
    assert current.returncode == 0 and f"{new_version} (head)" in current.stdout, current.stderr


def test_the_wheel_and_sdist_hold_the_templates_and_init_writes_them(installed, tmp_path):
    import tarfile
    import zipfile

    names = zipfile.ZipFile(installed.wheel).namelist()
    templates = ["grapevine_alembic/files/templates/alembic.ini",
                 "grapevine_alembic/files/templates/alembic_control/env.py.tmpl",
                 "grapevine_alembic/files/templates/alembic_tenant/env.py.tmpl"]
    assert set(templates) <= set(names)
    with tarfile.open(installed.sdist) as sdist:
        assert {n.split("/", 1)[1] for n in sdist.getnames() if "/templates/" in n} >= set(templates)
    # the repository's own files are what init writes (one text, two places)
    for name, stored in (("alembic.ini", "alembic.ini"), ("alembic_control/env.py", "alembic_control/env.py.tmpl"),
                         ("alembic_tenant/env.py", "alembic_tenant/env.py.tmpl")):
        assert (REPO / name).read_text() == (REPO / "grapevine_alembic" / "files" / "templates" / stored).read_text()
    repo = tmp_path / "repo"
    (repo / "alembic_tenant").mkdir(parents=True)
    (repo / "alembic_tenant" / "env.py").write_text("# ours\n")
    (repo / ".gitignore").write_text("node_modules/")  # no final newline
    result = subprocess.run([str(installed.bin / "grapevine-migrations"), "init"], cwd=repo, env=installed.env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "left alembic_tenant/env.py as it is (it exists)" in result.stdout
    assert (repo / "alembic_tenant" / "env.py").read_text() == "# ours\n"
    assert (repo / ".gitignore").read_text() == "node_modules/\n.grapevine/\n"
    assert "made migrations/control/" in result.stdout and (repo / "migrations" / "tenant").is_dir()
