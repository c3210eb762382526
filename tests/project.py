"""A scratch copy of the project (alembic.ini, both env folders, the fixture chains) wired to the test server.

Tests drive it the way a user does: ``grapevine-migrations`` and ``alembic`` from the project root,
then look at the databases directly.  Both run in the test process (tests/inprocess.py: isolated
like a child process, ~1.4 s cheaper a call); ``subprocess=True`` runs the real executable for
tests about signals, exit codes of the process, the terminal or the interpreter itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from pg import query, url_for

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# The suite's own chains: a team's files in the project's migrations/ never change what the tests see.
FIXTURE_MIGRATIONS = Path(__file__).resolve().parent / "fixtures" / "migrations"
NOWHERE = "postgresql://nobody@127.0.0.1:1/no_database"  # port 1: connection refused at once


class ScratchProject:
    def __init__(self, root: Path, server, make_db, *, tenant_chain: bool = True):
        """``server`` and ``make_db`` None: a project of files only, with no database (``files_project``)."""
        self.root = root
        self.server = server
        self.make_db = make_db
        for name in ("alembic.ini", "alembic_control", "alembic_tenant"):
            source = REPO / name
            if source.is_dir():
                shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(source, root / name)
        shutil.copytree(FIXTURE_MIGRATIONS / "control", root / "migrations" / "control")
        if tenant_chain:
            shutil.copytree(FIXTURE_MIGRATIONS / "tenant", root / "migrations" / "tenant")
        else:
            (root / "migrations" / "tenant").mkdir(parents=True)
        # Without a server (commands that only read the files): a URL where nothing listens, so a
        # command that connects after all fails the test instead of passing by luck.
        self.control_db = make_db() if server is not None else None
        self.env = {
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": os.environ.get("HOME", "/root"),
            "CI": "true",  # never fall back to the embedded server in tests
            "CONTROL_DATABASE_URL": url_for(server, self.control_db) if server is not None else NOWHERE,
            "PYTHONDONTWRITEBYTECODE": "1",
        }

    # ---- files ----
    def migrations(self, env: str) -> Path:
        return self.root / "migrations" / env

    def write(self, env: str, name: str, sql: str) -> Path:
        path = self.migrations(env) / name
        path.write_text(sql)
        return path

    def clear(self, env: str) -> None:
        for path in self.migrations(env).glob("*.sql"):
            path.unlink()

    def tenant_chain(self, files: dict[str, str], tenant: str = "acme") -> str:
        """Replace the tenant chain with ``files`` and add one tenant (control migrated); its database name."""
        self.migrate_control()
        self.clear("tenant")
        for name, sql in files.items():
            self.write("tenant", name, sql)
        return self.add_tenant(tenant)

    def without_alembic_ini(self) -> ScratchProject:
        """The previous tool's layout: only migrations/control and migrations/tenant, no alembic.ini."""
        for name in ("alembic.ini", "alembic_control", "alembic_tenant"):
            path = self.root / name
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        return self

    # ---- commands ----
    def run(self, *args: str, env: dict | None = None, input: str | None = None, timeout: float = 120, cwd=None):
        merged = {**self.env, **(env or {})}
        merged = {k: v for k, v in merged.items() if v is not None}
        return subprocess.run(
            list(args), cwd=cwd or self.root, env=merged, capture_output=True, text=True, input=input, timeout=timeout,
        )

    def spawn(self, *args: str, env: dict | None = None) -> subprocess.Popen:
        """The CLI started in the background (text pipes), for concurrency and kill tests."""
        merged = {k: v for k, v in {**self.env, **(env or {})}.items() if v is not None}
        return subprocess.Popen(
            [str(BIN / "grapevine-migrations"), *args], cwd=self.root, env=merged,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def cli(self, *args: str, subprocess: bool = False, **kw):
        return self._command("grapevine-migrations", list(args), subprocess, **kw)

    def alembic(self, *args: str, subprocess: bool = False, **kw):
        return self._command("alembic", ["-c", "alembic.ini", *args], subprocess, **kw)

    def _command(self, program: str, args: list[str], in_a_subprocess: bool, *, env: dict | None = None,
                 input: str | None = None, timeout: float = 120, cwd=None):
        if in_a_subprocess or os.environ.get("GRAPEVINE_TESTS_SUBPROCESS"):  # the old way, to compare or bisect
            return self.run(str(BIN / program), *args, env=env, input=input, timeout=timeout, cwd=cwd)
        import inprocess  # lazy: collecting the suite does not import the product

        merged = {k: v for k, v in {**self.env, **(env or {})}.items() if v is not None}
        return inprocess.run(program, args, env=merged, cwd=cwd or self.root, input=input)

    # ---- databases ----
    def query(self, dbname: str, sql: str, params=None):
        return query(self.server, dbname, sql, params)

    def control(self, sql: str, params=None):
        return self.query(self.control_db, sql, params)

    def migrate_control(self) -> None:
        result = self.cli("migrate", "--control")
        assert result.returncode == 0, result.stderr

    def add_tenant(self, tenant_id: str, *, state: str = "provisioned", create_db: bool = True, deleted: bool = False):
        self.control(
            "INSERT INTO tenants (id, name, state, deleted_at) VALUES (%s, %s, %s, CASE WHEN %s THEN now() END)",
            (tenant_id, tenant_id, state, deleted),
        )
        if create_db:
            self.make_db(f"db_{tenant_id}")
        return f"db_{tenant_id}"

    def version(self, dbname: str) -> str | None:
        if not self.query(dbname, "SELECT to_regclass('alembic_version') IS NOT NULL")[0][0]:
            return None
        rows = self.query(dbname, "SELECT version_num FROM alembic_version")
        return rows[0][0] if rows else None

    def ledger(self, dbname: str) -> list[tuple]:
        return self.query(dbname, "SELECT version, applied_by FROM schema_migrations ORDER BY version")

    def tables(self, dbname: str) -> set[str]:
        return {r[0] for r in self.query(dbname, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
