"""``create``: a new timestamped migration file from the template."""

from __future__ import annotations

import click

from ..app import App, cli, pass_app
from ..common import ENVS


@cli.command()
@click.argument("env", type=click.Choice(ENVS))
@click.argument("description")
@pass_app
def create(app: App, env: str, description: str):
    """Create a new timestamped migration file from the template.

    \b
    Examples:
      grapevine-migrations create tenant "add user preferences"
      grapevine-migrations create control "add tenant region"
    """
    from ...files.authoring import create_migration  # lazy: --help stays fast

    path = create_migration(app.project().migration_dir(env), description)
    click.echo(path)
