"""What each command prints: human views and JSON documents built from results."""

from __future__ import annotations

from .report import (
    Output,
    database_json,
    migration_rows,
    server_counts,
    short,
    status_word,
    summary_json,
    version_counts,
)
from .fixes import target_flag, word_fix
from ..database.state.result import DatabaseResult
from ..errors import UNAPPLY, Fix
from ..overview import outcomes

EXIT_OK, EXIT_FAILED, EXIT_PENDING = 0, 1, 3


def version_cell(result: DatabaseResult) -> str:
    """The version as it is known: never '(none)' for a database that was not read at all."""
    if result.after:
        return result.after
    if result.skipped and result.plan is None:
        return "not started"  # never read: the version is unknown, not "(none)"
    if result.target.problem:
        return "invalid"  # known before connecting (a bad id or server value): never tried, not unreachable
    if not result.ok and result.state is None:
        return "missing" if result.missing else "unreachable"
    return "(none)"


def _pending_cell(result: DatabaseResult) -> str:
    pending = [m.version for m in result.plan.pending] if result.plan else []
    return ", ".join(pending[:3]) + (f" (+{len(pending) - 3})" if len(pending) > 3 else "")


def _row(result: DatabaseResult) -> list[str]:
    return [short(result), result.target.database, version_cell(result), status_word(result), _pending_cell(result)]


# ---- status ---------------------------------------------------------------------------------


def status_exit_code(results: list[DatabaseResult], discovery_error: str | None, *, pending_code: int = EXIT_OK) -> int:
    """1 for a failure or drift; pending work is 0 as the previous tool had it (``--exit-code``: 3)."""
    if discovery_error or any(not r.ok or (r.plan and r.plan.drifted) for r in results):
        return EXIT_FAILED
    if any(r.plan and not r.plan.up_to_date for r in results):
        return pending_code
    return EXIT_OK


def status_document(results, chains, *, verbose: bool, discovery_error: str | None, pending_code: int = EXIT_OK) -> dict:
    exit_code = status_exit_code(results, discovery_error, pending_code=pending_code)
    return {
        "command": "status",
        "ok": exit_code == EXIT_OK,
        "exit_code": exit_code,
        "error": discovery_error,
        "heads": {env: (chain.versions[-1] if chain.versions else None) for env, chain in chains.items()},
        "databases": [database_json(r, verbose=verbose, chain=chains[r.target.env]) for r in results],
        "versions": dict(version_counts([r for r in results if r.target.env == "tenant"])),
        "servers": server_counts([r for r in results if r.target.env == "tenant"]),
        "summary": {
            **summary_json(results),
            "up_to_date": sum(bool(r.ok and r.plan and r.plan.up_to_date) for r in results),
            "behind": sum(bool(r.ok and r.plan and not r.plan.up_to_date) for r in results),
            "drifted": sum(bool(r.plan and r.plan.drifted) for r in results),
        },
    }


def print_status(out: Output, results, chains, *, verbose: bool, discovery_error: str | None,
                 wants_tenants: bool = True) -> None:
    if verbose:
        for result in results:
            _print_verbose(out, result, chains[result.target.env])
    else:
        _print_overview(out, results, chains, wants_tenants and not discovery_error)
    if discovery_error:
        out.error(f"tenants: {discovery_error}")


def _print_overview(out: Output, results, chains, wants_tenants: bool) -> None:
    """Readable with hundreds of tenants: control, tenants per version, then only those needing care."""
    control = [r for r in results if r.target.env == "control"]
    tenants = [r for r in results if r.target.env == "tenant"]
    for result in control:
        head = chains["control"].versions[-1] if chains["control"].versions else "(none)"
        out.line(f"control {result.target.database}: {version_cell(result)} - {status_word(result)} (head {head})")
        if not result.ok:
            out.line(f"  {result.error}")
        _print_drift(out, result)
    if not tenants:
        if wants_tenants:
            out.line("tenants: none provisioned (the control database's tenants table lists none)")
        return
    head = chains["tenant"].versions[-1] if chains["tenant"].versions else "(none)"
    out.line(f"tenants: {len(tenants)} database(s), head {head}")
    out.table(["version", "tenants"], [[version, str(count)] for version, count in version_counts(tenants)])
    servers = server_counts(tenants)
    if len(servers) > 1:
        out.line(f"servers: {len(servers)}")
        keys = ["tenants", "at_head", "behind", "failed", "unreachable"]
        out.table(["server", "tenants", "at head", "behind", "failed", "unreachable"],
                  [[s["server"], *(str(s[k]) for k in keys)] for s in servers])
    needing = [r for r in tenants if not r.ok or (r.plan and (not r.plan.up_to_date or r.plan.drifted))]
    if len(needing) > outcomes.GROUP_ABOVE:  # a new file leaves every tenant behind: one line per shared state
        out.line(f"needing attention: {len(needing)} tenant(s)")
        for g in outcomes.group(needing, _needing_key):
            out.line(f"  {outcomes.names(g.databases)}: {g.text()}")
        for result in needing:
            _print_drift(out, result, pending=False)
    elif needing:
        out.line("needing attention:")
        out.table(["tenant", "database", "version", "state", "pending"], [_row(r) for r in needing])
        print_errors(out, needing)
        for result in needing:
            _print_drift(out, result, pending=False)  # the table already lists them: one line per tenant


