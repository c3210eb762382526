"""``reset``: drop all data and schema of local databases, tenants before control."""

from __future__ import annotations

from dataclasses import replace

import click

from ..app import EXIT_FAILED, EXIT_OK, App, cli, exit_with, pass_app, run_options, selection_from, target_options
from ..common import confirm, database_names
from ...errors import MissingTarget


@cli.command()
@target_options
@click.option("--dry-run", is_flag=True, help="Show what would be dropped.")
@click.option("--force", is_flag=True, help="Do not ask for confirmation.")
@click.option("--max-parallel", default=5, show_default=True, type=click.IntRange(1, 100),
              help="Tenant databases reset at the same time.")
@pass_app
def reset(app: App, control, all_tenants, tenant_ids, tenants_file, shard, dry_run, force, max_parallel):
    """Drop ALL data and schema of local databases, so a fresh migrate starts clean.

    Tenants are reset before control.  Only local servers (localhost, 127.x.x.x,
    ::1, unix socket), judged by where the connection really goes; any other host
    is refused, even with --force.

    \b
    Examples:
      grapevine-migrations reset --all-tenants --dry-run
      grapevine-migrations reset --control --all-tenants --force
    """
    # lazy: --help stays fast
    from ...fleet import fanout
    from ...database.jobs import resetting
    from .. import views
    from ...fleet.targets import control_target, resolve

    out = app.out()
    selection = selection_from(control, all_tenants, tenant_ids, tenants_file, shard)
    if selection.empty:
        raise MissingTarget("reset needs a target: --control, --all-tenants, --tenant ID or --tenants-file")
    settings = app.settings()
    tenants = (resolve(replace(selection, control=False), settings, app.project().tenants_query, announce=out.info)
               if selection.wants_tenants else [])
    targets = tenants + ([control_target(settings)] if selection.control else [])  # tenants before control
    resetting.refuse_remote(targets)
    if not (force or dry_run):
        confirm(app, f"Drop ALL data in {len(targets)} database(s): {database_names(targets)}?")
    options = run_options(app, dry_run=dry_run)
    project = app.project()
    results = fanout.run_all(tenants, lambda t: resetting.reset(t, options, project.tool_tables(t.env)),
                             max_parallel=max_parallel)
    if selection.control:
        results.append(resetting.reset(targets[-1], options, project.tool_tables("control")))
    views.print_changes(out, results, dry_run=dry_run)
    exit_with(EXIT_FAILED if any(not r.ok for r in results) else EXIT_OK)
