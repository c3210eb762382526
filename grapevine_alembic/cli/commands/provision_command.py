"""``provision``: new tenant databases at head, copied from the server's template."""

from __future__ import annotations

import click

from ..app import EXIT_FAILED, App, cli, exit_with, json_option, pass_app, per_server_option, run_options
from ..common import load_chains
from ...defaults import DEFAULTS


@cli.command()
@click.option("--tenant", "tenant_ids", multiple=True, required=True, metavar="ID",
              help="A tenant whose row is in the tenants table (any state); repeat for several.")
@click.option("--timeout", default=DEFAULTS.timeout, show_default=True, type=click.FloatRange(0),
              help="statement_timeout in seconds, and the longest wait for the template's and each database's lock.")
@click.option("--max-parallel", default=5, show_default=True, type=click.IntRange(1, 100),
              help="Databases created at the same time.")
@per_server_option
@json_option
@pass_app
def provision(app: App, tenant_ids, timeout, max_parallel, max_per_server, json_mode):
    """Create tenant databases at head without replaying the chain.

    Each db_<ID> is a copy (CREATE DATABASE ... TEMPLATE) of a template database the tool
    keeps at head on that server, grapevine_template_tenant, migrated file by file whenever
    it is behind.  Where the server refuses (no CREATEDB right, no templates), the files
    are applied one by one instead, with a notice.  A database that exists is refused.

    \b
    Examples:
      grapevine-migrations provision --tenant acme
      grapevine-migrations provision --tenant acme --tenant globex --json
    """
    # lazy: --help stays fast
    from ...database.jobs.provisioning import provision as provision_one
    from ...fleet import fleet
    from ...fleet.registered import registered_targets
    from .. import views

    out = app.out(json_mode)
    chain = load_chains(app, ["tenant"], strict=True)["tenant"]
    targets = registered_targets(app.settings(), tenant_ids, app.project().tenants_query)
    options = run_options(app, timeout_s=timeout)
    results = fleet.run_targets(targets, lambda t: provision_one(t, chain, options), options=options,
                                max_parallel=max_parallel, max_per_server=max_per_server)
    if json_mode:
        document = views.run_document("provision", results, dry_run=False)
        for entry, result in zip(document["databases"], results):
            entry["provisioned_by"] = result.how
        out.document(document)
    else:
        for result in results:
            if not result.ok:
                out.error(f"tenant {result.target.tenant_id}: {result.error}")
            elif result.how == "template":
                out.line(f"{result.target.database}: created at {result.after or '(no files)'} from the template"
                         f" ({len(result.applied)} file(s), {result.seconds:.2f}s)")
            else:
                out.line(f"{result.target.database}: created at {result.after or '(no files)'} by applying"
                         f" {len(result.applied)} file(s) ({result.seconds:.2f}s)")
    exit_with(EXIT_FAILED if any(not r.ok for r in results) else 0)
