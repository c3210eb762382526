"""``rollouts`` and ``rollouts show ID``: the rollout record (``fleet/record``) of every ``migrate`` over tenants."""

from __future__ import annotations

import click

from ..app import App, cli, json_option, pass_app


@cli.group(invoke_without_command=True)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000), help="How many rollouts.")
@json_option
@click.pass_context
def rollouts(ctx, limit, json_mode):
    """The latest rollouts, newest first: state, when, by whom, tenants per outcome.

    \b
    Examples:
      grapevine-migrations rollouts
      grapevine-migrations rollouts show 12 --json
      grapevine-migrations migrate --resume 12
    """
    if ctx.invoked_subcommand is not None:
        return
    from ...fleet import record_view  # lazy: --help stays fast

    app: App = ctx.obj
    out = app.out(json_mode)
    found = record_view.recent(app.settings().control, app.project().tool_tables("control"), limit)
    if json_mode:
        out.document({"command": "rollouts", "rollouts": found})
        return
    if not found:
        out.line("no rollouts recorded")
        return
    out.table(["id", "state", "started", "ended", "by", "done", "failed", "pending", "why"],
              [[str(r["id"]), r["state"], _when(r["started_at"]), _when(r["ended_at"]),
                f"{r['started_by']}@{r['host']}", *(str(r["tenants"][k]) for k in ("done", "failed", "pending")),
                r["halt"] or ""] for r in found])
    waiting = next((r for r in found if r["state"] in ("halted", "interrupted")), None)
    if waiting is not None:
        out.info(f"resume: grapevine-migrations migrate --resume {waiting['id']}")


@rollouts.command()
@click.argument("rollout_id", metavar="ID", type=int)
@click.option("-v", "--verbose", is_flag=True, help="One row per tenant, however many (--json always has them).")
@json_option
@pass_app
def show(app: App, rollout_id, verbose, json_mode):
    """One rollout: its options and waves, and each tenant's wave, outcome, attempts, duration and error
    (above 20 tenants: the tenants per wave and outcome, then the failed ones with their errors)."""
    from ...fleet import record_view  # lazy: --help stays fast
    from ...overview.outcomes import GROUP_ABOVE  # lazy: --help stays fast

    out = app.out(json_mode)
    found = record_view.one(app.settings().control, app.project().tool_tables("control"), rollout_id)
    if json_mode:
        out.document({"command": "rollouts show", "rollout": found})
        return
    out.line(f"rollout {found['id']}: {found['state']}" + (f" ({found['halt']})" if found["halt"] else ""))
    out.line(f"started {_when(found['started_at'])} by {found['started_by']} on {found['host']} (pid {found['pid']}),"
             f" ended {_when(found['ended_at']) or '-'}")
    out.line(f"command: {found['command']}")
    out.line("heads: " + ", ".join(f"{env} {head or '-'}" for env, head in (found["heads"] or {}).items()))
    if verbose or len(found["databases"]) <= GROUP_ABOVE:
        out.table(["tenant", "wave", "outcome", "attempts", "ms", "version", "error"],
                  [[d["tenant"], str(d["wave"]), d["outcome"], str(d["attempts"]),
                    "" if d["duration_ms"] is None else str(d["duration_ms"]), d["version"] or "",
                    _first_line(d["error"])] for d in found["databases"]])
    else:  # a fleet's rollout: a thousand rows would bury the failures that need a person
        _print_groups(out, found)
    if found["state"] in ("halted", "interrupted"):
        out.info(f"resume: grapevine-migrations migrate --resume {found['id']}")


def _print_groups(out, found: dict) -> None:
    """Tenants per wave and outcome, then the failed ones, those with the same (first line of) error on one line."""
    from ...overview.outcomes import names  # lazy: --help stays fast

    counts: dict[tuple[int, str], int] = {}
    failed: dict[str, list[str]] = {}
    for d in found["databases"]:
        counts[(d["wave"], d["outcome"])] = counts.get((d["wave"], d["outcome"]), 0) + 1
        if d["outcome"] == "failed":
            failed.setdefault(_first_line(d["error"]), []).append(d["tenant"])
    out.table(["wave", "outcome", "tenants"], [[str(wave), outcome, str(n)] for (wave, outcome), n in counts.items()])
    for error, tenants in failed.items():
        out.line(f"failed: {names(tenants)}: {error}")
    out.line(f"every tenant: grapevine-migrations rollouts show {found['id']} --verbose")


def _first_line(error: str | None) -> str:
    return error.splitlines()[0] if error else ""


def _when(stamp: str | None) -> str:
    return stamp[:19].replace("T", " ") if stamp else ""
