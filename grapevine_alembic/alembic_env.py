"""What ``alembic_control/env.py`` and ``alembic_tenant/env.py`` run.

``alembic upgrade <target>`` resolves its target with Alembic's own revision map and then runs the
same per-database job as ``grapevine-migrations migrate`` and the Python API (``runner.migrate``,
with its defaults, retries, session reset and durability), so ``alembic -c alembic.ini -n tenant -x
tenant=acme upgrade head`` and ``grapevine-migrations migrate --tenant acme`` are one road.  ``--sql``,
``stamp``, ``current`` and ``history`` stay on Alembic's machinery; ``downgrade`` is refused.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from functools import partial
from pathlib import Path

from .cli import fixes as cli_fixes
from .cli.report import notice_line, retry_line, waiting_line, write_line
from .database.jobs import alembic_bridge, runner
from .database.session.connection import (
    acquire_lock,
    configure_session,
    describe_error,
    open_connection,
    sqlalchemy_connection,
)
from .database.session.transient import is_driver_error
from .database.state import out_of_order_files
from .database.state.ledger import LedgerWriter, check_placement, read_state
from .database.state.target import Target
from .database.apply.pgerror import timeout_hint
from .errors import (ADOPT, OUT_OF_ORDER, MIGRATE_CONTROL, RAISE_LOCK_TIMEOUT, RAISE_TIMEOUT, UNAPPLY, Fix,
                     GrapevineError, UsageError)
from .fleet.breakers import Breakers
from .local.devserver import resolve_settings
from .masking import known_secrets, mask
from .placement import password_variables
from .settings import find_config, load_dotenv_file, load_project

_MUTATING_COMMANDS = {"stamp", "do_stamp"}  # only they take the lock: `alembic current` never waits behind a run
_DEFAULTS = runner.RunOptions(lock_key=0)  # migrate's defaults: timeouts, lock timeout, retries, retry window
_TIMEOUT_KNOBS = {RAISE_TIMEOUT: "-x timeout=S", RAISE_LOCK_TIMEOUT: "-x lock_timeout=S"}  # a timeout's HINT names them


def print_notice(database: str, version: str | None, message: str) -> None:
    """Show a server notice as it arrives (one write per line: never run together with another)."""
    write_line(sys.stderr, notice_line(database, version, message))


def run_environment(env: str) -> None:
    """Entry point for env.py: one line on failure (Alembic prints ``FAILED: ...``), never a traceback."""
    from alembic import context, util

    try:
        _run(context, env)
    except GrapevineError as err:
        invocation = _invocation(env, context.get_x_argument(as_dictionary=True))
        message = str(err) + (word_fix(err.fix, invocation=invocation) if err.fix else "")
        raise util.CommandError(mask(message, _secrets(context.config))) from err
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
    return describe_error(err) if is_driver_error(err) else None


def _run(context, env: str) -> None:
    _refuse_model_commands(context.config, env)
    command = _command(context.config) or alembic_bridge.running_command(context)
    project = _project(context.config)
    if context.config.config_file_name:  # the usual env.py logging set-up: "Running upgrade ..." lines
        import logging.config

        logging.config.fileConfig(context.config.config_file_name, disable_existing_loggers=False)
    if command == "downgrade":  # forward only, online or --sql: refused before anything connects
        raise UsageError(alembic_bridge.FORWARD_ONLY)
    tables = project.tool_tables(env)  # version_table, ledger_table, ... of this section
    if context.is_offline_mode():  # --sql writes SQL with Alembic's machinery: no database
        writer = LedgerWriter(context.script.migration_files(), tables=tables)
        context.configure(dialect_name="postgresql", transaction_per_migration=True, on_version_apply=[writer],
                          grapevine_tables=tables, grapevine_env=env, **tables.alembic_options())
        with context.begin_transaction():
            context.run_migrations(migration_context=context.get_context())
        return

    load_dotenv_file(project.root)
    settings = resolve_settings(project, announce=lambda text: print(text, file=sys.stderr, flush=True),
                                word_fix=word_fix)
    xargs = _checked_x_arguments(context.get_x_argument(as_dictionary=True), env)
    if env == "control":
        spec = settings.control
    else:  # -x server=host[:port] for a tenant placed on another server, with its login from alembic.ini
        placed = replace(settings, server_logins=project.server_logins)
        spec = placed.tenant_spec(_required_tenant(xargs), xargs.get("server"))
    if command == "upgrade":
        _upgrade(context, project, Target(env, spec, tenant_id=xargs.get("tenant")), xargs)
    else:
        _run_alembic(context, project, spec, tables, xargs, mutates=command in _MUTATING_COMMANDS or not command)


def _upgrade(context, project, target: Target, xargs: dict) -> None:
    """``alembic upgrade <target>``: migrate's job for this database, stopped where Alembic's map says."""
    out_of_order_policy = project.out_of_order  # a bad -x value fails here, before any connection
    if "out_of_order" in xargs:
        out_of_order_policy = out_of_order_files.parse_policy(xargs["out_of_order"], "-x out_of_order")
    chain = runner.Chain(project, target.env, folder=context.script.migration_folder())
    chain._script = context.script  # the revision map Alembic built for this command
    destination = context.get_revision_argument()
    options = replace(
        _DEFAULTS, lock_key=project.lock_key,
        timeout_s=_seconds(xargs, "timeout", _DEFAULTS.timeout_s),
        lock_timeout_s=_seconds(xargs, "lock_timeout", _DEFAULTS.lock_timeout_s),
        retries=_count(xargs, "retries", _DEFAULTS.retries),
        retry_window_s=_seconds(xargs, "retry_window", _DEFAULTS.retry_window_s),
        out_of_order=out_of_order_policy == out_of_order_files.APPLY, adopt_legacy=False, servers=Breakers(),
        stop_at=lambda head: alembic_bridge.upgrade_bound(context.script, destination, head),
        on_notice=print_notice, on_wait=_say_waiting, on_step=_say_running, on_warning=_say,
        on_retry=lambda database, attempt, error, delay: _say(retry_line(database, attempt, error, delay)),
        word_fix=partial(word_fix, invocation=_invocation(target.env, xargs)),
    )
    result = runner.migrate(target, chain, options)
    if result.error:
        raise GrapevineError(result.error)


def _run_alembic(context, project, spec, tables, xargs: dict, *, mutates: bool) -> None:
    """``stamp`` and ``current`` on Alembic's machinery, over a connection bounded as migrate's."""
    timeout = _seconds(xargs, "timeout", _DEFAULTS.timeout_s)
    lock_timeout = _seconds(xargs, "lock_timeout", _DEFAULTS.lock_timeout_s)
    purge = mutates and alembic_bridge.purging(context)
    raw = open_connection(spec)
    try:
        configure_session(raw, statement_timeout_s=timeout, lock_timeout_s=lock_timeout)
        writer = LedgerWriter(context.script.migration_files(), tables=tables)
        if not mutates:  # a writing command checks with its state read (_refuse_legacy)
            with raw.cursor() as cursor:
                check_placement(cursor, tables)
        else:
            acquire_lock(raw, project.lock_key, timeout_s=timeout, on_wait=lambda: _say_waiting(spec.dbname))
            state = _refuse_legacy(raw, spec, tables)
            if purge and state.has_ledger:  # the ledger moves from the head Alembic's purge is about to empty
                writer.purged_heads = state.heads
        with sqlalchemy_connection(raw) as connection:
            # --purge empties the version table before stamping: one transaction, or a failure between the two
            # would leave it empty beside a full ledger
            context.configure(connection=connection, transaction_per_migration=not purge, on_version_apply=[writer],
                              **tables.alembic_options())
            with context.begin_transaction():
                context.run_migrations(migration_context=context.get_context())
                writer.finish_purge(context.get_context())  # stamp --purge base runs no step
    finally:
        raw.close()


def _command(config) -> str:
    cmd = getattr(getattr(config, "cmd_opts", None), "cmd", None)
    return getattr(cmd[0], "__name__", "") if cmd else ""


def _refuse_legacy(raw, spec, tables):
    """Only the previous tool's ledger: Alembic would start again from base.  Returns the state read."""
    with raw.cursor() as cursor:
        state = read_state(cursor, tables=tables)
    if state.is_legacy:
        raise UsageError(runner.legacy_refusal(spec.dbname, tables), fix=Fix(ADOPT))
    return state


