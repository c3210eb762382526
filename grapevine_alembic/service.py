"""The previous tool's migrations module, for its provisioning service: the switch is one import line.

    from grapevine_alembic.service import get_tenant_migrations_dir, migrate_database

    applied, total, success = await migrate_database(url, get_tenant_migrations_dir(), timeout=300, retries=1)

Exactly those two names, with the previous tool's signature and 3-tuple; the work runs in a worker
thread, so the event loop keeps serving while a database migrates.  ``grapevine_alembic.api`` has the
richer forms (the result's version, error and notices).
"""

import asyncio as _asyncio
import os as _os
from pathlib import Path as _Path

__all__ = ["get_tenant_migrations_dir", "migrate_database"]


def get_tenant_migrations_dir() -> _Path:
    """The project's tenant folder, found from the working directory as the CLI finds it.

    ``MIGRATIONS_DIR`` (from the environment) wins, then alembic.ini's ``version_locations``, then
    ``migrations/tenant`` of the previous tool's layout.  No project found is ``FileNotFoundError``.
    """
    from .errors import GrapevineError
    from .settings import find_config, load_project

    try:
        project = load_project(find_config())
        return (project.root / project.migration_dir("tenant")).resolve()
    except GrapevineError as err:
        raise FileNotFoundError(str(err)) from None


async def migrate_database(
    url: str, migrations_dir: "str | _os.PathLike[str]", timeout: float = 300, retries: int = 1,
) -> tuple[int, int, bool]:
    """Apply the pending files of ``migrations_dir`` to ``url``: ``(applied, total, success)``.

    The same job as ``grapevine_alembic.api.migrate_database`` (a database-side failure is
    ``success = False``, logged to the ``grapevine_alembic`` logger), off the event loop.
    """
    from .api import migrate_database as blocking

    result = await _asyncio.to_thread(blocking, url, migrations_dir, timeout=timeout, retries=retries)
    return result.applied, result.total, result.ok
