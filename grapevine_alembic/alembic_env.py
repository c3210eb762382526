"""What ``alembic_control/env.py`` and ``alembic_tenant/env.py`` run.

Both environments connect exactly like the CLI does (same connection, session
bounds, advisory lock, ledger callback, notice printing), so ``alembic -c
alembic.ini -n tenant -x tenant=acme upgrade head`` and ``grapevine-migrations
migrate --tenant acme`` leave the same database behind.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from .cli.report import notice_line, waiting_line, write_line
from .database.session.connection import (
    SessionPolicy,
    acquire_lock,
    configure_session,
    describe_error,
    open_connection,
    sqlalchemy_connection,
)
from .database.state import late_files
from .database.apply.executor import apply_direct
from .database.apply.journal import Journal, NoticeSink
from .database.state.ledger import LedgerWriter, check_placement, read_state
from .database.state.plan import make_plan
from .errors import GrapevineError, UsageError
from .files.tool_table_writes import refuse_tool_table_writes
from .local.devserver import resolve_settings
from .masking import known_secrets, mask
from .placement import password_variables
from .settings import find_config, load_dotenv_file, load_project

DEFAULT_TIMEOUT_S = 300.0
DEFAULT_LOCK_TIMEOUT_S = 5.0
_MUTATING_COMMANDS = {"upgrade", "downgrade", "stamp"}


def print_notice(database: str, version: str | None, message: str) -> None:
    """Show a server notice as it arrives (one write per line: never run together with another)."""
    write_line(sys.stderr, notice_line(database, version, message))


def run_environment(kind: str) -> None:
    """Entry point for env.py: one line on failure (Alembic prints ``FAILED: ...``), never a traceback."""
    from alembic import context, util

    try:
        _run(context, kind)
    except GrapevineError as err:
        raise util.CommandError(mask(str(err), _secrets(context.config))) from err
    except Exception as err:
        message = _database_error_line(err)
        if message is None:
            raise
        raise util.CommandError(mask(message, _secrets(context.config))) from err


def _secrets(config) -> set[str]:
    """The passwords to mask in the FAILED line: the environment's, and alembic.ini's password_env ones."""
    try:
        return known_secrets(variables=password_variables(_project(config).server_logins))
    except Exception:  # alembic.ini itself is what failed: the environment's secrets still count
        return known_secrets()


def _database_error_line(err: Exception) -> str | None:
    """PostgreSQL's message of a driver error raised outside our executor (Alembic creating its
    version table without CREATE privilege, say); None for anything else."""
    import psycopg2
    from sqlalchemy.exc import DBAPIError

    if isinstance(err, DBAPIError) and err.orig is not None:
        err = err.orig
    return describe_error(err) if isinstance(err, psycopg2.Error) else None


def _run(context, kind: str) -> None:
    _refuse_model_commands(context.config, kind)
    project = _project(context.config)
    if context.config.config_file_name:  # the usual env.py logging set-up: "Running upgrade ..." lines
        import logging.config

        logging.config.fileConfig(context.config.config_file_name, disable_existing_loggers=False)
    tables = project.tool_tables(kind)  # version_table, ledger_table, ... of this section
    writer = LedgerWriter(context.script.migration_files(), tables=tables)
    if context.is_offline_mode():
        context.configure(dialect_name="postgresql", transaction_per_migration=True, on_version_apply=[writer],
                          **tables.alembic_options())
        with context.begin_transaction():
            context.run_migrations(migration_context=context.get_context())
        return

    load_dotenv_file(project.root)
    settings = resolve_settings(project, announce=lambda text: print(text, file=sys.stderr, flush=True))
    xargs = _checked_x_arguments(context.get_x_argument(as_dictionary=True), kind)
    if kind == "control":
        spec = settings.control
    else:  # -x server=host[:port] for a tenant placed on another server, with its login from alembic.ini
        placed = replace(settings, server_logins=project.server_logins)
        spec = placed.tenant_spec(_required_tenant(xargs), xargs.get("server"))
    journal = Journal(database=spec.dbname, on_notice=print_notice, tables=tables)
    _run_online(context, project, spec, journal, writer, xargs)


def _run_online(context, project, spec, journal, writer, xargs) -> None:
    timeout = _seconds(xargs, "timeout", DEFAULT_TIMEOUT_S)
    lock_timeout = _seconds(xargs, "lock_timeout", DEFAULT_LOCK_TIMEOUT_S)
    late_policy = project.out_of_order  # a bad -x value fails here, before any connection
    if "out_of_order" in xargs:
        late_policy = late_files.parse_policy(xargs["out_of_order"], "-x out_of_order")
    raw = open_connection(spec)
    try:
        configure_session(raw, statement_timeout_s=timeout, lock_timeout_s=lock_timeout)
        mutates = _mutates(context.config)
        journal.policy = SessionPolicy.for_connection(
            raw, statement_timeout_s=timeout, lock_timeout_s=lock_timeout, lock_key=project.lock_key if mutates else None
        )
        if not mutates:  # a writing command checks with its state read (_refuse_legacy)
            with raw.cursor() as cursor:
                check_placement(cursor, journal.tables)
        else:
            acquire_lock(raw, project.lock_key, timeout_s=timeout, on_wait=lambda: _say_waiting(spec.dbname))
            state = _refuse_legacy(raw, spec.dbname, journal.tables)
            writer.prepare(raw, journal)

            plan = make_plan(tuple(writer.chain[v] for v in writer.versions), state)
            journal.marked_ahead = {m.version for m in plan.marked_ahead}
        raw.notices = NoticeSink(journal)
        if mutates and plan.out_of_order and _command(context.config) == "upgrade":
            _late_files(raw, plan, late_policy, xargs, spec, journal, writer)
        with sqlalchemy_connection(raw) as connection:
            context.configure(connection=connection, transaction_per_migration=True, on_version_apply=[writer],
                              **journal.tables.alembic_options())
            with context.begin_transaction():
                context.run_migrations(migration_context=context.get_context(), journal=journal)
    finally:
        raw.close()


def _late_files(raw, plan, policy, xargs, spec, journal, writer) -> None:
    """Files merged late, as ``migrate`` treats them: applied first with a warning line each (the
    ``out_of_order`` setting's default), or refused (``-x out_of_order=refuse`` overrides alembic.ini)."""
    if policy == late_files.REFUSE:
        flag = f"--tenant {xargs['tenant']}" if "tenant" in xargs else "--control"
        raise UsageError(f"{spec.dbname}: " + late_files.refusal(plan, flag))
    for migration in plan.out_of_order:
        migration.parse()  # a broken file fails before anything of it is sent
        refuse_tool_table_writes(migration, journal.tables)  # so does one that writes the tool's tables
    for migration in plan.out_of_order:
        print(late_files.warning_line(spec.dbname, migration, plan.head), file=sys.stderr, flush=True)
        apply_direct(raw, migration, writer.insert_sql(migration, "out-of-order"), journal)


def _command(config) -> str:
    cmd = getattr(getattr(config, "cmd_opts", None), "cmd", None)
    return getattr(cmd[0], "__name__", "") if cmd else ""


def _refuse_legacy(raw, database: str, tables):
    """Only the previous tool's ledger: Alembic would start again from base, so send the user to
    the command that adopts it (stamps the recorded prefix, keeping applied_at).  Returns the state."""
    with raw.cursor() as cursor:
        state = read_state(cursor, tables=tables)
        if state.is_legacy:
            raise UsageError(
                f"{database} has the previous tool's {tables.ledger_table} and no {tables.version_table} yet:"
                " run `grapevine-migrations migrate` for it first (it adopts the recorded versions)"
            )
    return state


def _say_waiting(database: str) -> None:
    print(waiting_line(database), file=sys.stderr, flush=True)


def _project(config):
    path = Path(config.config_file_name) if config.config_file_name else find_config()
    return load_project(path.resolve())


# -x keys each environment reads (server: a tenant placed on another server, as host[:port])
X_KEYS = {"control": ("timeout", "lock_timeout", "out_of_order"),
          "tenant": ("tenant", "timeout", "lock_timeout", "server", "out_of_order")}


def _checked_x_arguments(xargs: dict, kind: str) -> dict:
    """``-x key=value`` pairs this environment reads; an unknown key is an error, not ignored."""
    import difflib

    for key in xargs:
        if key not in X_KEYS[kind]:
            close = difflib.get_close_matches(key, X_KEYS[kind], n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise UsageError(f"unknown -x {key} for the {kind} environment ({hint}known: {', '.join(X_KEYS[kind])})")
    return xargs


def _seconds(xargs: dict, key: str, default: float) -> float:
    text = xargs.get(key)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise UsageError(f"-x {key} must be a number of seconds (0 = no limit), not {text!r}")
    return value


def _required_tenant(xargs: dict) -> str:
    tenant = xargs.get("tenant")
    if not tenant:
        raise UsageError("the tenant environment needs a tenant: alembic -c alembic.ini -n tenant -x tenant=<id> ...")
    return tenant


def _refuse_model_commands(config, kind: str) -> None:
    """``alembic check`` and ``revision --autogenerate`` compare SQLAlchemy models with a database; there
    are none here, so say what does the job instead, before anything connects."""
    command = _command(config)
    if command == "check":
        raise UsageError("alembic check compares SQLAlchemy models, and these migrations are .sql files: run"
                         " `grapevine-migrations check` (the files) or `grapevine-migrations drift` (databases against them)")
    if command == "revision" and getattr(config.cmd_opts, "autogenerate", False):
        raise UsageError("--autogenerate needs SQLAlchemy models, and these migrations are .sql files: run"
                         f" `alembic -c alembic.ini -n {kind} revision -m \"description\"` and write its SQL")


def _mutates(config) -> bool:
    """Only commands that write take the lock, so ``alembic current`` never waits behind a run."""
    cmd = getattr(getattr(config, "cmd_opts", None), "cmd", None)
    if not cmd:
        return True  # called programmatically: be safe
    return getattr(cmd[0], "__name__", "") in _MUTATING_COMMANDS