def _invocation(env: str, xargs: dict) -> str:
    """The alembic command as the person ran it, up to its subcommand: a command printed for them reaches the
    same database (``-x server=`` too, for a tenant placed on another server)."""
    chosen = "".join(f" -x {key}={xargs[key]}" for key in ("tenant", "server") if xargs.get(key))
    return f"alembic -c alembic.ini -n {env}{chosen}"


def word_fix(fix: Fix, target: Target | None = None, *, invocation: str | None = None) -> str:
    """What resolves a failure, worded for a person at ``alembic`` (the CLI's words are in ``cli/fixes``);
    ``invocation``: the command as run (``_invocation``), else the target's environment and tenant."""
    tenant = f" -x tenant={target.tenant_id}" if target is not None and target.tenant_id else ""
    alembic = invocation or f"alembic -c alembic.ini -n {target.env if target is not None else 'tenant'}{tenant}"
    if fix.action == OUT_OF_ORDER:
        return f"; run them with: {alembic} -x out_of_order=apply upgrade head"
    if fix.action == UNAPPLY and fix.back:  # a lost head: --purge empties the version table, the ledger follows
        return f" with: {alembic} stamp --purge {fix.back}"
    if fix.action == UNAPPLY:  # the previous tool's ledger alone: a stamp would start a version table from base
        return f"; Alembic cannot move it: `mark --unapply {fix.version}` of grapevine-migrations does"
    if fix.action == ADOPT:
        return ": run `grapevine-migrations migrate` for it first (it adopts the recorded versions)"
    if fix.action == MIGRATE_CONTROL:
        return " (run `alembic -c alembic.ini -n control upgrade head` first?)"
    if fix.action in _TIMEOUT_KNOBS:
        return timeout_hint(fix, _TIMEOUT_KNOBS[fix.action])
    return cli_fixes.word_fix(fix, target)  # the embedded server's `dev` commands have no alembic form


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _say_running(database: str, before: str | None, migration) -> None:
    """Alembic's own line for each step, through Alembic's logger (alembic.ini's logging shows it)."""
    import logging

    logging.getLogger("alembic.runtime.migration").info(
        "Running upgrade %s -> %s, %s", before or "", migration.version, migration.message)