def _needing_key(result: DatabaseResult) -> str:
    if not result.ok:
        return f"{status_word(result)}: {outcomes.error_key(result)}"
    pending = _pending_cell(result)
    return f"at {version_cell(result)}, {status_word(result)}" + (f" ({pending})" if pending else "")


def _print_drift(out: Output, result: DatabaseResult, *, pending: bool = True) -> None:
    plan = result.plan
    if not plan:
        return
    name = short(result)
    if plan.pending and pending:
        out.line(f"  {name}: pending {', '.join(m.version for m in plan.pending)}")
    for migration in plan.out_of_order:
        out.line(f"  {name}: out of order, never applied: {migration.path.name}")
    for migration in plan.edited:
        out.line(f"  warning: {name}: {migration.path.name} was edited after it was applied; {edit_fix(result, migration)}")
    for version in plan.lost:
        out.line(f"  {unknown_line(result, version)}")


def _print_verbose(out: Output, result: DatabaseResult, chain) -> None:
    out.line(f"{short(result)} ({result.target.database}): {version_cell(result)} - {status_word(result)}")
    if not result.ok:
        out.line(f"  error: {result.error}")
        return
    rows = []
    for row in migration_rows(result, chain):
        state = ("applied" if row["applied"] else "pending") + (" (edited)" if row["edited"] else "")
        rows.append([row["version"], state, row["applied_at"] or "", row["applied_by"] or "", row["description"]])
    out.table(["version", "state", "applied at", "by", "description"], rows)
    _print_drift(out, result)
    out.line()


# ---- migrate / mark / reset -----------------------------------------------------------------


def run_document(command: str, results: list[DatabaseResult], *, dry_run: bool, interrupted: bool = False) -> dict:
    return {
        "command": command,
        "dry_run": dry_run,
        "ok": all(r.ok for r in results) and not interrupted,
        "interrupted": interrupted,
        "databases": [database_json(r) for r in results],
        "summary": summary_json(results),
    }


def print_dry_run(out: Output, results: list[DatabaseResult]) -> None:
    out.line("dry run: nothing was written")
    for result in results:
        plan = result.plan
        if not result.ok:
            out.line(f"{short(result)} ({result.target.database}): would fail: {result.error}")
        elif plan and plan.up_to_date:
            out.line(f"{short(result)} ({result.target.database}): up to date at {plan.head}")
        elif plan:
            # a legacy ledger is at the version its rows reach, as status shows it
            out.line(f"{short(result)} ({result.target.database}): at {version_cell(result)}, would apply:")
            if plan.adopt_to:
                out.line(f"  adopt legacy schema_migrations up to {plan.adopt_to}")
            for migration in plan.out_of_order:  # refused ones fail above: these run first
                out.line(f"  {migration.version}  {migration.path.name}  (out of order: older than the version)")
            for migration in plan.pending:
                out.line(f"  {migration.version}  {migration.path.name}")
            for migration in plan.marked_ahead:
                out.line(f"  {migration.version}  {migration.path.name}  (marked applied: recorded, not run)")


def edit_fix(result: DatabaseResult, migration) -> str:
    """The way forward for a file edited after it was applied."""
    return (f'revert the file, or accept the edit with: grapevine-migrations mark --accept-edit {migration.version}'
            f' {target_flag(result.target)} --reason "..."')


def unknown_line(result: DatabaseResult, version: str) -> str:
    """A recorded version no file has (its file deleted after it ran?), with the command that clears it."""
    return (f"warning: {short(result)}: the database records {version}, which no migration file has"
            f" (its file deleted?); once checked, remove it{word_fix(Fix(UNAPPLY, version), result.target)}")


def print_migrate_summary(out: Output, results: list[DatabaseResult], *, verbose: bool = False) -> None:
    """One row per database for a small run or with --verbose; above that, counts and groups."""
    if verbose or len(results) <= outcomes.GROUP_ABOVE:
        _print_migrate_rows(out, results)
    else:
        _print_migrate_groups(out, results)
    summary = summary_json(results)
    retries = f"; {summary['retries']} retry(ies)" if summary["retries"] else ""
    out.line(
        f"{summary['databases']} database(s): {summary['ok']} ok, {summary['failed']} failed,"
        f" {summary['skipped']} skipped; {summary['applied']} migration(s) applied{retries}"
    )


