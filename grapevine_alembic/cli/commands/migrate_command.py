"""``migrate``: apply what is pending, control first, then the tenants in parallel (optionally staged)."""

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
from ..common import load_chains
from ..rollout import fan_out, run_exit_code
from ...defaults import DEFAULTS
from ...errors import MissingTarget, UsageError

LATEST = "latest"  # --resume without an id


@cli.command()
@target_options
@click.option("--dry-run", is_flag=True, help="Show exactly what is pending per database; write nothing.")
@click.option("--retries", default=DEFAULTS.retries, show_default=True, type=click.IntRange(0, 20),
              help="Re-runs of a database after a transient error (lock timeout, deadlock, lost answer).")
@click.option("--retry-window", default=DEFAULTS.retry_window, show_default=True, type=click.FloatRange(0), metavar="SECONDS",
              help="How long a restarting server (refused, starting up, shutting down, connection lost) is retried.")
@click.option("--timeout", default=DEFAULTS.timeout, show_default=True, type=click.FloatRange(0),
              help="statement_timeout in seconds for every statement, and the longest wait for the migration lock (0 = no limit).")
@click.option("--lock-timeout", default=DEFAULTS.lock_timeout, show_default=True, type=click.FloatRange(0),
              help="lock_timeout in seconds: the longest wait for a table lock before failing (then retried).")
@click.option("--max-parallel", default=DEFAULTS.max_parallel, show_default=True, type=click.IntRange(1, 100),
              help="Tenant databases migrated at the same time.")
@per_server_option
@click.option("--out-of-order/--refuse-out-of-order", "out_of_order", default=None,
              help="Apply (with a warning line each) or refuse files older than a database's version that it never"
                   " ran (default: alembic.ini [grapevine] out_of_order, else apply).")
@click.option("--canary", default=None, type=click.IntRange(1),
              help="Migrate this many tenants first (at least 1); stop if any fails.")
@click.option("--waves", default=None, metavar="SIZES",
              help="Release to the tenants in waves, in the tenants query's order: counts, percentages (rounded"
                   " up) and, last, rest; for example 5,10%,rest. A wave with a failure stops the rollout unless"
                   " --max-failures is given.")
@click.option("--wave-pause", default=DEFAULTS.wave_pause, show_default=True, type=click.FloatRange(0), metavar="SECONDS",
              help="Wait this long between two waves (Ctrl-C during the wait stops cleanly).")
@click.option("--max-failures", default=None, metavar="K|P%",
              help="Halt (start no more tenants) at the K-th failure, or once failures exceed P% of the tenants"
                   " started so far.")
@click.option("--metrics-file", default=None, metavar="PATH",
              help="Write the run's metrics in Prometheus's text format to PATH, every 10 s and at the end.")
@click.option("--pushgateway", default=None, metavar="URL",
              help="Push the same metrics to a Prometheus Pushgateway (job grapevine_migrate).")
@click.option("--events", "events_file", default=None, metavar="FILE",
              help="Append one JSON line per database start and finish to FILE as they happen (tail -f it).")
@click.option("--verify", is_flag=True,
              help="Compare each database, once migrated, with the schema its version should have (as drift does);"
                   " one that differs fails, naming its differences, and counts toward --max-failures.")
@click.option("-v", "--verbose", is_flag=True,
              help="One row per database in the summary, however many (by default a run over more than 20 groups).")
@report_option
@click.option("--resume", default=None, is_flag=False, flag_value=LATEST, metavar="[ID]",
              help="Continue a recorded rollout (default: the latest not done) with its own targets, options and"
                   " waves: tenants done are left alone, failed ones retried, the rest run. See `rollouts`.")
