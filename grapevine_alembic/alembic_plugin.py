"""Alembic plugin entry point (group ``alembic.plugins``), run when Alembic is imported.

Plain ``alembic history`` reads revisions without running env.py, so the .sql
revision loader has to be in place before any command runs.  Importing this
module must stay cheap and must not import Alembic's top-level package again.
"""


def setup(plugin) -> None:
    from .alembic_bridge import install

    install()
