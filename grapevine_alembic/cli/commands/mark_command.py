"""``mark``: record migrations as applied or not applied without running them (Alembic's stamp)."""

from __future__ import annotations

import click

from ..app import (
    EXIT_FAILED,
    EXIT_OK,
    App,
    cli,
    exit_with,
    json_option,
    pass_app,
    per_server_option,
    run_options,
    selection_from,
    target_options,
)
from ..common import confirm, database_names, load_chains
from ..rollout import fan_out, run_exit_code
from ...defaults import DEFAULTS
from ...errors import MissingTarget, UsageError


@cli.command()
@click.option("--apply", "apply_version", metavar="V", help="Record V alone as applied, without running it.")
@click.option("--unapply", "unapply_version", metavar="V",
              help="Record V alone as not applied: the next migrate runs V again.")
@click.option("--accept-edit", "accept_version", metavar="V",
              help="V's file was edited after it was applied: record its new checksum (needs --reason).")
@click.option("--reason", metavar="TEXT", help="With --accept-edit: why the edited file is right (kept in the ledger).")
@click.option("--range", "wide", is_flag=True,
              help="Also every version between V and the head (--apply: pending ones up to V; --unapply: V and later).")
@click.option("--DANGEROUS-apply-all", "apply_all", is_flag=True, help="Record every migration as applied.")
@target_options
@click.option("--dry-run", is_flag=True, help="Show per database exactly what would change.")
@click.option("--force", is_flag=True, help="Skip the confirmation of --DANGEROUS-apply-all.")
@click.option("--max-parallel", default=5, show_default=True, type=click.IntRange(1, 100),
              help="Tenant databases changed at the same time.")
@per_server_option
@click.option("--timeout", default=DEFAULTS.timeout, show_default=True, type=click.FloatRange(0),
              help="statement_timeout in seconds, and the longest wait for the migration lock (0 = no limit).")
@json_option
@pass_app
def mark(app: App, apply_version, unapply_version, accept_version, reason, wide, apply_all, control, all_tenants, tenant_ids, tenants_file,
         shard, dry_run, force, max_parallel, max_per_server, timeout, json_mode):
    """Record migrations as applied or not applied, without running them (Alembic stamp).

    \b
    Examples:
      grapevine-migrations mark --apply 20250120143000 --tenant acme
      grapevine-migrations mark --unapply 20250201080000 --all-tenants --dry-run
      grapevine-migrations mark --apply 20250201080000 --range --tenant acme
      grapevine-migrations mark --DANGEROUS-apply-all --control --force
    """
    # lazy: --help stays fast
    from ...database.session import interrupts
    from ...database.jobs import marking
    from .. import views

    out = app.out(json_mode)
    chosen = [m for m, on in ((marking.APPLY, apply_version), (marking.UNAPPLY, unapply_version),
                              (marking.APPLY_ALL, apply_all), (marking.ACCEPT_EDIT, accept_version)) if on]
    if len(chosen) != 1:
        raise UsageError("mark needs exactly one of --apply V, --unapply V, --accept-edit V or --DANGEROUS-apply-all")
    request = marking.MarkRequest(chosen[0], apply_version or unapply_version or accept_version, range=wide,
                                  reason=reason)
    selection = selection_from(control, all_tenants, tenant_ids, tenants_file, shard)
    if selection.empty:
        raise MissingTarget("mark needs a target: --control, --all-tenants, --tenant ID or --tenants-file")
    envs = [e for e, wanted in (("control", selection.control), ("tenant", selection.wants_tenants)) if wanted]
    chains = load_chains(app, envs, strict=not dry_run)
    for env, chain in chains.items():
        _refuse_other_envs_version(app, env, chain, request.version)
        request.validate(chain)
    if request.mode == marking.ACCEPT_EDIT:  # the edit itself will never run: make sure that is understood
        out.info(f"warning: --accept-edit records {request.version}'s new checksum only: its edited statements never"
                 f" ran on any database, and never will; if the edit changes what the file does, revert it and write"
                 f" a new migration instead")
    if request.mode == marking.APPLY_ALL and not (force or dry_run):
        from ...fleet.targets import resolve  # lazy: --help stays fast

        # resolve first: an unknown tenant fails here, and the question names what it will change
        targets = resolve(selection, app.settings(), app.project().tenants_query)
        heads = ", ".join(f"{env} head {chain.versions[-1]}" for env, chain in chains.items() if chain.versions)
        confirm(app, f"Record EVERY migration as applied ({heads}), without running them,"
                     f" in {len(targets)} database(s): {database_names(targets)}?")
    options = run_options(app, timeout_s=timeout)
    if dry_run or not force:
        planned = fan_out(app, selection, lambda t: marking.plan_mark(t, chains[t.env], request, options),
                          options, max_parallel, max_per_server, label="mark")
        failed = any(not r.ok for r in planned)
        if dry_run or failed:  # a database that cannot be marked stops the run before any is changed
            if json_mode:
                out.document(views.run_document("mark", planned, dry_run=True))
            else:
                views.print_changes(out, planned, dry_run=True)
            exit_with(EXIT_FAILED if failed else EXIT_OK)
            return
    with interrupts.graceful(out.info) as signals:
        results = fan_out(app, selection,
                          lambda t: marking.apply_mark(t, chains[t.env], request, options),
                          options, max_parallel, max_per_server, label="mark")
    if json_mode:
        out.document(views.run_document("mark", results, dry_run=False, interrupted=signals.stopping))
    else:
        views.print_changes(out, results, dry_run=False)
    exit_with(run_exit_code(results, signals))


def _refuse_other_envs_version(app: App, env: str, chain, version: str | None) -> None:
    """A tenant version given with --control (or the reverse) says so, not just "unknown version"."""
    from ...database.jobs.runner import Chain  # lazy: --help stays fast

    if not version or chain.get(version) is not None:
        return
    other = "tenant" if env == "control" else "control"
    if Chain(app.project(), other).get(version) is not None:
        flags = "--tenant ID or --all-tenants" if other == "tenant" else "--control"
        raise UsageError(f"{version} is a {other} migration, not a {env} one: mark it with {flags}")