def _print_migrate_groups(out: Output, results: list[DatabaseResult]) -> None:
    """Counts per outcome and version, then only what needs a person, identical errors on one line."""
    counts: dict[tuple[str, str], int] = {}
    for result in results:
        key = (outcomes.outcome(result), version_cell(result))
        counts[key] = counts.get(key, 0) + 1
    out.table(["result", "version", "databases"],
              [[o if o == "ok" else o.upper(), v, str(n)]
               for (o, v), n in sorted(counts.items(), key=lambda kv: (outcomes.OUTCOMES.index(kv[0][0]), kv[0][1]))])
    for word in ("failed", "unreachable", "skipped"):
        for g in outcomes.group([r for r in results if outcomes.outcome(r) == word], outcomes.error_key):
            out.line(f"{word}: {outcomes.names(g.databases)}: {g.text()}")
    for file_name, group in _grouped_notes(results):
        out.line(f"warning: {outcomes.names(group)}: {file_name}")


def _grouped_notes(results: list[DatabaseResult]) -> list[tuple[str, list[str]]]:
    """Edits and unknown versions, each named once with the databases it concerns and the command for one."""
    notes: dict[str, list[str]] = {}
    for result in results:
        for migration in result.plan.edited if result.plan else ():
            text = f"{migration.path.name} was edited after it was applied; {edit_fix(result, migration)} (per database)"
            notes.setdefault(_any_tenant(text, result), []).append(result.target.database)
        if result.ok and result.plan:
            for version in result.plan.lost:
                text = (f"the database records {version}, which no migration file has (its file deleted?); once checked,"
                        f" remove it per database{word_fix(Fix(UNAPPLY, version), result.target)}")
                notes.setdefault(_any_tenant(text, result), []).append(result.target.database)
    return [(text, sorted(dbs)) for text, dbs in notes.items()]


def _any_tenant(text: str, result: DatabaseResult) -> str:
    """A tenant's command with its id left for the reader, so the same note on many tenants reads the same."""
    return text.replace(target_flag(result.target), "--tenant ID") if result.target.env == "tenant" else text


def _print_migrate_rows(out: Output, results: list[DatabaseResult]) -> None:
    rows = [
        [short(r), r.target.database, str(len(r.applied)), version_cell(r),
         "skipped" if r.skipped else ("ok" if r.ok else "FAILED")]
        for r in results
    ]
    out.table(["target", "database", "applied", "version", "result"], rows)
    print_errors(out, results)
    for result in results:  # an edit is never silent, even when the run succeeded
        for migration in result.plan.edited if result.plan else ():
            out.line(f"warning: {short(result)}: {migration.path.name} was edited after it was applied;"
                     f" {edit_fix(result, migration)}")
        if result.ok and result.plan:  # a failed database's error already says it
            for version in result.plan.lost:
                out.line(unknown_line(result, version))


def print_errors(out: Output, results: list[DatabaseResult]) -> None:
    """Each failure under the table, whole: file:line, message, DETAIL and HINT are never cut off."""
    for result in results:
        if result.error:
            attempts = f" (after {result.attempts} attempts)" if result.attempts > 1 else ""
            out.line(f"{short(result)} ({result.target.database}){attempts}: {result.error}")


def print_changes(out: Output, results: list[DatabaseResult], *, dry_run: bool) -> None:
    """``mark`` and ``reset``: per database, what was (or would be) changed."""
    verb = "would" if dry_run else "did"
    for result in results:
        where = f"{short(result)} ({result.target.database})"
        if not result.ok:
            out.line(f"{where}: error: {result.error}")
        elif result.skipped:
            out.line(f"{where}: not started")
        elif not result.changes:
            out.line(f"{where}: nothing to change")
        else:
            out.line(f"{where}: {verb}: " + "; ".join(result.changes))


# ---- the report page ------------------------------------------------------------------------


def write_page(out: Output, path: str, command: str, results: list[DatabaseResult], chains,
               drift_groups=()) -> None:
    """``--report FILE.html``: the page, masked like every other output, and one line saying where it is."""
    from pathlib import Path

    from ..errors import UsageError
    from ..overview import page

    heads = {env: (chain.versions[-1] if chain.versions else None) for env, chain in chains.items()}
    text = out.redact(page.build(command, results, heads=heads, drift_groups=drift_groups))
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--report {path}: cannot write it: {exc.strerror or exc}") from None
    out.info(f"report: {path}")