def _say_waiting(database: str) -> None:
    print(waiting_line(database), file=sys.stderr, flush=True)


def _project(config):
    path = Path(config.config_file_name) if config.config_file_name else find_config()
    return load_project(path.resolve())


# -x keys each environment reads (server: a tenant placed on another server, as host[:port])
X_KEYS = {"control": ("timeout", "lock_timeout", "out_of_order", "retries", "retry_window"),
          "tenant": ("tenant", "timeout", "lock_timeout", "server", "out_of_order", "retries", "retry_window")}


def _checked_x_arguments(xargs: dict, env: str) -> dict:
    """``-x key=value`` pairs this environment reads; an unknown key is an error, not ignored."""
    import difflib

    for key in xargs:
        if key not in X_KEYS[env]:
            close = difflib.get_close_matches(key, X_KEYS[env], n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise UsageError(f"unknown -x {key} for the {env} environment ({hint}known: {', '.join(X_KEYS[env])})")
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


def _count(xargs: dict, key: str, default: int) -> int:
    text = xargs.get(key)
    if text is None:
        return default
    if not text.strip().isdigit():
        raise UsageError(f"-x {key} must be a whole number (0 = no retries), not {text!r}")
    return int(text)


def _required_tenant(xargs: dict) -> str:
    tenant = xargs.get("tenant")
    if not tenant:
        raise UsageError("the tenant environment needs a tenant: alembic -c alembic.ini -n tenant -x tenant=<id> ...")
    return tenant


def _refuse_model_commands(config, env: str) -> None:
    """``alembic check`` and ``revision --autogenerate`` compare SQLAlchemy models with a database; there
    are none here, so say what does the job instead, before anything connects."""
    command = _command(config)
    if command == "check":
        raise UsageError("alembic check compares SQLAlchemy models, and these migrations are .sql files: run"
                         " `grapevine-migrations check` (the files) or `grapevine-migrations drift` (databases against them)")
    if command == "revision" and getattr(config.cmd_opts, "autogenerate", False):
        raise UsageError("--autogenerate needs SQLAlchemy models, and these migrations are .sql files: run"
                         f" `alembic -c alembic.ini -n {env} revision -m \"description\"` and write its SQL")
