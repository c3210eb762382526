"""``python -m grapevine_alembic``: the same CLI as ``grapevine-migrations``."""

from .cli.main import main

main()
