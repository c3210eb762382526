"""``python -m grapevine_alembic``: the same CLI as ``grapevine-migrations``."""

from .cli.app import main

main()
