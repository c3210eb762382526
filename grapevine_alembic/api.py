"""Python API for services that migrate a database they just created (tenant provisioning).

A drop-in for the previous tool's call::

    applied, total, ok = await migrate_database_async(url, migrations_dir, timeout=300, retries=1)

The same lock, transactions, ledger and adoption as ``grapevine-migrations migrate``.
A failure on the database side (unreachable, wrong password, a failing migration)
is ``ok = False`` with the reason in ``error``; only a programming error (a bad
argument, a missing folder, two files with one version) raises.  Nothing is
printed: notices go to the ``grapevine_alembic`` logger and into the result.
Every call has its own connection and state, so many threads (or tasks) may call
at once.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from .errors import GrapevineError

__all__ = ["MigrationResult", "ProvisionResult", "migrate_database", "migrate_database_async", "provision_database"]

logger = logging.getLogger("grapevine_alembic")


@dataclass(frozen=True)
class MigrationResult:
    """Unpacks as ``applied, total, ok``; also carries the version reached, the error and the notices."""

    applied: int
    total: int
    ok: bool
    version: str | None = None
    error: str | None = None
    notices: tuple[str, ...] = field(default=())
    applied_versions: tuple[str, ...] = ()

    def __iter__(self):
        return iter((self.applied, self.total, self.ok))


def migrate_database(
    url: str, migrations_dir: str | Path, *, timeout: float = 300, retries: int = 3, dry_run: bool = False
) -> MigrationResult:
    """Apply every pending migration of ``migrations_dir`` (a tenant or control folder) to ``url``."""
    from .database import runner  # lazy: importing the API stays cheap
    from .settings import DEFAULT_LOCK_KEY, parse_database_url
    from .database.target import Target

    spec, chain = _spec(url, parse_database_url), _chain(migrations_dir, runner)
    if timeout < 0 or retries < 0:
        raise ValueError("timeout and retries must not be negative")
    notices: list[str] = []

    def on_notice(database: str, version: str | None, message: str) -> None:
        line = f"{database} {version or '-'}: {message}"
        notices.append(line)
        logger.info("%s", line)

    options = runner.RunOptions(
        lock_key=DEFAULT_LOCK_KEY, timeout_s=float(timeout), retries=retries, dry_run=dry_run, on_notice=on_notice
    )
    kind = "control" if chain.folder.name == "control" else "tenant"
    result = runner.migrate(Target(kind, spec), chain, options)
    error = _masked(result.error, spec.password)
    if error:
        logger.warning("migrating %s failed: %s", spec.dbname, error)
    applied = tuple(result.applied)
    return MigrationResult(
        applied=len(applied),
        total=len(chain.files),
        ok=result.ok,
        version=result.after,
        error=error,
        notices=tuple(notices),
        applied_versions=applied,
    )


@dataclass(frozen=True)
class ProvisionResult:
    """A new database at head: ``method`` is "template" (a copy) or "chain" (the files applied one by one)."""

    ok: bool
    version: str | None = None
    method: str | None = None
    error: str | None = None
    notices: tuple[str, ...] = field(default=())


def provision_database(
    url: str, migrations_dir: str | Path, *, timeout: float = 300, maintenance_db: str = "postgres"
) -> ProvisionResult:
    """Create the database ``url`` names, at the head of ``migrations_dir``, from the server's template.

    The database must not exist (where the role has no CREATEDB right: it must exist, empty,
    and the chain is applied to it).  ``maintenance_db`` is where the tool connects to create
    it and to coordinate with other runs.
    """
    from .database import provisioning, runner  # lazy: importing the API stays cheap
    from .database.target import Target
    from .settings import DEFAULT_LOCK_KEY, parse_database_url

    spec, chain = _spec(url, parse_database_url), _chain(migrations_dir, runner)
    if timeout < 0:
        raise ValueError("timeout must not be negative")
    notices: list[str] = []

    def on_notice(database: str, version: str | None, message: str) -> None:
        line = f"{database} {version or '-'}: {message}"
        notices.append(line)
        logger.info("%s", line)

    options = runner.RunOptions(lock_key=DEFAULT_LOCK_KEY, timeout_s=float(timeout), on_notice=on_notice)
    result = provisioning.provision(Target("tenant", spec), chain, options, maintenance_db=maintenance_db)
    error = _masked(result.error, spec.password)
    if error:
        logger.warning("provisioning %s failed: %s", spec.dbname, error)
    return ProvisionResult(ok=result.ok, version=result.after, method=result.how, error=error, notices=tuple(notices))


async def migrate_database_async(
    url: str, migrations_dir: str | Path, *, timeout: float = 300, retries: int = 3, dry_run: bool = False
) -> MigrationResult:
    """``migrate_database`` off the event loop (in a worker thread)."""
    return await asyncio.to_thread(
        migrate_database, url, migrations_dir, timeout=timeout, retries=retries, dry_run=dry_run
    )


def _spec(url: str, parse):
    if not isinstance(url, str):
        raise TypeError("url must be a postgresql:// URL string")
    try:
        return parse(url, name="url")
    except GrapevineError as err:
        raise ValueError(str(err)) from None


def _chain(migrations_dir, runner):
    folder = Path(migrations_dir).resolve()
    if not folder.is_dir():
        raise FileNotFoundError(f"migrations folder {folder} does not exist")
    try:
        return runner.Chain.from_folder(folder)
    except GrapevineError as err:
        raise ValueError(str(err)) from None


def _masked(text: str | None, password: str | None) -> str | None:
    if text and password:
        return text.replace(password, "***")
    return text
