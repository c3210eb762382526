"""The CLI's commands: parse flags, call the pieces, print, choose the exit code. Nothing else."""

from __future__ import annotations

import sys

import click

from .app import (
    EXIT_FAILED,
    EXIT_OK,
    App,
    cli,
    json_option,
    pass_app,
    per_server_option,
    run_options,
    selection_from,
    target_options,
)
from ..errors import MissingTarget, UsageError

ENVS = ("control", "tenant")


def _exit(code: int) -> None:
    if code:
        sys.exit(code)


def _load_chains(app: App, envs, *, strict: bool = False) -> dict:
    """The migration chains; near-miss file names warn, or (``strict``, for commands that write) fail."""
    from ..errors import MigrationFileError
    from ..database.runner import Chain

    chains = {env: Chain(app.project(), env) for env in envs}
    for chain in chains.values():
        if strict and chain.blocking:
            raise MigrationFileError(f"refusing to write while a file looks like a migration but is not one: {chain.blocking[0]}")
        for warning in chain.warnings:
            app.out().info(f"warning: {warning}")
    return chains


# ---- create ---------------------------------------------------------------------------------


@cli.command()
@click.argument("env", type=click.Choice(ENVS))
@click.argument("description")
@pass_app
def create(app: App, env: str, description: str):
    """Create a new timestamped migration file from the template.

    \b
    Examples:
      grapevine-migrations create tenant "add user preferences"
      grapevine-migrations create control "add tenant region"
    """
    from ..files.authoring import create_migration

    path = create_migration(app.project().migration_dir(env), description)
    click.echo(path)


# ---- list -----------------------------------------------------------------------------------


@cli.command("list")
@click.option("--control", is_flag=True, help="Control migrations (both when neither flag is given).")
@click.option("--tenant", is_flag=True, help="Tenant migrations (both when neither flag is given).")
@json_option
@pass_app
def list_migrations(app: App, control: bool, tenant: bool, json_mode: bool):
    """List migration files in order: version, description, file.

    \b
    Examples:
      grapevine-migrations list
      grapevine-migrations list --tenant --json
    """
    out = app.out(json_mode)
    envs = [env for env, wanted in (("control", control), ("tenant", tenant)) if wanted] or list(ENVS)
    chains = _load_chains(app, envs)
    if json_mode:  # paths relative to the project root, as in the text view and in errors
        out.document(
            {env: [{"version": m.version, "description": m.message, "file": _relative(app, m.path)}
                   for m in chain.files] for env, chain in chains.items()}
        )
        return
    rows = [[env, m.version, m.message, _relative(app, m.path)] for env, chain in chains.items() for m in chain.files]
    out.table(["env", "version", "description", "file"], rows)


def _relative(app: App, path) -> str:
    try:
        return str(path.relative_to(app.project().root))
    except ValueError:
        return str(path)


# ---- check ----------------------------------------------------------------------------------


@cli.command()
@click.option("--against-db", is_flag=True,
              help="Also connect (read-only) and report files older than a database's version it never applied.")
@click.option("--strict", is_flag=True, help="Fail on warnings too.")
@click.option("--changed-since", metavar="REV",
              help="Judge only the files added or edited since REV (git), and fail on any not newer than REV's newest.")
@click.option("--format", "output_format", type=click.Choice(["text", "github"]), default="text", show_default=True,
              help="github: GitHub Actions annotations, so findings sit on the pull request's diff.")
@click.option("--max-parallel", default=10, show_default=True, type=click.IntRange(1, 100),
              help="Databases read at the same time.")
