"""The fan-out of the commands that write (``migrate``, ``mark``): control alone first, then its tenants,
a staged rollout's stop explained, and the exit code of a run that Ctrl-C may have cut short."""

from __future__ import annotations

from dataclasses import replace

from .app import EXIT_FAILED, EXIT_OK, App


def run_exit_code(results, signals) -> int:
    """130 after Ctrl-C (the summary was still printed), 1 if a database failed, else 0."""
    from ..database.interrupts import EXIT_INTERRUPTED  # lazy: --help stays fast

    if signals.stopping:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if any(not r.ok for r in results) else EXIT_OK


def fan_out(app: App, selection, job, options, max_parallel: int, max_per_server: int | None, *, label: str,
            canary: int = 0, max_failures=None, peek=None):
    """Control alone first, then the tenants it lists, in parallel (interleaved over their servers).

    Every job runs on a worker thread, so the main thread stays free to handle Ctrl-C
    (see ``interrupts``); databases never started come back as ``skipped``, with the version
    ``peek`` reads for them when a staged rollout (not Ctrl-C) stopped.
    """
    # lazy: --help stays fast
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
    from ..fleet import fanout  # lazy: --help stays fast

    skipped = [r for r in results if r.skipped and r.ok]  # not those whose server was given up on
    if not skipped:
        return
    for result, seen in zip(skipped, fanout.run_all([r.target for r in skipped], peek, max_parallel=max_parallel)):
        if seen.ok:
            result.plan, result.before, result.after = seen.plan, seen.before, seen.after


def _say_why_skipped(out, results, *, canary: int, max_failures) -> None:
    """One line for a staged rollout that stopped: why, and how many tenants were never started."""
    from ..database import interrupts  # lazy: --help stays fast

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
