"""Commands for setting a repository up and for CI around it: ``init``, ``dev up``, ``summary``."""

from __future__ import annotations

from pathlib import Path

import click

from .cli import App, cli, pass_app
from .commands import dev


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

    from .errors import UsageError
    from .scaffold import next_steps, scaffold

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


@dev.command("up")
@pass_app
def dev_up(app: App):
    """Start the embedded PostgreSQL for this project; commands without a URL use it while it runs.

    \b
    Example:
      grapevine-migrations dev up && grapevine-migrations migrate --control
    """
    import os

    from .errors import UsageError

    if os.environ.get("CONTROL_DATABASE_URL", "").strip():
        raise UsageError("CONTROL_DATABASE_URL is set: commands use that server (unset it for the embedded one)")
    app.out().line(f"the embedded PostgreSQL is running: {app.settings().control.display()}")


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
