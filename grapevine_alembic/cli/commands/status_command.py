"""``status``: where each database stands, and the exit code that says so."""

from __future__ import annotations

import click

from ..app import (
    App,
    cli,
    exit_with,
    json_option,
    pass_app,
    per_server_option,
    report_option,
    run_options,
    selection_from,
    target_options,
)
from ..common import ENVS, load_chains, targets_or_error


@cli.command()
@target_options
@click.option("-v", "--verbose", is_flag=True, help="Every database, every migration with its applied time.")
@click.option("--max-parallel", default=10, show_default=True, type=click.IntRange(1, 100),
              help="Databases read at the same time.")
@click.option("--exit-code", "pending_exit", is_flag=True,
              help="Exit 3 when something is pending (as dbmate's --exit-code); without it pending work exits 0.")
@per_server_option
@report_option
@json_option
@pass_app
def status(app: App, control, all_tenants, tenant_ids, tenants_file, shard, verbose, max_parallel, pending_exit,
           max_per_server, report, json_mode):
    """Show where each database stands (default: control and all tenants).

    Exit codes: 0 up to date or something pending (as the previous tool), 3 pending with
    --exit-code, 1 a database failed, is missing or drifted (edited or unknown migrations).

    \b
    Examples:
      grapevine-migrations status
      grapevine-migrations status --tenant acme --verbose
      grapevine-migrations status --all-tenants --json
    """
    # lazy: --help stays fast
    from ...fleet import fleet
    from ...database.jobs import runner
    from .. import views

    app.read_only = True
    out = app.out(json_mode)
    selection = selection_from(control, all_tenants, tenant_ids, tenants_file, shard, default_all=True)
    chains = load_chains(app, ENVS)
    targets, discovery_error = targets_or_error(app, selection)
    options = run_options(app)
    with out.progress(len(targets), "status") as bar:
        results = fleet.run_targets(
            targets, lambda t: runner.status(t, chains[t.env], options), options=options,
            max_parallel=max_parallel, max_per_server=max_per_server, on_result=bar.advance,
        )
    pending_code = views.EXIT_PENDING if pending_exit else views.EXIT_OK
    if json_mode:
        out.document(views.status_document(results, chains, verbose=True, discovery_error=discovery_error,
                                           pending_code=pending_code))
    else:
        views.print_status(out, results, chains, verbose=verbose, discovery_error=discovery_error,
                           wants_tenants=selection.wants_tenants)
    if report:
        views.write_page(out, report, "status", results, chains)
    exit_with(views.status_exit_code(results, discovery_error, pending_code=pending_code))
