"""``list``: the migration files in order, as a table or one JSON document."""

from __future__ import annotations

import click

from ..app import App, cli, json_option, pass_app
from ..common import ENVS, load_chains


@cli.command("list")
@click.option("--control", is_flag=True, help="Control migrations (both when neither flag is given).")
@click.option("--tenant", is_flag=True, help="Tenant migrations (both when neither flag is given).")
@json_option
@pass_app
def list_migrations(app: App, control: bool, tenant: bool, json_mode: bool):
    """List migration files in order: version, description, file.

    \b
    Examples:
      grapevine-migrations list
      grapevine-migrations list --tenant --json
    """
    out = app.out(json_mode)
    envs = [env for env, wanted in (("control", control), ("tenant", tenant)) if wanted] or list(ENVS)
    chains = load_chains(app, envs)
    if json_mode:  # paths relative to the project root, as in the text view and in errors
        out.document(
            {env: [{"version": m.version, "description": m.message, "file": _relative(app, m.path)}
                   for m in chain.files] for env, chain in chains.items()}
        )
        return
    rows = [[env, m.version, m.message, _relative(app, m.path)] for env, chain in chains.items() for m in chain.files]
    out.table(["env", "version", "description", "file"], rows)


def _relative(app: App, path) -> str:
    try:
        return str(path.relative_to(app.project().root))
    except ValueError:
        return str(path)