@per_server_option
@json_option
@pass_app
def check(app: App, against_db, strict, changed_since, output_format, max_parallel, max_per_server, json_mode):
    """Validate the migration files without touching a database (for pull requests).

    Errors: misnamed or duplicate files, SQL that PostgreSQL's parser rejects (with file and
    line).  Warnings: transaction shapes the previous tool ran (BEGIN without COMMIT, empty
    files, ...), Squawk's rules (squawk-cli), less those the runner makes moot, and serial
    columns added to existing tables.  Info: files
    that run outside a transaction.  Silence a warning with a `-- grapevine-ignore: CODE`
    comment before the statement.  Exit 0 when there are no errors, 1 otherwise.

    \b
    Examples:
      grapevine-migrations check
      grapevine-migrations check --strict --json
      grapevine-migrations check --strict --changed-since origin/main --format github
      grapevine-migrations check --against-db
    """
    from ..lint import checking

    if json_mode and output_format != "text":
        raise UsageError("--json and --format github exclude each other")
    out = app.out(json_mode)
    project = app.project()
    report, chains = checking.check_project(project, ENVS, changed_since=changed_since)
    if against_db and not report.errors:
        from ..fleet import fleet
        from ..database import runner
        from ..fleet.targets import Selection, resolve

        loaded = _load_chains(app, ENVS)
        targets = resolve(Selection(control=True, all_tenants=True), app.settings(), project.tenants_query)
        options = run_options(app)
        results = fleet.run_targets(targets, lambda t: runner.status(t, loaded[t.kind], options), options=options,
                                    max_parallel=max_parallel, max_per_server=max_per_server)
        for env in ENVS:
            checking.against_database(env, chains[env], [r for r in results if r.target.kind == env], report)
    failed = bool(report.errors) or (strict and bool(report.warnings))
    if json_mode:
        out.document({"command": "check", "ok": not failed, "files": report.files,
                      "errors": len(report.errors), "warnings": len(report.warnings),
                      "findings": [f.as_json() for f in report.findings],
                      "changed_since": changed_since, "judged": report.judged, "squawk": report.squawk})
        _exit(EXIT_FAILED if failed else EXIT_OK)
        return
    if output_format == "github":
        from ..lint.changes import repository_prefix

        prefix = repository_prefix(project.root)
        for finding in report.findings:
            out.line(finding.github(prefix))
    else:
        for finding in report.findings:
            out.line(finding.text())
    files = ", ".join(f"{count} {env}" for env, count in report.files.items())
    since = f" ({report.judged} changed since {changed_since})" if changed_since is not None else ""
    out.line(f"checked {files} migration file(s){since}: {len(report.errors)} error(s), {len(report.warnings)} warning(s)")
    _exit(EXIT_FAILED if failed else EXIT_OK)


# ---- status ---------------------------------------------------------------------------------


@cli.command()
@target_options
@click.option("-v", "--verbose", is_flag=True, help="Every database, every migration with its applied time.")
@click.option("--max-parallel", default=10, show_default=True, type=click.IntRange(1, 100),
              help="Databases read at the same time.")
@click.option("--exit-code", "pending_exit", is_flag=True,
              help="Exit 3 when something is pending (as dbmate's --exit-code); without it pending work exits 0.")
@per_server_option
@json_option
@pass_app
def status(app: App, control, all_tenants, tenant_ids, tenants_file, shard, verbose, max_parallel, pending_exit,
           max_per_server, json_mode):
    """Show where each database stands (default: control and all tenants).

    Exit codes: 0 up to date or something pending (as the previous tool), 3 pending with
    --exit-code, 1 a database failed, is missing or drifted (edited or unknown migrations).

    \b
    Examples:
      grapevine-migrations status
      grapevine-migrations status --tenant acme --verbose
      grapevine-migrations status --all-tenants --json
    """
    from ..fleet import fleet
    from ..database import runner
    from . import views

    out = app.out(json_mode)
    selection = selection_from(control, all_tenants, tenant_ids, tenants_file, shard, default_all=True)
    chains = _load_chains(app, ENVS)
    targets, discovery_error = _targets_or_error(app, selection)
    options = run_options(app)
    with out.progress(len(targets), "status") as bar:
        results = fleet.run_targets(
            targets, lambda t: runner.status(t, chains[t.kind], options), options=options,
            max_parallel=max_parallel, max_per_server=max_per_server, on_result=bar.advance,
        )
    pending_code = views.EXIT_PENDING if pending_exit else views.EXIT_OK
    if json_mode:
        out.document(views.status_document(results, chains, verbose=True, discovery_error=discovery_error,
                                           pending_code=pending_code))
    else:
        views.print_status(out, results, chains, verbose=verbose, discovery_error=discovery_error,
                           wants_tenants=selection.wants_tenants)
    _exit(views.status_exit_code(results, discovery_error, pending_code=pending_code))


def _targets_or_error(app: App, selection):
    """Targets for read-only commands: a failure to list tenants is reported, control still shown."""
    from ..errors import GrapevineError
    from ..fleet.targets import Selection, resolve

    settings = app.settings()
    project = app.project()
    try:
        return resolve(selection, settings, project.tenants_query, announce=app.out().info), None
    except UsageError:
        raise
    except GrapevineError as err:
        if not selection.control:
            raise
        return resolve(Selection(control=True), settings), str(err)