@json_option
@pass_app
def migrate(app: App, control, all_tenants, tenant_ids, tenants_file, shard, dry_run, retries, retry_window, timeout,
            lock_timeout, max_parallel, max_per_server, out_of_order, canary, waves, wave_pause, max_failures,
            metrics_file, pushgateway, events_file, verify, verbose, report, resume, json_mode):
    """Apply pending migrations: control first, then tenants in parallel.

    \b
    Examples:
      grapevine-migrations migrate --control --all-tenants
      grapevine-migrations migrate --tenant acme --dry-run
      grapevine-migrations migrate --all-tenants --max-parallel 10 --canary 5
      grapevine-migrations migrate --all-tenants --waves 5,10%,rest --max-failures 2
      grapevine-migrations migrate --all-tenants --shard 2/4 --json
      grapevine-migrations migrate --resume
    """
    # lazy: --help stays fast
    from ...database.session import interrupts
    from ...database.jobs import runner
    from ...fleet.resuming import with_defaults
    from ...fleet.rollout import parse_budget, parse_waves
    from ...fleet.targets import Selection
    from .. import views

    out = app.out(json_mode)
    recorder = None
    if resume is not None:
        if dry_run:
            raise UsageError("--resume continues a recorded rollout with its own targets and options: drop --dry-run")
        parse_budget(max_failures)  # a bad value is refused before the record is touched
        recorder = _resumed(app, resume, _given_to_resume(click.get_current_context()))
        recorded = recorder.resumed.options
        if recorder.resumed.planned:
            selection = Selection(recorded["control"], False, recorder.resumed.tenants)
        else:  # it stopped before its tenants were known: select and plan them as it would have
            chosen = recorded["selection"]
            selection = Selection(recorded["control"], chosen["all_tenants"], tuple(chosen["tenant_ids"]),
                                  tuple(chosen["shard"]) if chosen["shard"] else None)
            waves, canary = recorded["waves"], recorded["canary"]
        knobs = with_defaults(recorded)  # as api.migrate_fleet resumes
        max_failures, wave_pause, max_parallel, max_per_server = (
            knobs["max_failures"], knobs["wave_pause"], knobs["max_parallel"], knobs["max_per_server"])
        retries, retry_window, timeout, lock_timeout, out_of_order = (
            knobs["retries"], knobs["retry_window"], knobs["timeout"], knobs["lock_timeout"], knobs["out_of_order"])
        verify = recorded.get("verify", False)
    else:
        selection = _selection(control, all_tenants, tenant_ids, tenants_file, shard, canary, waves, wave_pause,
                               max_failures)
        if verify and dry_run:
            raise UsageError("--verify compares the schema a run leaves: it cannot be combined with --dry-run")
    sizes, budget = (parse_waves(waves) if waves is not None else ()), parse_budget(max_failures)
    watchers = _watchers(out, metrics_file, pushgateway, events_file)
    envs = [e for e, wanted in (("control", selection.control), ("tenant", selection.wants_tenants)) if wanted]
    chains = load_chains(app, envs, strict=True)  # --dry-run refuses what the real run refuses
    from ...database.state.out_of_order_files import APPLY  # lazy: --help stays fast

    late = out_of_order if out_of_order is not None else app.project().out_of_order == APPLY
    options = run_options(app, timeout_s=timeout, lock_timeout_s=lock_timeout, retries=retries, dry_run=dry_run,
                          out_of_order=late, retry_window_s=retry_window)
    if recorder is None and selection.wants_tenants and not dry_run:
        recorder = _recorder(app, chains, selection, waves=waves, canary=canary, verify=verify, knobs=dict(
            max_failures=max_failures, wave_pause=wave_pause, max_parallel=max_parallel, max_per_server=max_per_server,
            retries=retries, retry_window=retry_window, timeout=timeout, lock_timeout=lock_timeout,
            out_of_order=out_of_order))
    verifier = _verifier(app, chains, options, out) if verify else None
    job = verifier.migrate if verifier is not None else (lambda t: runner.migrate(t, chains[t.env], options))
    try:
        with interrupts.graceful(out.info) as signals:
            results = fan_out(app, selection, job, options,
                              max_parallel, max_per_server, label="migrate", canary=canary or 0,
                              max_failures=budget, waves=sizes, wave_pause=wave_pause,
                              peek=lambda t: runner.status(t, chains[t.env], options), recorder=recorder,
                              watchers=watchers, tenants=(lambda: []) if _nothing_left(recorder) else None)
    finally:  # what was compared is remembered, a refusal notwithstanding (as api.migrate_fleet does)
        problem = verifier.finish() if verifier is not None else None
        if problem:
            out.info(f"notice: {problem}; the next verification reads every catalog again")
    if json_mode:
        out.document(views.run_document("migrate", results, dry_run=dry_run, interrupted=signals.stopping))
    elif dry_run:
        views.print_dry_run(out, results)
    else:
        views.print_migrate_summary(out, results, verbose=verbose)
    if report:
        views.write_page(out, report, "migrate", results, chains)
    exit_with(run_exit_code(results, signals))


