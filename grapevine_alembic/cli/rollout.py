"""The fan-out of the commands that write (``migrate``, ``mark``) as a person sees it: the rollout
itself (control first, waves, the budget, the halt) is ``fleet.rollout``; this module words its
values (the wave lines, why it stopped, the command that resumes) and picks the exit code."""

from __future__ import annotations

import shlex
import sys
from contextlib import ExitStack
from dataclasses import replace

from .app import EXIT_FAILED, EXIT_OK, App


def run_exit_code(results, signals) -> int:
    """130 after Ctrl-C (the summary was still printed), 1 if a database failed, else 0."""
    from ..database.session.interrupts import EXIT_INTERRUPTED  # lazy: --help stays fast

    if signals.stopping:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if any(not r.ok for r in results) else EXIT_OK


def fan_out(app: App, selection, job, options, max_parallel: int, max_per_server: int | None, *, label: str,
            canary: int = 0, max_failures=None, peek=None, waves=(), wave_pause: float = 0.0, watchers=(),
            recorder=None, tenants=None):
    """Control alone first, then the tenants it lists, in waves (see ``fleet.rollout``); the results.

    Every job runs on a worker thread, so the main thread stays free to handle Ctrl-C
    (see ``interrupts``); databases never started come back as ``skipped``, with the version
    ``peek`` reads for them when a halt (not Ctrl-C) stopped the rollout.  Each of ``watchers`` (a
    context manager: ``cli.metrics``, ``cli.events``) hears every ``start(target, wave)`` and
    ``finish(result, wave)``, and ``done(results)`` once the rollout is over. With a ``recorder``
    (``fleet.record``) the rollout is recorded and its ``resume:`` line names it; ``tenants`` replaces
    the selection's (a resumed rollout's tenants left).
    """
    # lazy: --help stays fast
    from ..database.session import interrupts
    from ..fleet import record as fleet_record, rollout as fleet_rollout
    from ..fleet.targets import control_target, resolve

    out = app.out()
    settings = app.settings()

    def selected():
        found = resolve(replace(selection, control=False), settings, app.project().tenants_query, announce=out.info,
                        connection=recorder.connection if recorder is not None else None)
        if not found:
            out.info("no tenants: the control database's tenants table lists none provisioned")
        return found

    shown = {"wave": "", "bar": None}  # the first wave starts before the bar exists

    def on_wave(wave, plan):
        out.info(f"wave {wave.number} of {plan.last}: {wave.size} tenant(s)")
        shown["wave"] = f"wave {wave.number} of {plan.last}"
        if shown["bar"] is not None:
            shown["bar"].wave = shown["wave"]

    def progress(total):
        shown["bar"] = bar = out.progress(total, label)
        bar.wave = shown["wave"]
        return bar

    def on_start(target, wave):
        for watcher in watchers:
            watcher.start(target, wave)

    def on_finish(result, wave):
        for watcher in watchers:
            watcher.finish(result, wave)

    run = fleet_rollout.roll_out if recorder is None else lambda *a, **kw: fleet_record.roll_out(recorder, *a, **kw)
    with ExitStack() as stack:
        for watcher in watchers:
            stack.enter_context(watcher)
        outcome = run(
            control_target(settings) if selection.control else None,
            tenants or (selected if selection.wants_tenants else None), job, options=options,
            max_parallel=max_parallel, max_per_server=max_per_server, waves=waves, canary=canary,
            budget=max_failures, wave_pause=wave_pause, should_stop=interrupts.stopping, peek=peek,
            progress=progress, on_wave=on_wave if waves or _staged(recorder) else None,
            on_start=on_start if watchers else None, on_finish=on_finish if watchers else None,
            on_pause=lambda seconds, wave: out.info(f"pausing {seconds:g}s before wave {wave.number}"
                                                    " (Ctrl-C stops here)"),
        )
        for watcher in watchers:
            watcher.done(outcome.results)
    if outcome.record_behind:
        out.info(f"the rollout record could not be brought up to date (the control database could not be reached):"
                 f" `grapevine-migrations rollouts show {outcome.record}` may be behind, and the rollout reads as"
                 " interrupted until `migrate --resume` completes it")
    _say_why_stopped(out, outcome)
    return outcome.results


def _staged(recorder) -> bool:
    """A resumed rollout that was recorded in waves says its waves again."""
    return recorder is not None and recorder.resumed is not None and len(recorder.resumed.gates) > 1


def _say_why_stopped(out, outcome) -> None:
    """One line for a rollout that stopped early (why, how many tenants were never started), then how to resume."""
    from ..fleet import rollout as fleet_rollout  # lazy: --help stays fast

    halt = outcome.halt
    if halt is None:
        if outcome.unplanned:
            out.info(f"waves done: {outcome.unplanned} tenant(s) after the last wave not started"
                     " (end --waves with rest to include them)")
        if outcome.record is not None and any(not r.ok for r in outcome.results):  # the record retries the failed
            out.info(f"resume: grapevine-migrations migrate --resume {outcome.record}")
        return
    if halt.reason == fleet_rollout.CONTROL_FAILED:
        out.info("control failed: tenants were not started")
        return
    if halt.reason == fleet_rollout.INTERRUPTED:
        out.info(f"interrupted, {halt.not_started} tenant(s) not started")
        if outcome.record is not None:
            out.info(f"resume: grapevine-migrations migrate --resume {outcome.record}")
        return
    where = f" in wave {halt.wave}" if len(outcome.plan.waves) > 1 else ""
    if halt.reason == fleet_rollout.BUDGET:
        budget = halt.budget
        why = (f"{halt.failures} failure(s) of {halt.started} tenant(s) started exceeded --max-failures {budget.text}"
               if budget.percent else f"{halt.failures} failure(s) reached --max-failures {budget.text}")
    else:
        why = halt.reason
    out.info(f"halted{where}: {why}, {halt.not_started} tenant(s) not started")
    # Without a record (mark), resuming is running the same command again: done tenants are no-ops.
    again = f"migrate --resume {outcome.record}" if outcome.record is not None else shlex.join(sys.argv[1:])
    out.info(f"resume: grapevine-migrations {again}")
