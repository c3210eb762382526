"""``drift``: does each database have the schema its recorded version promises?"""

from __future__ import annotations

import sys

import click

from ..app import (
    EXIT_FAILED,
    App,
    cli,
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
@click.option("--privileges", is_flag=True, help="Also compare owners and grants.")
@click.option("--full", is_flag=True,
              help="Read every database's catalog, even one unchanged since it was last found equal.")
@click.option("--max-parallel", default=10, show_default=True, type=click.IntRange(1, 100),
              help="Databases read at the same time.")
@per_server_option
@report_option
@json_option
@pass_app
def drift(app: App, control, all_tenants, tenant_ids, tenants_file, shard, privileges, full, max_parallel,
          max_per_server, report, json_mode):
    """Compare each database's schema with the one its recorded version should have (default: all).

    The expected schema of each version is built once per run in a scratch database.
    Databases are only read (read-only sessions).  A database found equal is remembered in the
    control database with its catalog's fingerprint; the next run reads its catalog only if the
    fingerprint or the version moved.  Exit 0 when nothing drifts, 1 when something does or a
    database could not be compared.

    \b
    Examples:
      grapevine-migrations drift --all-tenants
      grapevine-migrations drift --tenant acme --json
    """
    from ...database.session import interrupts
    from ...database.state.result import DatabaseResult
    from ...fleet import fleet
    from ...schema import grouping
    from ...schema.drift import drift as drift_one
    from ...schema.drift import settle
    from ...schema.fingerprint import Verified
    from ...schema.scratch import References, server_for

    app.read_only = True
    out = app.out(json_mode)
    selection = selection_from(control, all_tenants, tenant_ids, tenants_file, shard, default_all=True)
    chains = load_chains(app, ENVS)
    targets, discovery_error = targets_or_error(app, selection)
    options = run_options(app)
    settings = app.settings()
    references = References(chains, {env: server_for(settings, env) for env in ENVS},
                            lock_key=app.project().lock_key, on_notice=out.info)
    found: dict = {}
    later: list = []  # databases read while their reference was being built: compared once it is
    verified = Verified(settings.control, chains["control"].tables.verified_table,
                        connect_timeout=options.connect_timeout_s)
    if not full:
        verified.load()
    with interrupts.graceful(out.info) as signals, out.progress(len(targets), "drift") as bar:
        results = fleet.run_targets(
            targets, lambda t: drift_one(t, references, options, found, privileges=privileges,
                                          verified=verified, later=later), options=options,
            max_parallel=max_parallel, max_per_server=max_per_server, on_result=bar.advance,
            should_stop=interrupts.stopping, skipped=lambda t: DatabaseResult(t, ok=False, skipped=True,
                                                                              error="not compared (interrupted)"),
        )
    settle(later)
    problem = verified.problem or verified.save()
    if problem:
        out.info(f"notice: {problem}; the next run reads every catalog again")
    failed = [(r.target.database, r.error or "failed") for r in results if not r.ok]
    if discovery_error:
        failed.append(("tenants", discovery_error))
    differing = {r.target.database: found.get(r.target.database, []) for r in results if r.ok}
    groups = grouping.group(differing)
    matching = sum(1 for d in differing.values() if not d)
    if json_mode:
        out.document({
            "command": "drift", "ok": not groups and not failed, "privileges": privileges,
            "summary": {"match": matching, "differ": len(differing) - matching, "failed": len(failed)},
            "references_built": references.built, "catalogs_read": len(verified.catalog_read),
            "databases": [_database_json(r, found.get(r.target.database), verified) for r in results],
            **({"discovery_error": discovery_error} if discovery_error else {}),
        })
    else:
        for line in grouping.text_lines(groups, matching=matching, failed=failed):
            out.line(line)
    if report:
        from .. import views  # lazy: --help stays fast

        views.write_page(out, report, "drift", results, chains, [(g.databases, g.differences) for g in groups])
    if signals.stopping:
        sys.exit(interrupts.EXIT_INTERRUPTED)
    if groups or failed:
        sys.exit(EXIT_FAILED)


def _database_json(result, differences, verified) -> dict:
    payload = {"database": result.target.database, "kind": result.target.env, "tenant": result.target.tenant_id,
               "server": result.target.server, "version": result.before, "ok": result.ok}
    if result.ok:
        payload["drift"] = bool(differences)
        # false: unchanged since it was last found equal, its catalog was not read
        payload["catalog_read"] = (result.target.server, result.target.database) in verified.catalog_read
        payload["differences"] = [d.as_json() for d in differences or ()]
    else:
        payload["error"] = result.error
    return payload
