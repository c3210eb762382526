"""``grapevine-migrations``: plain-.sql migrations for the control database and every tenant.

The commands only parse flags, call the pieces and choose the exit code:
0 success, 1 failed work, 2 usage or configuration error (``status`` also uses
3 for "something is pending").  Heavy imports (Alembic, SQLAlchemy, rich) happen
inside the commands that need them, so ``--help`` stays fast.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import click

from ..errors import UsageError
from ..masking import known_secrets

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PENDING = 0, 1, 2, 3


def exit_with(code: int) -> None:
    """End the command with ``code`` (0 returns normally, so click finishes its own way)."""
    if code:
        sys.exit(code)


@dataclass
class App:
    """Shared state for one invocation, built lazily: only what a command needs is loaded."""

    config_path: str | None
    debug: bool
    embedded: bool = False  # the embedded server asked for: --embedded or a `dev` command
    read_only: bool = False  # a command that only looks: it never starts the embedded server
    _project: object = None
    _settings: object = None
    output: object = field(default=None)

    def project(self):
        if self._project is None:
            from ..settings import find_config, load_dotenv_file, load_project  # lazy: --help stays fast

            self._project = load_project(find_config(self.config_path))
            load_dotenv_file(self._project.root)
        return self._project

    def settings(self):
        if self._settings is None:
            from dataclasses import replace

            from ..local.devserver import resolve_settings  # lazy: --help stays fast
            from .fixes import word_fix
            from ..placement import password_variables

            project = self.project()
            settings = resolve_settings(project, announce=self.out().info, asked=self.embedded, read_only=self.read_only,
                                        word_fix=word_fix)
            self._settings = replace(settings, server_logins=project.server_logins)
            type(self.out()).password_variables = tuple(password_variables(project.server_logins))
            for secret in [settings.control.password, settings.tenant_server.password,
                           *(value for key, value in settings.control.options if "password" in key)]:
                self.out().add_secret(secret)
        return self._settings

    def out(self, json_mode: bool = False):
        if self.output is None:
            from .report import Output  # lazy: --help stays fast

            self.output = Output(json_mode=json_mode, secrets=_env_secrets())
        return self.output


def _env_secrets() -> set[str]:
    """Passwords we know of before parsing anything, so even a config error cannot print them."""
    return known_secrets()


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
    from ..fleet.targets import Selection, parse_shard  # lazy: --help stays fast

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


def _report_folder(_ctx, _param, value):
    """Refused before the run, not after it: a page that cannot be written must not cost a migration's summary."""
    if value is not None and not Path(value).absolute().parent.is_dir():
        raise click.BadParameter(f"the folder of {value} does not exist", param_hint="--report")
    return value


def report_option(func):
    return click.option(
        "--report", default=None, type=click.Path(dir_okay=False), metavar="FILE.html", callback=_report_folder,
        help="Also write the run as one self-contained HTML page: the fleet at a glance, versions, failures, timings.",
    )(func)


def json_option(func):
    return click.option("--json", "json_mode", is_flag=True, help="Print one JSON document on stdout.")(func)


def run_options(app: App, **overrides):
    from .report import notice_line, retry_line, waiting_line  # lazy: --help stays fast
    from ..fleet.breakers import Breakers
    from ..database.session.netbounds import bounds_from_environment
    from ..database.jobs.runner import RunOptions
    from .fixes import word_fix

    bounds = bounds_from_environment()  # a bad GRAPEVINE_SILENCE_TIMEOUT is a usage error before any connection
    out = app.out()  # the same lines as env.py prints, but through the redacting output

    def notice(database, version, message):
        out.info(notice_line(database, version, message))

    def waiting(database):
        out.info(waiting_line(database))

    def warning(line):
        out.info(line)

    def retrying(database, attempt, error, delay):
        out.info(retry_line(database, attempt, error, delay))

    return RunOptions(lock_key=app.project().lock_key, debug=app.debug, on_notice=notice, on_wait=waiting,
                      on_retry=retrying, on_warning=warning, servers=Breakers(), bounds=bounds, word_fix=word_fix,
                      **overrides)


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
