"""Alembic environment for the tenant database(s): the shared code does the work."""

from grapevine_alembic.alembic_env import run_environment

run_environment("tenant")