def _watchers(out, metrics_file, pushgateway, events_file) -> list:
    """What hears each database start and finish: ``--metrics-file``/``--pushgateway`` and ``--events``."""
    watchers = []
    if metrics_file or pushgateway:
        from .. import metrics  # lazy: --help stays fast

        metrics.check_destinations(metrics_file, pushgateway)
        watchers.append(metrics.RunMetrics(metrics_file, pushgateway, out.info))
    if events_file:
        from ..events import EventLog  # lazy: --help stays fast

        watchers.append(EventLog(events_file, out.redact))
    return watchers


def _verifier(app: App, chains, options, out):
    """``--verify``'s comparison with the version's schema: a tenant that differs fails inside its wave, so the budget
    sees it at once and the next wave waits for it; one still at the fingerprint it was last compared at is not read."""
    from ...schema.drift import Verifier  # lazy: --help stays fast

    project = app.project()
    return Verifier(chains, app.settings(), project.tool_tables("control").verified_table, options,
                    lock_key=project.lock_key, on_notice=out.info)


def _selection(control, all_tenants, tenant_ids, tenants_file, shard, canary, waves, wave_pause, max_failures):
    selection = selection_from(control, all_tenants, tenant_ids, tenants_file, shard)
    if selection.empty:
        raise MissingTarget("migrate needs a target: --control, --all-tenants, --tenant ID or --tenants-file")
    staging = [flag for flag, value in (("--canary", canary), ("--waves", waves), ("--wave-pause", wave_pause),
                                        ("--max-failures", max_failures)) if value]
    if staging and not selection.wants_tenants:
        raise UsageError(f"{staging[0]} stages a rollout over tenants: use it with --all-tenants or --tenant")
    if canary and waves:
        raise UsageError("--canary N is a first wave of N: give it as --waves N,... instead of both")
    if wave_pause and not (waves or canary):
        raise UsageError("--wave-pause waits between waves: use it with --waves or --canary")
    return selection


def _recorder(app: App, chains: dict, selection, **options):
    """A new rollout's record: its targets, options and the heads it goes to."""
    import shlex
    import sys

    from ...fleet.record import Recorder  # lazy: --help stays fast
    from ...fleet.resuming import to_record

    heads = {env: (chain.versions[-1] if chain.versions else None) for env, chain in chains.items()}
    return Recorder.start(app.settings().control, app.project().tool_tables("control"),
                          options=to_record(selection, **options), heads=heads,
                          command=shlex.join(["grapevine-migrations", *sys.argv[1:]]), secrets=app.out().secrets)


def _nothing_left(recorder) -> bool:
    """A resumed rollout whose planned tenants are all done (control alone may run again)."""
    resumed = recorder.resumed if recorder is not None else None
    return resumed is not None and resumed.planned and not resumed.tenants


def _given_to_resume(ctx) -> dict:
    """The rollout options on the command line of a resume: flag -> (recorded option, value)."""
    from click.core import ParameterSource

    option_of = {"control": "control", "all_tenants": "selection", "tenant_ids": "selection",
                 "tenants_file": "selection", "shard": "selection", "canary": "canary", "waves": "waves"}
    given = {}
    for param in ctx.command.params:
        if ctx.get_parameter_source(param.name) != ParameterSource.COMMANDLINE:
            continue
        option = option_of.get(param.name, param.name)
        if option in _RECORDED:
            given[max(param.opts, key=len)] = (option, ctx.params[param.name])
    return given


# the options a rollout records (cli/commands/migrate_command._recorder); the rest are this command's own
_RECORDED = {"control", "selection", "canary", "waves", "verify", "max_failures", "wave_pause", "max_parallel", "max_per_server",
             "retries", "retry_window", "timeout", "lock_timeout", "out_of_order"}


def _resumed(app: App, resume: str, given: dict):
    from ...fleet.record import Recorder  # lazy: --help stays fast

    if resume != LATEST and not resume.isdigit():
        raise UsageError(f"--resume takes a rollout id (see `grapevine-migrations rollouts`), not {resume!r}")
    return Recorder.resume(app.settings().control, app.project().tool_tables("control"),
                           None if resume == LATEST else int(resume), given)
