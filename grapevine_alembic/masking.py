"""The one place that hides passwords: every line the tool prints or logs goes through ``mask``.

Two layers, because either alone misses something:

* known secrets: every password the process can learn (``CONTROL_DATABASE_URL`` userinfo or
  ``?password=``, ``PGPASSWORD``, the tenant admin password, the ``password_env`` variables of
  alembic.ini, a ``.pgpass`` file, and ``.env`` once it is loaded) is masked in every spelling
  an error text may carry it in: as is, percent-encoded, JSON- or repr-escaped;
* shapes: whatever stands where a password stands (``user:...@`` in a URL, ``password=...``
  in a query or a libpq conninfo string) is masked even when the password is unknown.

Free of heavy imports: the CLI masks its very first error line with it.
"""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path
from typing import Iterable, Mapping
from urllib.parse import quote, quote_plus, unquote

MASK = "***"
# Variables that hold a password themselves (alembic.ini's password_env names are added by the caller).
PASSWORD_VARIABLES = ("PGPASSWORD", "PG_TENANT_DATABASE_ADMIN_PASSWORD")
URL_VARIABLES = ("CONTROL_DATABASE_URL",)
_MIN_SECRET = 3  # shorter ones would mask ordinary text and protect nothing

# user:PASSWORD@ in any postgres URL; greedy to the last '@' of the token, so an unencoded '@' or
# '/' in the password is masked whole.
_URL_USERINFO = re.compile(r"((?:postgres(?:ql)?(?:\+\w+)?)://[^\s:/@'\"]*:)[^\s'\"]*@")
# password=VALUE in a URL query or a libpq conninfo string (quoted or not); sslpassword too.
_KEYWORD = re.compile(r"(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&'\",;)]+)")


def is_plain_word(secret: str) -> bool:
    """A short password of letters only ("password", "secret") is also an ordinary word of messages."""
    return secret.isalpha() and len(secret) <= 12


def spellings(secret: str) -> set[str]:
    """The ways an error text may carry ``secret``: raw, percent-encoded, JSON- or repr-escaped."""
    forms = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret),
             json.dumps(secret)[1:-1], repr(secret)[1:-1],
             secret.replace("\\", "\\\\").replace("'", "\\'")}  # libpq conninfo quoting
    return {form for form in forms if form}


def mask(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every known secret and every password-shaped value replaced by ``***``.

    A plain-word password (see ``is_plain_word``) is masked where it stands as a password (in a
    URL, after ``password=`` or ``PASSWORD:``, quoted), not everywhere: masking every "password"
    would turn "password authentication failed" into nonsense.
    """
    if not text:
        return text
    for secret in sorted({s for s in secrets if s and len(s) >= _MIN_SECRET}, key=len, reverse=True):
        for form in sorted(spellings(secret), key=len, reverse=True):  # longest first: one may contain another
            if not is_plain_word(secret):
                text = text.replace(form, MASK)
                continue
            word = re.escape(form)
            text = re.sub(rf"(:){word}(@)", r"\1***\2", text)
            text = re.sub(rf"(?i)(password\s*[=:]\s*['\"]?){word}\b", r"\1***", text)
            text = re.sub(rf"(['\"]){word}(['\"])", r"\1***\2", text)
    text = _URL_USERINFO.sub(lambda m: m.group(0) if _placeholder(m.group(0)) else m.group(1) + MASK + "@", text)
    return _KEYWORD.sub(lambda m: m.group(1) + MASK, text)


def _placeholder(url_head: str) -> bool:
    # the tool's own hints show the shape: postgresql://user:password@host
    return url_head.lower().endswith(":password@")


def url_secrets(url: str) -> set[str]:
    """Every string of a URL that may be (part of) its password, however the URL was written.

    libpq ends the userinfo at the first '@' before the first '/'; a password pasted unencoded
    (``user:8812/Zq+Xa9@host``, ``user:a@b@host``) may end elsewhere, and then nobody can tell
    where: the text up to the last '@', and its pieces, are secrets too (what a misparse echoes).
    """
    found: set[str] = set()
    rest = url.strip().split("://", 1)[-1]
    authority = rest.split("/", 1)[0]
    candidates = []
    if "@" in authority:
        candidates.append(authority.split("@", 1)[0])
    if "@" in rest:
        candidates.append(rest.rsplit("@", 1)[0])
    ambiguous = len(set(candidates)) > 1 or authority.count("@") > 1 or ("@" in rest and "@" not in authority)
    for userinfo in candidates:
        if ":" in userinfo:
            password = userinfo.split(":", 1)[1]
            found |= {password, unquote(password)}
            if ambiguous:
                found |= {p for p in re.split(r"[/?#@:&=.]", password) if len(p) >= 4}
    query = rest.split("?", 1)[1] if "?" in rest else ""
    for match in re.finditer(r"(?i)(?:^|&)(?:ssl)?password=([^&]*)", query):
        found |= {match.group(1), unquote(match.group(1))}
    return {s for s in found if s}


def pgpass_secrets(env: Mapping[str, str]) -> set[str]:
    """The passwords of a ``.pgpass`` file (``PGPASSFILE``, else ``~/.pgpass``) libpq may use."""
    path = Path(env.get("PGPASSFILE") or Path(env.get("HOME") or Path.home()) / ".pgpass")
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return set()
    found = set()
    for line in lines:
        if line.lstrip().startswith("#"):
            continue
        fields = re.split(r"(?<!\\):", line, maxsplit=4)  # host:port:db:user:password, '\:' escapes
        if len(fields) == 5:
            found.add(re.sub(r"\\(.)", r"\1", fields[4]))
    return found


def known_secrets(env: Mapping[str, str] | None = None, variables: Iterable[str] = ()) -> set[str]:
    """Every password this process can learn from its environment (``.env`` included once loaded)."""
    env = os.environ if env is None else env
    names = (*PASSWORD_VARIABLES, *URL_VARIABLES, *variables, "PGPASSFILE", "HOME")
    return set(_known(tuple((name, env.get(name)) for name in names)))


@functools.lru_cache(maxsize=8)  # every printed line asks: read .pgpass once per environment
def _known(items: tuple[tuple[str, str | None], ...]) -> frozenset[str]:
    env = {name: value for name, value in items if value is not None}
    found: set[str] = set()
    for name, value in env.items():
        if name in URL_VARIABLES:
            found |= url_secrets(value)
        elif name not in ("PGPASSFILE", "HOME") and value:
            found.add(value)
    found |= pgpass_secrets(env)
    return frozenset(s for s in found if len(s) >= _MIN_SECRET)
