"""``migrate``: apply what is pending, control first, then the tenants in parallel (optionally staged)."""

from __future__ import annotations

import click

from .app import (App, cli, exit_with, json_option, pass_app, per_server_option, report_option, run_options,
                  selection_from, target_options)
from .common import load_chains
from .rollout import fan_out, run_exit_code
from ..errors import MissingTarget, UsageError


@cli.command()
@target_options
@click.option("--dry-run", is_flag=True, help="Show exactly what is pending per database; write nothing.")
@click.option("--retries", default=3, show_default=True, type=click.IntRange(0, 20),
              help="Re-runs of a database after a transient error (lock timeout, deadlock, lost answer).")
@click.option("--retry-window", default=60.0, show_default=True, type=click.FloatRange(0), metavar="SECONDS",
              help="How long a restarting server (refused, starting up, shutting down, connection lost) is retried.")
@click.option("--timeout", default=300.0, show_default=True, type=click.FloatRange(0),
              help="statement_timeout in seconds for every statement, and the longest wait for the migration lock (0 = no limit).")
@click.option("--lock-timeout", default=5.0, show_default=True, type=click.FloatRange(0),
              help="lock_timeout in seconds: the longest wait for a table lock before failing (then retried).")
@click.option("--max-parallel", default=5, show_default=True, type=click.IntRange(1, 100),
              help="Tenant databases migrated at the same time.")
@per_server_option
@click.option("--out-of-order/--refuse-out-of-order", "out_of_order", default=None,
              help="Apply (with a warning line each) or refuse files older than a database's version that it never"
                   " ran (default: alembic.ini [grapevine] out_of_order, else apply).")
@click.option("--canary", default=None, type=click.IntRange(1),
              help="Migrate this many tenants first (at least 1); stop if any fails.")
@click.option("--max-failures", default=None, type=click.IntRange(1),
              help="Stop starting new tenants after this many failures.")
@click.option("-v", "--verbose", is_flag=True,
              help="One row per database in the summary, however many (by default a run over more than 20 groups).")
@report_option
@json_option
@pass_app
def migrate(app: App, control, all_tenants, tenant_ids, tenants_file, shard, dry_run, retries, retry_window, timeout,
            lock_timeout, max_parallel, max_per_server, out_of_order, canary, max_failures, verbose, report, json_mode):
    """Apply pending migrations: control first, then tenants in parallel.

    \b
    Examples:
      grapevine-migrations migrate --control --all-tenants
      grapevine-migrations migrate --tenant acme --dry-run
      grapevine-migrations migrate --all-tenants --max-parallel 10 --canary 5
      grapevine-migrations migrate --all-tenants --shard 2/4 --json
    """
    # lazy: --help stays fast
    from ..database import interrupts, runner
    from . import views

    out = app.out(json_mode)
    selection = selection_from(control, all_tenants, tenant_ids, tenants_file, shard)
    if selection.empty:
        raise MissingTarget("migrate needs a target: --control, --all-tenants, --tenant ID or --tenants-file")
    if (canary or max_failures) and not selection.wants_tenants:
        flag = "--canary" if canary else "--max-failures"
        raise UsageError(f"{flag} stages a rollout over tenants: use it with --all-tenants or --tenant")
    envs = [e for e, wanted in (("control", selection.control), ("tenant", selection.wants_tenants)) if wanted]
    chains = load_chains(app, envs, strict=True)  # --dry-run refuses what the real run refuses
    from ..database.late_files import APPLY  # lazy: --help stays fast

    late = out_of_order if out_of_order is not None else app.project().out_of_order == APPLY
    options = run_options(app, timeout_s=timeout, lock_timeout_s=lock_timeout, retries=retries, dry_run=dry_run,
                          out_of_order=late, retry_window_s=retry_window)
    with interrupts.graceful(out.info) as signals:
        results = fan_out(app, selection, lambda t: runner.migrate(t, chains[t.kind], options), options,
                          max_parallel, max_per_server, label="migrate", canary=canary or 0,
                          max_failures=max_failures, peek=lambda t: runner.status(t, chains[t.kind], options))
    if json_mode:
        out.document(views.run_document("migrate", results, dry_run=dry_run, interrupted=signals.stopping))
    elif dry_run:
        views.print_dry_run(out, results)
    else:
        views.print_migrate_summary(out, results, verbose=verbose)
    if report:
        views.write_page(out, report, "migrate", results, chains)
    exit_with(run_exit_code(results, signals))
