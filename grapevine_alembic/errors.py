"""One exception family for everything the CLI reports as a single line.

Lower layers raise these (or convert foreign exceptions with ``raise ... from err``);
the command layer prints ``error: <message>`` and picks the exit code.
"""

from dataclasses import dataclass
from pathlib import Path


def project_path(path: Path) -> str:
    """``path`` relative to the project root, else as given.

    The root is found as ``settings.find_config`` finds it: the nearest folder holding alembic.ini
    or, in the previous tool's layout without one, ``migrations/control`` or ``migrations/tenant``.
    """
    path = Path(path)
    for folder in path.parents:
        if (folder / "alembic.ini").is_file() or any((folder / "migrations" / env).is_dir()
                                                     for env in ("control", "tenant")):
            return str(path.relative_to(folder))
    return str(path)


@dataclass(frozen=True)
class Fix:
    """What resolves a failure, as facts.  The layers below the ways in never word it: each way in does
    (``cli/fixes``: the command to paste; ``alembic_env``: alembic's own; ``api``: its arguments)."""

    action: str  # one of the names below
    version: str | None = None
    back: str | None = None  # UNAPPLY of a lost head: the version the head moves back to ("base": none is left)


UNAPPLY = "unapply"  # a recorded version no file has: move the head back / remove the row (mark --unapply V)
OUT_OF_ORDER = "out-of-order"  # files merged late: run them out of order, or record them as applied (mark --apply V)
ADOPT = "adopt"  # the previous tool's ledger on a road that does not adopt: migrate adopts it
MIGRATE = "migrate"  # a database half-built from the chain: migrating it completes it
MIGRATE_CONTROL = "migrate-control"  # the control database has no tenants table yet
START_LOCAL = "start-local"  # no URL, and the embedded local server runs only when asked (dev up)
START_LOCAL_FIRST = "start-local-first"  # no URL, no local server running, and a read-only command never starts it
STOP_LOCAL = "stop-local"  # the embedded local server just started: what stops it (dev down)
RAISE_TIMEOUT = "raise-timeout"  # a statement outlasted the statement timeout: raise it, or batch the work
RAISE_LOCK_TIMEOUT = "raise-lock-timeout"  # a lock another session held outlasted the lock timeout: raise it


class GrapevineError(Exception):
    """Base class: the message is the one line a user sees (``fix``: what resolves it, for the way in to word)."""

    exit_code = 1
    fix: Fix | None = None

    def __init__(self, *args, fix: Fix | None = None):
        super().__init__(*args)
        self.fix = fix


class UsageError(GrapevineError):
    """The command line or configuration is wrong; nothing was attempted."""

    exit_code = 2


class MissingTarget(UsageError):
    """A command that writes was given no database: exit 1, as the previous tool had it."""

    exit_code = 1


class UnknownTenant(UsageError):
    """A named tenant id that the tenants table does not have; ``close`` holds the ids most like it."""

    def __init__(self, tenant_id: str, close: tuple[str, ...] = ()):
        super().__init__(f"unknown tenant {tenant_id}: no such id in the tenants table")
        self.tenant_id, self.close = tenant_id, close


class ConfigError(UsageError):
    """Environment, alembic.ini or .env is missing or malformed."""


class MigrationFileError(GrapevineError):
    """A migration file is misnamed, duplicated, empty or does not parse."""

    def __init__(self, message: str, *, path=None, line: int | None = None):
        where = ""
        if path is not None:
            shown = project_path(path)  # relative to the project root, like runtime errors
            where = f"{shown}:{line}: " if line else f"{shown}: "
        super().__init__(where + message)
        self.path = path
        self.line = line


class DatabaseError(GrapevineError):
    """A database could not be reached or refused an operation."""


class MigrationFailed(GrapevineError):
    """A statement of a migration failed; the migration was not recorded."""


class DuplicateVersion(MigrationFileError):
    """Two files share a version: the project is misconfigured, so it is a usage error (exit 2)."""

    exit_code = 2


class MissingMigrationDirectory(MigrationFileError):
    """The folder of an environment's files is missing or not a folder: misconfigured, exit 2."""

    exit_code = 2
