"""``dev``: the embedded local PostgreSQL, for trying the tool and for development."""

from __future__ import annotations

import os

import click

from ..app import App, cli, exit_with, pass_app


@cli.group()
@pass_app
def dev(app: App):
    """The embedded local PostgreSQL, for trying the tool and for development."""
    app.embedded = True  # a dev command asks for the embedded server when no URL is set


@dev.group("tenant")
def dev_tenant():
    """Manage tenants on a local server."""


@dev_tenant.command("add")
@click.argument("tenant_ids", nargs=-1, required=True)
@pass_app
def dev_tenant_add(app: App, tenant_ids):
    """Insert provisioned tenants and create their databases at head (copied from the template).

    \b
    Example:
      grapevine-migrations dev tenant add acme globex initech
    """
    from ...database.jobs.runner import Chain
    from ...local.devserver import add_tenants  # lazy: --help stays fast
    from ..app import run_options

    chain = Chain(app.project(), "tenant")
    for name, created in add_tenants(app.settings(), list(tenant_ids), chain, run_options(app)):
        click.echo(f"created {name}" if created else f"{name} exists (tenant marked provisioned)")


@dev_tenant.command("remove")
@click.argument("tenant_ids", nargs=-1, required=True)
@pass_app
def dev_tenant_remove(app: App, tenant_ids):
    """Drop local tenants' databases and delete their rows from the tenants table.

    \b
    Example:
      grapevine-migrations dev tenant remove globex
    """
    from ...local.devserver import remove_tenants  # lazy: --help stays fast

    for name, dropped, row in remove_tenants(app.settings(), list(tenant_ids)):
        what = [part for part, done in ((f"dropped {name}", dropped), ("deleted its tenants row", row)) if done]
        click.echo(" and ".join(what) if dropped else f"{name} did not exist; deleted its tenants row")


def _dev_spec(app: App, tenant: str | None):
    settings = app.settings()
    return settings.tenant_spec(tenant) if tenant else settings.control


@dev.command("url")
@click.option("--tenant", metavar="ID", help="The tenant's database instead of the control database.")
@click.option("--show-password", is_flag=True, help="Print the password in the URL (it is masked otherwise).")
@pass_app
def dev_url(app: App, tenant, show_password):
    """Print the URL of the control (or a tenant's) database, e.g. for psql or a GUI.

    \b
    Examples:
      grapevine-migrations dev url
      psql "$(grapevine-migrations dev url --tenant acme --show-password)"
    """
    spec = _dev_spec(app, tenant)
    if not show_password:
        app.out().line(spec.display())
        return
    # libpq falls back to PGPASSWORD when the URL has none, so the tool connects with it: show that one
    fallback = os.environ.get("PGPASSWORD") or None
    click.echo(spec.url(show_password=True, password=fallback))  # asked for: not through the masking output
    if spec.password is None and fallback is None:
        app.out().info("note: no password is configured (libpq may still read one from ~/.pgpass or PGPASSFILE)")


@dev.command("psql", context_settings={"ignore_unknown_options": True})
@click.option("--tenant", metavar="ID", help="The tenant's database instead of the control database.")
@click.argument("psql_args", nargs=-1, type=click.UNPROCESSED)
@pass_app
def dev_psql(app: App, tenant, psql_args):
    """Open psql on the control (or a tenant's) database; extra arguments go to psql.

    \b
    Examples:
      grapevine-migrations dev psql
      grapevine-migrations dev psql --tenant acme -c "select * from alembic_version"
    """
    from ...local.devserver import run_psql  # lazy: --help stays fast

    exit_with(run_psql(_dev_spec(app, tenant), list(psql_args)))


@dev.command("down")
@pass_app
def dev_down(app: App):
    """Stop the embedded PostgreSQL (its data stays in .grapevine/pg)."""
    from ...local.devserver import local_server  # lazy: --help stays fast

    server = local_server(app.project())
    if not server.is_running():
        click.echo("the embedded PostgreSQL is not running")
        return
    server.stop()
    click.echo("stopped the embedded PostgreSQL")


@dev.command("up")
@pass_app
def dev_up(app: App):
    """Start the embedded PostgreSQL for this project; commands without a URL use it while it runs.

    \b
    Example:
      grapevine-migrations dev up && grapevine-migrations migrate --control
    """
    import os

    from ...errors import UsageError

    if os.environ.get("CONTROL_DATABASE_URL", "").strip():
        raise UsageError("CONTROL_DATABASE_URL is set: commands use that server (unset it for the embedded one)")
    app.out().line(f"the embedded PostgreSQL is running: {app.settings().control.display()}")
