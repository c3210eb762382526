"""Commands for setting a repository up and for CI around it: ``init`` and ``summary``."""

from __future__ import annotations

import os
from pathlib import Path

import click

from ..app import App, cli, pass_app


@cli.command()
@click.option("--directory", type=click.Path(file_okay=False, path_type=Path), default=".", show_default=True,
              help="The repository to set up.")
@click.option("--tenants-table", is_flag=True,
              help="Also write a first control migration creating the tenants table (only into an empty chain).")
def init(directory: Path, tenants_table: bool):
    """Write alembic.ini, the two Alembic env folders and migrations/{control,tenant}; never overwrite a file.

    The CLI needs only ./migrations/control and ./migrations/tenant; alembic.ini and the env
    folders are for plain `alembic -c alembic.ini` and for the settings alembic.ini holds.

    \b
    Examples:
      grapevine-migrations init
      grapevine-migrations init --tenants-table    (a new repository: its first control file too)
    """
    from importlib.metadata import version

    from ...errors import UsageError
    from ...files import scaffold as files  # lazy: --help stays fast
    from ...settings import MIGRATIONS_DIR_VARIABLE

    if not directory.is_dir():
        raise UsageError(f"{directory} is not a folder")
    elsewhere = os.environ.get(MIGRATIONS_DIR_VARIABLE, "").strip()  # the chains live there: no folders here
    if elsewhere and tenants_table:  # refused before anything is written
        raise UsageError(f"--tenants-table writes into ./migrations/control: unset {MIGRATIONS_DIR_VARIABLE}")
    for step in files.scaffold(directory):
        if step.path == ".gitignore":
            click.echo("added .grapevine/ to .gitignore" if step.done else ".gitignore already ignores .grapevine/")
        else:
            click.echo(f"wrote {step.path}" if step.done else f"left {step.path} as it is (it exists)")
    if elsewhere:
        click.echo(f"note: {MIGRATIONS_DIR_VARIABLE} is set, so no migrations/ folders were made here"
                   " (alembic.ini's version_locations name ./migrations: change them to match)")
    else:
        for step in files.migration_folders(directory):
            if step.done:
                click.echo(f"made {step.path}")
        if tenants_table:
            written = files.tenants_table(directory / "migrations" / "control")
            click.echo(f"wrote {written.relative_to(directory)}" if written else
                       "left migrations/control as it is (it has migrations: --tenants-table is for a new chain)")
    for line in files.next_steps(version("grapevine-alembic")):
        click.echo(line)


@cli.command("summary")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@pass_app
def summary(app: App, files):
    """Render --json documents as a Markdown job summary (GitHub Actions: >> "$GITHUB_STEP_SUMMARY").

    Exits 1 when a file holds no document (the step that writes it crashed).

    \b
    Example:
      grapevine-migrations migrate --control --json > control.json
      grapevine-migrations summary control.json >> "$GITHUB_STEP_SUMMARY"
    """
    from ..github_summary import NoDocument, render

    for path in files:
        try:
            lines = render(path)
        except NoDocument as err:
            app.out().line(f"### no result: {err}")  # the summary says so too, not only the log
            raise
        for line in lines:
            app.out().line(line)
