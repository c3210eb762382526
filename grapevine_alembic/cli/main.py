"""The console entry point: registers every command on the group, runs it, turns errors into one line."""

from __future__ import annotations

import sys

import click

from .commands import (  # noqa: F401  (registering the commands on `cli`)
    check_command,
    create_command,
    dev,
    drift_command,
    list_command,
    mark_command,
    migrate_command,
    provision_command,
    reset_command,
    rollouts_command,
    schema_commands,
    setup_commands,
    status_command,
)
from .app import EXIT_USAGE, _env_secrets, cli
from ..errors import GrapevineError, UnknownTenant


def main(argv=None) -> None:
    """Console entry point: one error line and an exit code, never a traceback (unless --debug).

    With ``--json`` a failure still prints one document on stdout (``ok: false`` and the error),
    so a CI step that reads it never gets an empty file.
    """
    report = sys.modules.get(f"{__package__}.report")
    if report is not None:  # not loaded yet: no earlier command's state to forget (and --help stays fast)
        report.Output.new_command()
    args = _global_options_first(list(argv if argv is not None else sys.argv[1:]))
    debug = "--debug" in args
    message = None
    try:
        code = cli.main(args=args, prog_name="grapevine-migrations", standalone_mode=False)
    except click.exceptions.Abort:
        message, code = "aborted", EXIT_USAGE  # Ctrl-C or end of input at a prompt: like answering no
        _print_error("not confirmed (interrupted at the prompt); nothing was changed")
    except click.ClickException as err:
        message, code = _click_error_line(err), err.exit_code
        _print_error(message)  # the tool's one `error:` line, not click's usage block and `Error:`
    except click.exceptions.Exit as err:
        code = err.exit_code
    except GrapevineError as err:
        if debug:
            import traceback

            _print_error("".join(traceback.format_exc()).rstrip(), prefix=False)
        message, code = _error_line(err), err.exit_code
        _print_error(message)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        message, code = "interrupted", 130
    except Exception as err:  # noqa: BLE001 - only the driver's errors, re-raised otherwise
        from ..database.session.transient import is_driver_error  # lazy: --help stays fast

        if not is_driver_error(err):
            raise
        if debug:
            import traceback

            _print_error("".join(traceback.format_exc()).rstrip(), prefix=False)
        message, code = _driver_error_line(err), 1
        _print_error(message)
    if message is not None and "--json" in args:
        _print_failure_document(args, message, code)
    sys.exit(code or 0)


def _driver_error_line(err: Exception) -> str:
    from ..database.session.connection import describe_error  # lazy: --help stays fast

    return f"a database connection failed: {describe_error(err)} (the command stopped there; run it again)"


def _error_line(err: GrapevineError) -> str:
    """The error's one line, with what resolves it; a tenant id that looks like a typo gets the ids it may have meant."""
    if isinstance(err, UnknownTenant) and err.close:
        return f"{err}; did you mean {' or '.join(err.close)}?"
    from .fixes import error_line

    return error_line(err)


def _click_error_line(err: click.ClickException) -> str:
    """click's message on one line, with where to read more for a command-line mistake."""
    message = " ".join(err.format_message().split())
    context = getattr(err, "ctx", None)
    if isinstance(err, click.UsageError) and context is not None:
        message = message.rstrip(".") + f" (see: {context.command_path} --help)"
    return message


def _global_options_first(args: list[str]) -> list[str]:
    """``--debug``, ``--embedded`` and ``--config PATH`` are accepted anywhere (`status --config x.ini`), though click
    only knows them on the group; arguments after ``--`` are left alone."""
    end = args.index("--") if "--" in args else len(args)
    head, rest, moved = [], args[end:], []
    index = 0
    while index < end:
        arg = args[index]
        if arg in ("--debug", "--embedded"):
            moved.append(arg)
        elif arg == "--config" and index + 1 < end:
            moved += [arg, args[index + 1]]
            index += 1
        elif arg.startswith("--config="):
            moved.append(arg)
        else:
            head.append(arg)
        index += 1
    return moved + head + rest


def _print_failure_document(args: list[str], message: str, code: int) -> None:
    """The one JSON document of a command that failed before it could print its own."""
    from .report import Output  # lazy: --help stays fast

    if Output.documents_printed:
        return
    command = next((a for a in args if a in cli.commands), None)
    Output(json_mode=True, secrets=_env_secrets()).document(
        {"command": command, "ok": False, "exit_code": code, "error": message}
    )


def _print_error(message: str, *, prefix: bool = True) -> None:
    from .report import Output  # lazy: --help stays fast

    output = Output(secrets=_env_secrets())
    output.error(message) if prefix else output.info(message)
