"""What several commands share: the two chains' names, loading the chains, read-only target resolution,
and asking before a destructive change."""

from __future__ import annotations

import sys

import click

from .app import App
from ..errors import GrapevineError, MigrationFileError, UsageError

ENVS = ("control", "tenant")


def load_chains(app: App, envs, *, strict: bool = False) -> dict:
    """The migration chains; near-miss file names warn, or (``strict``, for commands that write) fail."""
    from ..database.jobs.runner import Chain  # lazy: --help stays fast

    chains = {env: Chain(app.project(), env) for env in envs}
    for chain in chains.values():
        if strict and chain.blocking:
            raise MigrationFileError(f"refusing to write while a file looks like a migration but is not one: {chain.blocking[0]}")
        for warning in chain.warnings:
            app.out().info(f"warning: {warning}")
    return chains


def targets_or_error(app: App, selection):
    """Targets for read-only commands: a failure to list tenants is reported, control still shown."""
    from ..fleet.targets import Selection, resolve  # lazy: --help stays fast

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


def database_names(targets, shown: int = 20) -> str:
    names = [t.database for t in targets]
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def confirm(app: App, question: str) -> None:
    if not sys.stdin.isatty():
        raise UsageError("refusing without confirmation: no terminal to ask on (pass --force to proceed)")
    if not click.confirm(question, default=False, err=True):
        raise UsageError("not confirmed; nothing was changed")