# ---- migrate --------------------------------------------------------------------------------


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
@json_option
@pass_app
def migrate(app: App, control, all_tenants, tenant_ids, tenants_file, shard, dry_run, retries, retry_window, timeout,
            lock_timeout, max_parallel, max_per_server, out_of_order, canary, max_failures, json_mode):
    """Apply pending migrations: control first, then tenants in parallel.

    \b
    Examples:
      grapevine-migrations migrate --control --all-tenants
      grapevine-migrations migrate --tenant acme --dry-run
      grapevine-migrations migrate --all-tenants --max-parallel 10 --canary 5
      grapevine-migrations migrate --all-tenants --shard 2/4 --json
    """
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
    chains = _load_chains(app, envs, strict=True)  # --dry-run refuses what the real run refuses
    from ..database.late_files import APPLY

    late = out_of_order if out_of_order is not None else app.project().out_of_order == APPLY
    options = run_options(app, timeout_s=timeout, lock_timeout_s=lock_timeout, retries=retries, dry_run=dry_run,
                          out_of_order=late, retry_window_s=retry_window)
    with interrupts.graceful(out.info) as signals:
        results = _fan_out(app, selection, lambda t: runner.migrate(t, chains[t.kind], options), options,
                           max_parallel, max_per_server, label="migrate", canary=canary or 0,
                           max_failures=max_failures, peek=lambda t: runner.status(t, chains[t.kind], options))
    if json_mode:
        out.document(views.run_document("migrate", results, dry_run=dry_run, interrupted=signals.stopping))
    elif dry_run:
        views.print_dry_run(out, results)
    else:
        views.print_migrate_summary(out, results)
    _exit(_run_exit_code(results, signals))


def _run_exit_code(results, signals) -> int:
    """130 after Ctrl-C (the summary was still printed), 1 if a database failed, else 0."""
    from ..database.interrupts import EXIT_INTERRUPTED

    if signals.stopping:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if any(not r.ok for r in results) else EXIT_OK


def _fan_out(app: App, selection, job, options, max_parallel: int, max_per_server: int | None, *, label: str,
             canary: int = 0, max_failures=None, peek=None):
    """Control alone first, then the tenants it lists, in parallel (interleaved over their servers).

    Every job runs on a worker thread, so the main thread stays free to handle Ctrl-C
    (see ``interrupts``); databases never started come back as ``skipped``, with the version
    ``peek`` reads for them when a staged rollout (not Ctrl-C) stopped.
    """
    from dataclasses import replace

    from ..fleet import fanout, fleet
    from ..database import interrupts
    from ..database.result import DatabaseResult
    from ..fleet.targets import control_target, resolve

    out = app.out()
    settings = app.settings()
    results = []

    def skipped(target):
        return DatabaseResult(target, ok=True, skipped=True)

    if selection.control:
        results += fanout.run_all([control_target(settings)], job, max_parallel=1, skipped=skipped,
                                  should_stop=interrupts.stopping)
        if not results[0].ok and selection.wants_tenants:
            out.info("control failed: tenants were not started")
            return results
    if selection.wants_tenants:
        tenants = resolve(replace(selection, control=False), settings, app.project().tenants_query,
                          announce=out.info)
        if not tenants:
            out.info("no tenants: the control database's tenants table lists none provisioned")
        with out.progress(len(tenants), label) as bar:
            tenant_results = fleet.run_targets(
                tenants, job, options=options, max_parallel=max_parallel, max_per_server=max_per_server,
                failed=lambda r: not r.ok, skipped=skipped, on_result=bar.advance,
                stop_after_failures=max_failures, canary=canary, should_stop=interrupts.stopping,
            )
        results += tenant_results
        _say_why_skipped(out, tenant_results, canary=canary, max_failures=max_failures)
        if peek is not None and not interrupts.stopping():
            _read_skipped(tenant_results, peek, max_parallel)
    return results


def _read_skipped(results, peek, max_parallel: int) -> None:
    """Where the tenants a stopped rollout never started stand, so the summary shows their real version."""
    from ..fleet import fanout

    skipped = [r for r in results if r.skipped and r.ok]  # not those whose server was given up on
    if not skipped:
        return
    for result, seen in zip(skipped, fanout.run_all([r.target for r in skipped], peek, max_parallel=max_parallel)):
        if seen.ok:
            result.plan, result.before, result.after = seen.plan, seen.before, seen.after


def _say_why_skipped(out, results, *, canary: int, max_failures) -> None:
    """One line for a staged rollout that stopped: why, and how many tenants were never started."""
    from ..database import interrupts

    not_started = sum(r.skipped for r in results)
    if not not_started:
        return
    failed = sum(not r.ok for r in results)
    if interrupts.stopping():
        reason = "interrupted"
    elif canary and any(not r.ok for r in results[:canary]):
        reason = "canary failed"
    elif max_failures is not None and failed >= max_failures:
        reason = f"{failed} failure(s) reached --max-failures {max_failures}"
    else:
        reason = "stopped"
    out.info(f"{reason}, {not_started} tenant(s) not started")


