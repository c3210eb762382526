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
    from ...fleet import record  # lazy: --help stays fast

    app: App = ctx.obj
    out = app.out(json_mode)
    found = record.recent(app.settings().control, app.project().tool_tables("control"), limit)
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
@json_option
@pass_app
def show(app: App, rollout_id, json_mode):
    """One rollout: its options and waves, and each tenant's wave, outcome, attempts, duration and error."""
    from ...fleet import record  # lazy: --help stays fast

    out = app.out(json_mode)
    found = record.one(app.settings().control, app.project().tool_tables("control"), rollout_id)
    if json_mode:
        out.document({"command": "rollouts show", "rollout": found})
        return
    out.line(f"rollout {found['id']}: {found['state']}" + (f" ({found['halt']})" if found["halt"] else ""))
    out.line(f"started {_when(found['started_at'])} by {found['started_by']} on {found['host']} (pid {found['pid']}),"
             f" ended {_when(found['ended_at']) or '-'}")
    out.line(f"command: {found['command']}")
    out.line("heads: " + ", ".join(f"{env} {head or '-'}" for env, head in (found["heads"] or {}).items()))
    out.table(["tenant", "wave", "outcome", "attempts", "ms", "version", "error"],
              [[d["tenant"], str(d["wave"]), d["outcome"], str(d["attempts"]),
                "" if d["duration_ms"] is None else str(d["duration_ms"]), d["version"] or "",
                (d["error"] or "").splitlines()[0] if d["error"] else ""] for d in found["databases"]])
    if found["state"] in ("halted", "interrupted"):
        out.info(f"resume: grapevine-migrations migrate --resume {found['id']}")


def _when(stamp: str | None) -> str:
    return stamp[:19].replace("T", " ") if stamp else ""
