"""Alembic plugin entry point (group ``alembic.plugins``), run when Alembic is imported.

Plain ``alembic history`` reads revisions without running env.py, so the .sql
revision loader has to be in place before any command runs.  Importing this
module must stay cheap and must not import Alembic's top-level package again.
"""

import sys

_BRIDGE = "grapevine_alembic.database.jobs.alembic_bridge"


def setup(plugin) -> None:
    bridge = sys.modules.get(_BRIDGE)
    if bridge is not None and not hasattr(bridge, "install"):
        # The bridge itself is importing Alembic right now; it installs itself when it finishes.
        return
    from .database.jobs.alembic_bridge import install  # lazy: the bridge imports Alembic, which is importing us

    install()
