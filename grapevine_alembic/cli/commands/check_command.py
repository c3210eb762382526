"""``check``: validate the migration files for a pull request (and, with ``--against-db``, against the
databases' versions)."""

from __future__ import annotations

import click

from ..app import EXIT_FAILED, EXIT_OK, App, cli, exit_with, json_option, pass_app, per_server_option, run_options
from ..common import ENVS, load_chains
from ...errors import UsageError


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
    from ...lint import checking  # lazy: the parser; --help stays fast

    if json_mode and output_format != "text":
        raise UsageError("--json and --format github exclude each other")
    app.read_only = True
    out = app.out(json_mode)
    project = app.project()
    report, chains = checking.check_project(project, ENVS, changed_since=changed_since)
    if against_db and not report.errors:
        # lazy: --help stays fast
        from ...fleet import fleet
        from ...database.jobs import runner
        from ...fleet.targets import Selection, resolve

        loaded = load_chains(app, ENVS)
        targets = resolve(Selection(control=True, all_tenants=True), app.settings(), project.tenants_query)
        options = run_options(app)
        results = fleet.run_targets(targets, lambda t: runner.status(t, loaded[t.env], options), options=options,
                                    max_parallel=max_parallel, max_per_server=max_per_server)
        for env in ENVS:
            checking.against_database(env, chains[env], [r for r in results if r.target.env == env], report)
    failed = bool(report.errors) or (strict and bool(report.warnings))
    if json_mode:
        out.document({"command": "check", "ok": not failed, "files": report.files,
                      "errors": len(report.errors), "warnings": len(report.warnings),
                      "findings": [f.as_json() for f in report.findings],
                      "changed_since": changed_since, "judged": report.judged, "squawk": report.squawk})
        exit_with(EXIT_FAILED if failed else EXIT_OK)
        return
    if output_format == "github":
        from ...lint.changes import repository_prefix  # lazy: --help stays fast

        prefix = repository_prefix(project.root)
        for finding in report.findings:
            out.line(finding.github(prefix))
    else:
        for finding in report.findings:
            out.line(finding.text())
    files = ", ".join(f"{count} {env}" for env, count in report.files.items())
    since = f" ({report.judged} changed since {changed_since})" if changed_since is not None else ""
    out.line(f"checked {files} migration file(s){since}: {len(report.errors)} error(s), {len(report.warnings)} warning(s)")
    exit_with(EXIT_FAILED if failed else EXIT_OK)
