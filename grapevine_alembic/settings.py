"""Where the databases are: environment, ``.env``, ``alembic.ini`` and connection specs.

Kept free of SQLAlchemy and Alembic imports: the status and no-op paths run on
psycopg2 alone, and importing SQLAlchemy costs more than the work itself.
"""

from __future__ import annotations

import configparser
import ipaddress
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import quote

from .errors import ConfigError
from .placement import parse_server, read_logins, server_spec
from .tool_tables import DEFAULT_TABLES, ToolTables

CONFIG_FILE = "alembic.ini"
DEFAULT_PORT = 5432
ENVIRONMENTS = ("control", "tenant")
# Query options that are libpq connection parameters and so carry over to tenant URLs.
_SCHEMES = {"postgresql", "postgres", "postgresql+psycopg2"}


@dataclass(frozen=True)
class ConnectionSpec:
    """One database's connection parameters; the password never reaches ``str()``."""

    host: str | None
    port: int | None
    user: str | None
    password: str | None = field(repr=False)
    dbname: str
    options: tuple[tuple[str, str], ...] = ()

    def for_database(self, dbname: str) -> ConnectionSpec:
        return replace(self, dbname=dbname)

    def connect_kwargs(self) -> dict[str, object]:
        """Keyword arguments for ``psycopg2.connect``: no string formatting, so any password works."""
        kwargs: dict[str, object] = {"dbname": self.dbname}
        for key, value in (("host", self.host), ("port", self.port), ("user", self.user), ("password", self.password)):
            if value is not None:
                kwargs[key] = value
        kwargs.update(self.options)
        return kwargs

    @property
    def is_local(self) -> bool:
        """False when the spec names a server off this machine (``reset`` and ``dev tenant add`` refuse it).

        True is not the last word: libpq may still go elsewhere (PGHOST, PGHOSTADDR, a service),
        so those commands check the connection's peer too (``database.session.connection.remote_peer``).
        """
        options = dict(self.options)
        host = options.get("hostaddr") or self.host or options.get("host")  # libpq connects to hostaddr if given
        if host is None or host.startswith(("/", "@")) or host.lower() == "localhost":
            return True
        try:
            return ipaddress.ip_address(host.strip("[]")).is_loopback  # all of 127/8 is loopback
        except ValueError:
            return False  # a name other than localhost: not looked up, as it is refused anyway

    @property
    def server(self) -> str:
        """``host:port``: the key of this server's circuit breaker and its group in ``status``."""
        host = self.host or dict(self.options).get("host") or "localhost"
        return f"[{host}]:{self.port or DEFAULT_PORT}" if ":" in host else f"{host}:{self.port or DEFAULT_PORT}"

    def display(self) -> str:
        """A masked URL for messages: the password is always ``***``."""
        return self.url(show_password=False)

    def url(self, *, show_password: bool, password: str | None = None) -> str:
        """The URL, with the password quoted in it only when asked (``dev url --show-password``).

        ``password`` stands in for a spec without one (``dev url`` with ``PGPASSWORD``).
        """
        secret = self.password if self.password is not None else password
        auth = ""
        if self.user or secret:
            shown = quote(secret, safe="") if show_password and secret else "***"
            auth = quote(self.user or "", safe="") + (f":{shown}" if secret else "") + "@"
        host = self.host or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{self.port}" if self.port else ""
        query = "&".join(f"{k}={quote(v, safe='/') if show_password or 'password' not in k else '***'}"
                         for k, v in self.options)
        return f"postgresql://{auth}{host}{port}/{quote(self.dbname, safe='')}" + (f"?{query}" if query else "")

    def __str__(self) -> str:
        return self.display()


