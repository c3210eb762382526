"""``grapevine-migrations``: plain-.sql migrations for the control database and every tenant.

The commands only parse flags, call the pieces and choose the exit code:
0 success, 1 failed work, 2 usage or configuration error (``status`` also uses
3 for "something is pending").  Heavy imports (Alembic, SQLAlchemy, rich) happen
inside the commands that need them, so ``--help`` stays fast.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import click

from .errors import GrapevineError, UsageError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PENDING = 0, 1, 2, 3


@dataclass
class App:
    """Shared state for one invocation, built lazily: only what a command needs is loaded."""

    config_path: str | None
    debug: bool
    embedded: bool = False  # the embedded server asked for: --embedded or a `dev` command
    _project: object = None
    _settings: object = None
    output: object = field(default=None)

    def project(self):
        if self._project is None:
            from .settings import find_config, load_dotenv_file, load_project

            self._project = load_project(find_config(self.config_path))
            load_dotenv_file(self._project.root)
        return self._project

    def settings(self):
        if self._settings is None:
            from dataclasses import replace

            from .devserver import resolve_settings
            from .placement import password_variables

            project = self.project()
            settings = resolve_settings(project, announce=self.out().info, asked=self.embedded)
            self._settings = replace(settings, server_logins=project.server_logins)
            for secret in [settings.control.password, settings.tenant_server.password,
                           *(os.environ.get(name) for name in password_variables(project.server_logins))]:
                self.out().add_secret(secret)
        return self._settings

    def out(self, json_mode: bool = False):
        if self.output is None:
            from .report import Output

            self.output = Output(json_mode=json_mode, secrets=_env_secrets())
        return self.output


def _env_secrets() -> list[str]:
    """Passwords we know of before parsing anything, so even a config error cannot print them."""
    from urllib.parse import unquote, urlsplit

    secrets = [os.environ.get("PG_TENANT_DATABASE_ADMIN_PASSWORD", "")]
    try:
        password = urlsplit(os.environ.get("CONTROL_DATABASE_URL", "")).password
        if password:
            secrets += [password, unquote(password)]
    except ValueError:
        pass
    return [s for s in secrets if s]


pass_app = click.make_pass_decorator(App)


def target_options(func):
    """--control / --all-tenants / --tenant / --tenants-file / --shard, shared by the database commands."""
    options = [
        click.option("--control", is_flag=True, help="The control database."),
        click.option("--all-tenants", is_flag=True, help="Every provisioned tenant database."),
        click.option("--tenant", "tenant_ids", multiple=True, metavar="ID", help="One tenant (repeatable)."),
        click.option(
            "--tenants-file",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Tenant ids, one per line (# comments allowed).",
        ),
        click.option("--shard", metavar="I/N", help="Only tenants whose stable hash falls in shard I of N."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def selection_from(control, all_tenants, tenant_ids, tenants_file, shard, *, default_all: bool = False):
    from .targets import Selection, parse_shard

    ids = list(tenant_ids)
    if tenants_file:
        ids += [line.split("#")[0].strip() for line in tenants_file.read_text().splitlines()]
        ids = [i for i in ids if i]
        if not ids:
            raise UsageError(f"{tenants_file} lists no tenant ids")
    if all_tenants and ids:
        raise UsageError("--all-tenants and --tenant/--tenants-file exclude each other")
    selection = Selection(control, all_tenants, tuple(ids), parse_shard(shard) if shard else None)
    if selection.empty and default_all:
        selection = Selection(True, True, (), selection.shard)
    if selection.shard and not selection.wants_tenants:
        raise UsageError("--shard splits tenants: use it with --all-tenants or --tenant")
    return selection


def per_server_option(func):
    return click.option(
        "--max-parallel-per-server", "max_per_server", default=None, type=click.IntRange(1, 100), metavar="K",
        help="At most K databases of one server at a time (default: --max-parallel); servers share the slots in turn.",
    )(func)


def json_option(func):
    return click.option("--json", "json_mode", is_flag=True, help="Print one JSON document on stdout.")(func)


def run_options(app: App, **overrides):
    from .alembic_env import notice_line, waiting_line
    from .breakers import Breakers
    from .runner import RunOptions

    out = app.out()  # the same lines as env.py prints, but through the redacting output

    def notice(database, version, message):
        out.info(notice_line(database, version, message))

    def waiting(database):
        out.info(waiting_line(database))

    def retrying(database, attempt, error, delay):
        first_line = error.splitlines()[0]
        out.info(f"{database}: attempt {attempt} failed ({first_line}); retrying in {delay:.1f}s")

    return RunOptions(lock_key=app.project().lock_key, debug=app.debug, on_notice=notice, on_wait=waiting,
                      on_retry=retrying, servers=Breakers(), **overrides)


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Examples:\n\n\b\n  grapevine-migrations migrate --control --all-tenants\n"
    "  grapevine-migrations status --all-tenants\n  grapevine-migrations create tenant \"add user preferences\"",
)
@click.version_option(package_name="grapevine-alembic", prog_name="grapevine-migrations")
@click.option("--config", "config_path", metavar="PATH",
              help="alembic.ini to use (default: the nearest one above the cwd; none needed for ./migrations).")
@click.option("--embedded", is_flag=True,
              help="Without CONTROL_DATABASE_URL, use the embedded local PostgreSQL (also: GRAPEVINE_EMBEDDED=1).")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx, config_path, embedded, debug):
    """Plain-.sql migrations for the control database and every tenant database.

    Set CONTROL_DATABASE_URL (environment or .env); tenants are the provisioned rows
    of its tenants table, each in a database db_<id>.
    """
    ctx.obj = App(config_path, debug, embedded)


from . import commands, setup_commands  # noqa: E402,F401  (register the commands on `cli`)


def main(argv=None) -> None:
    """Console entry point: one error line and an exit code, never a traceback (unless --debug).

    With ``--json`` a failure still prints one document on stdout (``ok: false`` and the error),
    so a CI step that reads it never gets an empty file.
    """
    args = _global_options_first(list(argv if argv is not None else sys.argv[1:]))
    debug = "--debug" in args
    message = None
    try:
        code = cli.main(args=args, prog_name="grapevine-migrations", standalone_mode=False)
    except click.exceptions.Abort:
        message, code = "aborted", EXIT_USAGE  # Ctrl-C or end of input at a prompt: like answering no
        _print_error("not confirmed (interrupted at the prompt); nothing was changed")
    except click.ClickException as err:
        err.show()
        message, code = err.format_message(), err.exit_code
    except click.exceptions.Exit as err:
        code = err.exit_code
    except GrapevineError as err:
        if debug:
            import traceback

            _print_error("".join(traceback.format_exc()).rstrip(), prefix=False)
        _print_error(str(err))
        message, code = str(err), err.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        message, code = "interrupted", 130
    if message is not None and "--json" in args:
        _print_failure_document(args, message, code)
    sys.exit(code or 0)


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
    from .report import Output

    if Output.documents_printed:
        return
    command = next((a for a in args if a in cli.commands), None)
    Output(json_mode=True, secrets=_env_secrets()).document(
        {"command": command, "ok": False, "exit_code": code, "error": message}
    )


def _print_error(message: str, *, prefix: bool = True) -> None:
    from .report import Output

    output = Output(secrets=_env_secrets())
    output.error(message) if prefix else output.info(message)