# ---- mark -----------------------------------------------------------------------------------


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
@click.option("--timeout", default=300.0, show_default=True, type=click.FloatRange(0),
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
    from ..database import interrupts, marking
    from . import views

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
    chains = _load_chains(app, envs, strict=not dry_run)
    for env, chain in chains.items():
        _refuse_other_envs_version(app, env, chain, request.version)
        request.validate(chain)
    if request.mode == marking.APPLY_ALL and not (force or dry_run):
        from ..fleet.targets import resolve

        # resolve first: an unknown tenant fails here, and the question names what it will change
        targets = resolve(selection, app.settings(), app.project().tenants_query)
        heads = ", ".join(f"{env} head {chain.versions[-1]}" for env, chain in chains.items() if chain.versions)
        _confirm(app, f"Record EVERY migration as applied ({heads}), without running them,"
                      f" in {len(targets)} database(s): {_names(targets)}?")
    options = run_options(app, timeout_s=timeout)
    if dry_run or not force:
        planned = _fan_out(app, selection, lambda t: marking.plan_mark(t, chains[t.kind], request, options),
                           options, max_parallel, max_per_server, label="mark")
        failed = any(not r.ok for r in planned)
        if dry_run or failed:  # a database that cannot be marked stops the run before any is changed
            if json_mode:
                out.document(views.run_document("mark", planned, dry_run=True))
            else:
                views.print_changes(out, planned, dry_run=True)
            _exit(EXIT_FAILED if failed else EXIT_OK)
            return
    with interrupts.graceful(out.info) as signals:
        results = _fan_out(app, selection,
                           lambda t: marking.apply_mark(t, chains[t.kind], request, options),
                           options, max_parallel, max_per_server, label="mark")
    if json_mode:
        out.document(views.run_document("mark", results, dry_run=False, interrupted=signals.stopping))
    else:
        views.print_changes(out, results, dry_run=False)
    _exit(_run_exit_code(results, signals))


def _refuse_other_envs_version(app: App, env: str, chain, version: str | None) -> None:
    """A tenant version given with --control (or the reverse) says so, not just "unknown version"."""
    from ..database.runner import Chain

    if not version or chain.get(version) is not None:
        return
    other = "tenant" if env == "control" else "control"
    if Chain(app.project(), other).get(version) is not None:
        flags = "--tenant ID or --all-tenants" if other == "tenant" else "--control"
        raise UsageError(f"{version} is a {other} migration, not a {env} one: mark it with {flags}")


def _names(targets, shown: int = 20) -> str:
    names = [t.database for t in targets]
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def _confirm(app: App, question: str) -> None:
    if not sys.stdin.isatty():
        raise UsageError("refusing without confirmation: no terminal to ask on (pass --force to proceed)")
    if not click.confirm(question, default=False, err=True):
        raise UsageError("not confirmed; nothing was changed")


# ---- reset ----------------------------------------------------------------------------------


@cli.command()
@target_options
@click.option("--dry-run", is_flag=True, help="Show what would be dropped.")
@click.option("--force", is_flag=True, help="Do not ask for confirmation.")
@click.option("--max-parallel", default=5, show_default=True, type=click.IntRange(1, 100),
              help="Tenant databases reset at the same time.")
@pass_app
def reset(app: App, control, all_tenants, tenant_ids, tenants_file, shard, dry_run, force, max_parallel):
    """Drop ALL data and schema of local databases, so a fresh migrate starts clean.

    Tenants are reset before control.  Only local servers (localhost, 127.0.0.1,
    ::1, unix socket); any other host is refused, even with --force.

    \b
    Examples:
      grapevine-migrations reset --all-tenants --dry-run
      grapevine-migrations reset --control --all-tenants --force
    """
    from dataclasses import replace

    from ..fleet import fanout
    from ..database import resetting
    from . import views
    from ..fleet.targets import control_target, resolve

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
        _confirm(app, f"Drop ALL data in {len(targets)} database(s): {_names(targets)}?")
    options = run_options(app, dry_run=dry_run)
    project = app.project()
    results = fanout.run_all(tenants, lambda t: resetting.reset(t, options, project.tool_tables(t.kind)),
                             max_parallel=max_parallel)
    if selection.control:
        results.append(resetting.reset(targets[-1], options, project.tool_tables("control")))
    views.print_changes(out, results, dry_run=dry_run)
    _exit(EXIT_FAILED if any(not r.ok for r in results) else EXIT_OK)