def parse_database_url(url: str, *, name: str = "CONTROL_DATABASE_URL") -> ConnectionSpec:
    """Parse a ``postgresql://`` URL the way libpq (and so psql) does; errors never echo any of it.

    libpq ends the user part at the first '@' before the first '/': a ``?``, ``#``, ``:`` or ``+``
    in a password works unencoded, as in psql.  A password holding an unencoded ``/`` or ``@``
    would be read as a host, port or database name, so such a URL is refused with one line.
    """
    hint = f"{name} is not a PostgreSQL URL (expected postgresql://user:password@host:port/dbname)"
    scheme, separator, rest = url.strip().partition("://")
    if not separator or scheme.lower() not in _SCHEMES:
        raise ConfigError(hint)
    authority, _, tail = rest.partition("/")
    if authority.count("@") > 1 or "@" in tail:
        where = "more than one '@' before the host" if authority.count("@") > 1 else "an '@' after the host part"
        raise ConfigError(f"{name} has {where}: percent-encode the password ('/' is %2F, '@' is %40, '%' is %25)")
    from psycopg2 import ProgrammingError
    from psycopg2.extensions import parse_dsn

    try:
        params = parse_dsn("postgresql://" + rest)
    except ProgrammingError as err:
        raise ConfigError(f"{hint}: {_libpq_reason(str(err))}") from None
    host, port_text = params.pop("host", None), params.pop("port", None)
    if host and "," in host:
        raise ConfigError(f"{name}: multi-host URLs are not supported")
    if port_text is not None and not (port_text.isdigit() and 0 < int(port_text) < 65536):
        raise ConfigError(f"{hint}: the port must be a number from 1 to 65535")  # never echoed: it may be a password
    dbname = params.pop("dbname", None)
    if not dbname:
        raise ConfigError(f"{hint}: the database name is missing")
    return ConnectionSpec(
        host=host or None,
        port=int(port_text) if port_text else None,
        user=params.pop("user", None) or None,
        password=params.pop("password", None),  # from the userinfo or ?password=: one field, always masked
        dbname=dbname,
        options=tuple(params.items()),
    )


# libpq's parse errors quote the offending text, which may be the password: say what is wrong instead.
_LIBPQ_REASONS = (
    ("invalid percent-encoded token", "a '%' not followed by two hex digits: percent-encode the password ('%' is %25)"),
    ("forbidden value %00", "it contains %00"),
    ("invalid URI query parameter", "a query parameter that is not a libpq connection parameter"),
    ("key/value separator", "a query parameter without exactly one '=': percent-encode the password"
                            " ('&' is %26, '=' is %3D)"),
    ("IPv6", "a malformed [IPv6] host"),
)


def _libpq_reason(message: str) -> str:
    return next((reason for marker, reason in _LIBPQ_REASONS if marker in message), "libpq cannot parse it")


@dataclass(frozen=True)
class Project:
    """The project on disk: where ``alembic.ini`` is and what it says."""

    root: Path
    config_file: Path | None  # None: no alembic.ini, the previous tool's layout
    migration_dirs: dict[str, Path]
    tenants_query: str | None
    lock_key: int
    server_logins: dict = field(default_factory=dict, hash=False)  # "host[:port]" -> placement.ServerLogin
    out_of_order: str = "apply"  # late-merged files: "apply" or "refuse" (see database/state/out_of_order_files.py)
    tables: dict = field(default_factory=dict, hash=False)  # env -> tool_tables.ToolTables

    def migration_dir(self, env: str) -> Path:
        return migrations_dir_override(self.migration_dirs[env], self.root)

    def tool_tables(self, env: str):
        """The names of the tool's version table and ledger in this environment's databases."""
        return self.tables.get(env, DEFAULT_TABLES)


DEFAULT_LOCK_KEY = 0x67726170_65766E65 & 0x7FFFFFFFFFFFFFFF  # "grapevne": this tool's advisory-lock namespace


MIGRATIONS_DIR_VARIABLE = "MIGRATIONS_DIR"


def migrations_dir_override(folder: Path, root: Path) -> Path:
    """``$MIGRATIONS_DIR/<control|tenant>`` when MIGRATIONS_DIR is set (it wins over alembic.ini).

    The previous tool's variable: the folder holding ``control/`` and ``tenant/``; a relative
    path is taken from the project root (where alembic.ini is).
    """
    value = os.environ.get(MIGRATIONS_DIR_VARIABLE, "").strip()
    if not value:
        return folder
    base = root / value
    if not base.is_dir():
        what = "is a file, not a folder" if base.exists() else "does not exist"
        raise ConfigError(f"{MIGRATIONS_DIR_VARIABLE}={value}: {base} {what} (it names the folder holding control/ and tenant/)")
    return (base / Path(folder).name).resolve()


OUT_OF_ORDER_APPLY, OUT_OF_ORDER_REFUSE = "apply", "refuse"  # what to do with late-merged files (database/state/out_of_order_files.py)
OUT_OF_ORDER_SETTING = "out_of_order"


def parse_out_of_order_policy(value: str | None, where: str) -> str:
    """The ``out_of_order`` policy a setting names; a typo is a configuration error, never a silent default."""
    if value is None:
        return OUT_OF_ORDER_APPLY
    text = value.strip().lower()
    if text not in (OUT_OF_ORDER_APPLY, OUT_OF_ORDER_REFUSE):
        raise ConfigError(f"{where}: {OUT_OF_ORDER_SETTING} must be {OUT_OF_ORDER_APPLY} or {OUT_OF_ORDER_REFUSE}, not {value.strip()!r}")
    return text


