"""``schema dump`` and ``schema check``: schema.sql as the chain produces it at head."""

from __future__ import annotations

import difflib
import sys
from contextlib import contextmanager

import click

from ..app import EXIT_FAILED, App, cli, pass_app
from ..common import load_chains
from ...errors import UsageError
from ...files.discovery import SCHEMA_FILE_NAME

ENVS = ("control", "tenant")


@cli.group()
def schema():
    """schema.sql: the schema the migration files produce at head (for review; never run as a migration)."""


def _envs(control: bool, tenant: bool) -> list[str]:
    return [env for env, wanted in (("control", control), ("tenant", tenant)) if wanted] or list(ENVS)


@contextmanager
def _interruptible(out, name: str, unfinished: str):
    """Ctrl-C or SIGTERM cancel the build at once (its scratch database is still dropped) and end the command with
    exit 130 and one summary line."""
    from ...database.session import interrupts  # lazy: --help stays fast

    with interrupts.graceful(out.info, cancel_first=True) as signals:
        try:
            yield
        except Exception:
            if not signals.stopping:
                raise  # the build's own failure; else the failure is the cancel's doing
    if signals.stopping:
        out.line(f"{name}: {unfinished} (interrupted)")
        sys.exit(interrupts.EXIT_INTERRUPTED)


def expected_schema(app: App, env: str, *, privileges: bool = False) -> str:
    """schema.sql's text for ``env``: its chain applied to a scratch database, read and rendered."""
    from ...schema.render import render
    from ...schema.scratch import build_snapshot, server_for

    chain = load_chains(app, [env])[env]
    head = chain.versions[-1] if chain.versions else None
    reference = build_snapshot(chain, head, server_for(app.settings(), env), lock_key=app.project().lock_key,
                               on_notice=app.out().info, complete=True)
    return render(reference.catalog, env=env, version=head, privileges=privileges)


@schema.command("dump")
@click.option("--control", is_flag=True, help="migrations/control/schema.sql (both when neither flag is given).")
@click.option("--tenant", is_flag=True, help="migrations/tenant/schema.sql (both when neither flag is given).")
@click.option("--privileges", is_flag=True, help="Also the grants and revokes (as pg_dump without --no-privileges).")
@pass_app
def dump(app: App, control: bool, tenant: bool, privileges: bool):
    """Write migrations/<env>/schema.sql from the files applied to a scratch database.

    The scratch database is created on the configured server (or the embedded one) and
    dropped afterwards.  The same files give the same bytes on every run.

    \b
    Examples:
      grapevine-migrations schema dump
      grapevine-migrations schema dump --tenant
    """
    out = app.out()
    for env in _envs(control, tenant):
        path = app.project().migration_dir(env) / SCHEMA_FILE_NAME
        with _interruptible(out, _relative(app, path), "not written"):
            text = expected_schema(app, env, privileges=privileges)
        unchanged = path.exists() and path.read_text() == text
        if not unchanged:
            path.write_text(text)
        out.line(f"{_relative(app, path)}: {'unchanged' if unchanged else 'written'}")


@schema.command("check")
@click.option("--control", is_flag=True, help="Only migrations/control/schema.sql.")
@click.option("--tenant", is_flag=True, help="Only migrations/tenant/schema.sql.")
@click.option("--privileges", is_flag=True, help="The committed schema.sql was dumped with --privileges.")
@pass_app
def check(app: App, control: bool, tenant: bool, privileges: bool):
    """Fail (exit 1, with a unified diff) when a committed schema.sql is not what the files produce.

    Without flags every environment with a schema.sql is checked (at least one must have one).

    \b
    Examples:
      grapevine-migrations schema check
      grapevine-migrations schema check --tenant
    """
    app.read_only = True
    out = app.out()
    explicit = control or tenant
    envs = [env for env in _envs(control, tenant)
            if explicit or (app.project().migration_dir(env) / SCHEMA_FILE_NAME).exists()]
    if not envs:
        raise UsageError("no migrations/<env>/schema.sql to check: write one with `grapevine-migrations schema dump`")
    stale = False
    for env in envs:
        path = app.project().migration_dir(env) / SCHEMA_FILE_NAME
        name = _relative(app, path)
        committed = path.read_text() if path.exists() else ""
        with _interruptible(out, name, "not checked"):
            expected = expected_schema(app, env, privileges=privileges)
        if committed == expected:
            out.line(f"{name}: up to date")
            continue
        stale = True
        diff = difflib.unified_diff(committed.splitlines(keepends=True), expected.splitlines(keepends=True),
                                    fromfile=f"{name} (committed)", tofile=f"{name} (from the files)")
        sys.stdout.writelines(diff)
        out.line(f"{name}: {'missing' if not path.exists() else 'stale'};"
                 f" run `grapevine-migrations schema dump --{env}{' --privileges' * privileges}` and commit it")
    if stale:
        sys.exit(EXIT_FAILED)


def _relative(app: App, path) -> str:
    try:
        return str(path.relative_to(app.project().root))
    except ValueError:
        return str(path)
