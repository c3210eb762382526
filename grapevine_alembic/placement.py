"""Which PostgreSQL server a tenant lives on: the tenants query's second column, and each server's login.

A server is written ``host`` or ``host:port`` (``[v6addr]:port`` for IPv6); the port
defaults to the tenant port.  Every server uses the ``PG_TENANT_*`` credentials unless
alembic.ini names other environment variables for it::

    [grapevine server db2.internal:5432]
    user_env = PG_DB2_USER
    password_env = PG_DB2_PASSWORD

The file names variables only: a password written in it is refused.
"""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping

from .errors import ConfigError

SECTION_PREFIX = "grapevine server "
_LOGIN_KEYS = {"user_env", "password_env"}
_HOST_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")


class BadServer(ConfigError):
    """A server value that is not ``host`` or ``host:port``."""


def parse_server(text: str, default_port: int) -> tuple[str, int]:
    """``host``, ``host:port`` or ``[v6]:port`` -> (host, port); anything else is one clear error."""
    shown = text if len(text) <= 60 else text[:57] + "..."
    problem = _server_problem(text.strip())
    if isinstance(problem, str):
        raise BadServer(f"invalid server {shown!r}: {problem}")
    host, port = problem
    return host, default_port if port is None else port


def _server_problem(text: str) -> str | tuple[str, int | None]:
    if not text:
        return "empty (leave it NULL for the default tenant server)"
    port_text = None
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")) or not host or not set(host) <= set("0123456789abcdefABCDEF:."):
            return "expected [IPv6 address] or [IPv6 address]:port"
        port_text = rest[1:] if rest else None
    else:
        if text.count(":") > 1:
            return "an IPv6 address goes in brackets: [addr]:port"
        host, _, port_text = text.partition(":") if ":" in text else (text, "", None)
        if not set(host) <= _HOST_CHARS or not host or host.startswith(("-", ".")):
            return "expected host or host:port (letters, digits, '.', '-' and '_' in the host)"
    if port_text is None:
        return host, None
    if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return "the port must be a number from 1 to 65535"
    return host, int(port_text)


@dataclass(frozen=True)
class ServerLogin:
    """Environment variables holding one server's user and password (either may be unset: PG_TENANT_*)."""

    user_env: str | None = None
    password_env: str | None = None


def read_logins(parser: configparser.ConfigParser, config_file: Path) -> dict[str, ServerLogin]:
    """``[grapevine server HOST[:PORT]]`` sections of alembic.ini, keyed by ``HOST[:PORT]``."""
    logins = {}
    for section in parser.sections():
        if not section.startswith(SECTION_PREFIX):
            continue
        server = section[len(SECTION_PREFIX):].strip()
        where = f"{config_file} [{section}]"
        try:
            parse_server(server, 1)
        except BadServer as err:
            raise ConfigError(f"{where}: {err}") from None
        keys = set(parser.options(section)) - set(parser.defaults())
        if keys & {"password", "user_password", "pass"}:
            raise ConfigError(f"{where}: never write a password in alembic.ini; name an environment variable"
                              " with password_env = NAME")
        unknown = sorted(keys - _LOGIN_KEYS)
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]!r} (expected user_env, password_env)")
        logins[server] = ServerLogin(parser.get(section, "user_env", fallback=None),
                                     parser.get(section, "password_env", fallback=None))
    return logins


def login_for(logins: Mapping[str, ServerLogin], host: str, port: int) -> ServerLogin | None:
    """The section for ``host:port``, else for ``host`` alone."""
    label = f"[{host}]" if ":" in host else host
    return logins.get(f"{label}:{port}") or logins.get(label)


def server_spec(base, host: str, port: int, logins: Mapping[str, ServerLogin], env=None):
    """``base`` (the tenant ConnectionSpec) moved to another server, with that server's login if it has one."""
    env = os.environ if env is None else env
    spec = replace(base, host=host, port=port)
    login = login_for(logins, host, port)
    if login is None:
        return spec
    for attribute, name in (("user", login.user_env), ("password", login.password_env)):
        if name:
            value = env.get(name)
            if not value:
                raise ConfigError(f"server {spec.server}: {name} (named in alembic.ini) is not set")
            spec = replace(spec, **{attribute: value})
    return spec


def password_variables(logins: Mapping[str, ServerLogin]) -> list[str]:
    return [login.password_env for login in logins.values() if login.password_env]
