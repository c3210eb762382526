"""Commands for setting a repository up and for CI around it: ``init`` and ``summary``."""

from __future__ import annotations

from pathlib import Path

import click

from .app import App, cli, pass_app


@cli.command()
@click.option("--directory", type=click.Path(file_okay=False, path_type=Path), default=".", show_default=True,
              help="The repository to set up.")
def init(directory: Path):
    """Write alembic.ini and the two Alembic env folders into a repository; never overwrite a file.

    The CLI works without them on ./migrations/control and ./migrations/tenant; they are for
    plain `alembic -c alembic.ini` and for the settings alembic.ini holds.

    \b
    Example:
      grapevine-migrations init
    """
    from importlib.metadata import version

    from ..errors import UsageError
    from ..files.scaffold import next_steps, scaffold

    if not directory.is_dir():
        raise UsageError(f"{directory} is not a folder")
    for step in scaffold(directory):
        if step.path == ".gitignore":
            click.echo("added .grapevine/ to .gitignore" if step.done else ".gitignore already ignores .grapevine/")
        else:
            click.echo(f"wrote {step.path}" if step.done else f"left {step.path} as it is (it exists)")
    if not any((directory / "migrations" / env).is_dir() for env in ("control", "tenant")):
        click.echo("note: no migrations/control or migrations/tenant here yet (set MIGRATIONS_DIR if they live elsewhere)")
    for line in next_steps(version("grapevine-alembic")):
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
    from .github_summary import NoDocument, render

    for path in files:
        try:
            lines = render(path)
        except NoDocument as err:
            app.out().line(f"### no result: {err}")  # the summary says so too, not only the log
            raise
        for line in lines:
            app.out().line(line)