def grapevine_near(folder: Path) -> tuple[int, str]:
    """The lock key and out-of-order policy for a migrations folder migrated without a project (the API's
    ``migrate_database`` and ``provision_database``): the alembic.ini above ``folder``, as the CLI reads it, so that
    the API and the CLI take the same lock; else the defaults (the previous tool's layout has no alembic.ini)."""
    try:
        config = find_config(start=folder.parent)
    except ConfigError:
        config = None
    return grapevine_section(read_config(config), config)[1:] if config else (DEFAULT_LOCK_KEY, OUT_OF_ORDER_APPLY)


def read_config(config_file: Path) -> configparser.ConfigParser:
    """alembic.ini parsed as Alembic parses it (``%(here)s``); a file it cannot read is one configuration error."""
    parser = configparser.ConfigParser(defaults={"here": str(config_file.parent)})
    try:
        parser.read(config_file)
    except configparser.Error as err:
        raise ConfigError(f"{config_file}: {err.message.splitlines()[0]}") from None
    return parser


def grapevine_section(parser: configparser.ConfigParser, config_file: Path) -> tuple[str | None, int, str]:
    """``[grapevine]``'s tenants query, lock key and out-of-order policy, read and checked in this one place, so
    the CLI, plain ``alembic`` and the API's ``migrate_database`` give the same error line for a bad value."""
    where = f"{config_file} [grapevine]"
    try:
        query = parser.get("grapevine", "tenants_query", fallback=None)
    except configparser.Error as err:  # a lone '%' (SQL's LIKE) is written %% here, as Alembic reads the file
        raise ConfigError(f"{where}: tenants_query: {err.message.splitlines()[0]}") from None
    # raw: a '%' in these is a bad value, named as such, not an interpolation error
    lock_text = parser.get("grapevine", "lock_key", raw=True, fallback=str(DEFAULT_LOCK_KEY))
    late = parse_out_of_order_policy(parser.get("grapevine", OUT_OF_ORDER_SETTING, raw=True, fallback=None), where)
    try:
        lock_key = int(lock_text)
    except ValueError:
        lock_key = 2 ** 63  # refused below
    if not -(2 ** 63) <= lock_key < 2 ** 63:
        raise ConfigError(f"{where}: lock_key must be a whole number (a bigint), not {lock_text.strip()!r}")
    return query.strip() if query else None, lock_key, late


def find_config(explicit: str | os.PathLike | None = None, start: Path | None = None) -> Path | None:
    """Locate alembic.ini: an explicit path, ``$GRAPEVINE_CONFIG``, or the nearest one above the cwd.

    None when the nearest project folder above the cwd has ``migrations/`` but no alembic.ini:
    the previous tool's layout, which needs no configuration file (see ``default_project``).
    """
    chosen = explicit or os.environ.get("GRAPEVINE_CONFIG")
    if chosen:
        path = Path(chosen)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        return path.resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_FILE
        if candidate.is_file():
            return candidate
        if _has_migrations(folder):
            return None
    if os.environ.get(MIGRATIONS_DIR_VARIABLE, "").strip() or (here / ".env").is_file():
        return None  # MIGRATIONS_DIR (here or in ./.env) names the folders, from the cwd
    raise ConfigError(
        f"no {CONFIG_FILE} and no migrations/control or migrations/tenant in {here} or any parent folder"
        " (run from the project root, set MIGRATIONS_DIR, or pass --config)"
    )


def _has_migrations(folder: Path) -> bool:
    return any((folder / "migrations" / env).is_dir() for env in ENVIRONMENTS)


def default_project(start: Path | None = None) -> Project:
    """The previous tool's layout without alembic.ini: ``migrations/{control,tenant}`` in the nearest
    folder above the cwd that has them (else the cwd, for MIGRATIONS_DIR), with every default."""
    here = (start or Path.cwd()).resolve()
    root = next((folder for folder in (here, *here.parents) if _has_migrations(folder)), here)
    dirs = {env: root / "migrations" / env for env in ENVIRONMENTS}
    return Project(root, None, dirs, None, DEFAULT_LOCK_KEY)


