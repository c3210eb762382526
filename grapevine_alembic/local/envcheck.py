"""Catches configuration mistakes before the embedded default could stand in for them.

A misspelled variable, an empty ``CONTROL_DATABASE_URL`` or tenant settings without a control
URL would otherwise fall back to the local server and report success on the wrong database.
"""

from __future__ import annotations

import difflib
from typing import Mapping

from ..errors import START_LOCAL, START_LOCAL_FIRST, ConfigError, Fix

CONTROL_URL = "CONTROL_DATABASE_URL"
TENANT_PREFIX = "PG_TENANT_DATABASE_"
KNOWN = (
    CONTROL_URL,
    TENANT_PREFIX + "HOST",
    TENANT_PREFIX + "PORT",
    TENANT_PREFIX + "ADMIN_USERNAME",
    TENANT_PREFIX + "ADMIN_PASSWORD",
    TENANT_PREFIX + "SSLMODE",
)
# Similar enough to be a typo of ours (CONTROL_DATABSE_URL: 0.97), not someone else's variable
# (TEST_DATABASE_URL: 0.76, DATABASE_URL: 0.75).
_CUTOFF = 0.8


def near_misses(env: Mapping[str, str]) -> list[tuple[str, str]]:
    """(variable set, the known name it is probably meant to be)."""
    found = []
    for name in sorted(env):
        if name in KNOWN:
            continue
        close = difflib.get_close_matches(name, KNOWN, n=1, cutoff=_CUTOFF)
        if close:
            found.append((name, close[0]))
        elif name.startswith(TENANT_PREFIX):
            found.append((name, ", ".join(k for k in KNOWN if k.startswith(TENANT_PREFIX))))
    return found


def check(env: Mapping[str, str]) -> None:
    """Raise a ConfigError naming the variable for each mistake the embedded default would hide."""
    for name, meant in near_misses(env):
        raise ConfigError(f"{name} is set but is not a variable this tool reads: did you mean {meant}?")
    if CONTROL_URL in env and not env[CONTROL_URL].strip():
        raise ConfigError(f"{CONTROL_URL} is set but empty: give a postgresql:// URL, or unset it to use the"
                          " embedded local server")
    if CONTROL_URL not in env:
        tenant_vars = [k for k in KNOWN if k.startswith(TENANT_PREFIX) and env.get(k, "").strip()]
        if tenant_vars:
            raise ConfigError(f"{tenant_vars[0]} is set but {CONTROL_URL} is not: set {CONTROL_URL} too"
                              " (the embedded local server is used only when none of them is set)")


EMBEDDED_VARIABLE = "GRAPEVINE_EMBEDDED"


def embedded_requested(env: Mapping[str, str]) -> bool:
    """``GRAPEVINE_EMBEDDED=1`` (or true/yes/on): the embedded server asked for, anywhere, CI included."""
    return env.get(EMBEDDED_VARIABLE, "").strip().lower() in {"1", "true", "yes", "on"}


def uses_embedded(env: Mapping[str, str], available: bool, *, asked: bool, running: bool, terminal: bool) -> bool:
    """The one rule for the CLI and ``alembic -c`` alike: with no URL and the extra installed, the
    embedded server only when someone asked for it (a ``dev`` command, ``--embedded``,
    GRAPEVINE_EMBEDDED, or a server already started for this project) or a person runs it on a
    terminal outside CI. A production image that lost its URL never migrates a throwaway server."""
    if CONTROL_URL in env or not available:
        return False
    return asked or embedded_requested(env) or running or (terminal and not env.get("CI"))


def missing_url_error(env: Mapping[str, str], available: bool) -> ConfigError:
    """The error for a run with no URL that may not use the embedded server (``START_LOCAL``: how to ask for it)."""
    base = f"{CONTROL_URL} is not set (set it in the environment or in .env)"
    if not available or env.get("CI"):
        return ConfigError(base)
    return ConfigError(f"{base}; not on a terminal, the embedded local server runs only when asked",
                       fix=Fix(START_LOCAL))


def not_running_error(env: Mapping[str, str]) -> ConfigError:
    """The error for a read-only command with no URL and no embedded server running (in CI: the URL's)."""
    if env.get("CI"):
        return missing_url_error(env, True)
    return ConfigError(f"{CONTROL_URL} is not set and the embedded local server is not running; a read-only"
                       " command never starts it", fix=Fix(START_LOCAL_FIRST))