def load_project(config_file: Path | None) -> Project:
    """Read the two environments' migration folders and the tool's own options from alembic.ini."""
    if config_file is None:
        return default_project()
    parser = read_config(config_file)
    dirs = {}
    for env in ENVIRONMENTS:
        if not parser.has_section(env):
            raise ConfigError(f"{config_file} has no [{env}] section")
        location = parser.get(env, "version_locations", fallback=None)
        if not location:
            raise ConfigError(f"{config_file} [{env}] has no version_locations")
        dirs[env] = Path(location.split()[0])
    query, lock_key, late = grapevine_section(parser, config_file)
    logins = read_logins(parser, config_file)
    tables = {env: ToolTables.from_section(dict(parser.items(env)), f"{config_file} [{env}]") for env in ENVIRONMENTS}
    return Project(config_file.parent, config_file, dirs, query, lock_key, logins, late, tables)


def load_dotenv_file(root: Path) -> None:
    """Load ``root/.env`` without overriding the real environment; garbage lines are skipped with a warning."""
    path = root / ".env"
    if not path.is_file():
        return  # python-dotenv costs ~40 ms to import: only pay when there is a file
    import logging
    import sys

    from dotenv import dotenv_values

    class OneLine(logging.Handler):
        # python-dotenv logs one record per unparsable line; show each as one plain line.
        def emit(self, record: logging.LogRecord) -> None:
            print(f"warning: .env: {record.getMessage()}", file=sys.stderr)

    logger = logging.getLogger("dotenv.main")
    logger.handlers[:] = [OneLine()]
    logger.propagate = False
    for key, value in dotenv_values(path).items():
        if value is not None and key not in os.environ:
            os.environ[key] = value


@dataclass(frozen=True)
class Settings:
    """Connection settings for the control database and for tenant databases."""

    control: ConnectionSpec
    tenant_server: ConnectionSpec  # dbname unused; per tenant via tenant_spec()
    server_logins: dict = field(default_factory=dict, hash=False)  # from alembic.ini, see placement.py

    def tenant_spec(self, tenant_id: str, server: str | None = None) -> ConnectionSpec:
        """The tenant's database on its server (``host[:port]`` from the tenants query; None: the default)."""
        database = tenant_database(tenant_id)
        if server is None:
            return self.tenant_server.for_database(database)
        host, port = parse_server(server, self.tenant_server.port or DEFAULT_PORT)
        return server_spec(self.tenant_server, host, port, self.server_logins).for_database(database)

    @classmethod
    def from_environment(cls, env: dict[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        url = env.get("CONTROL_DATABASE_URL", "").strip()
        if not url:
            raise ConfigError("CONTROL_DATABASE_URL is not set (set it in the environment or in .env)")
        control = parse_database_url(url)
        return cls(control, _tenant_server(control, env))


def _tenant_server(control: ConnectionSpec, env) -> ConnectionSpec:
    """Tenant connection parameters: PG_TENANT_DATABASE_* each falling back to the control URL's."""
    port_text = env.get("PG_TENANT_DATABASE_PORT", "").strip()
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ConfigError("PG_TENANT_DATABASE_PORT must be a port number")
        port = int(port_text)
    else:
        port = control.port  # None: libpq's own default (PGPORT, a service file, 5432), as for the control database
    options = dict(control.options)
    sslmode = env.get("PG_TENANT_DATABASE_SSLMODE", "").strip()
    if sslmode:
        options["sslmode"] = sslmode
    return ConnectionSpec(
        host=env.get("PG_TENANT_DATABASE_HOST", "").strip() or control.host,
        port=port,
        user=env.get("PG_TENANT_DATABASE_ADMIN_USERNAME", "").strip() or control.user,
        password=env.get("PG_TENANT_DATABASE_ADMIN_PASSWORD") or control.password,
        dbname=control.dbname,
        options=tuple(options.items()),
    )


TENANT_ID_MAX = 63 - len("db_")  # PostgreSQL truncates identifiers at 63 bytes


def validate_tenant_id(tenant_id: str) -> str:
    """Accept only letters, digits, ``_`` and ``-`` before an id goes near SQL or a URL."""
    if not tenant_id:
        raise ConfigError("tenant id is empty")
    ok = tenant_id.isascii() and all(ch.isalnum() or ch in "_-" for ch in tenant_id)
    if not ok:
        raise ConfigError(f"invalid tenant id {tenant_id!r}: use only letters, digits, '_' and '-'")
    if len(tenant_id) > TENANT_ID_MAX:
        raise ConfigError(f"invalid tenant id {tenant_id[:20]!r}...: longer than {TENANT_ID_MAX} characters")
    return tenant_id


def tenant_database(tenant_id: str) -> str:
    return "db_" + validate_tenant_id(tenant_id)
