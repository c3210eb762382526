"""How long the tool waits on a network that went silent, and the libpq settings that bound it.

Two kinds of silence.  A path that drops packets is caught by TCP itself: client keepalives
and ``tcp_user_timeout`` on every connection (libpq parameters; a value in the URL's query
wins, e.g. ``?keepalives_idle=30&tcp_user_timeout=60000``), and the same keepalives asked of
the server for the tool's sessions.  A middlebox that keeps acknowledging and forwards
nothing (a hung proxy, pooler or load balancer) is invisible to TCP: there the watchdog
(``watchdog``) notices a statement whose answer is lost, and the server's
``idle_in_transaction_session_timeout`` releases the tenant's locks.

One number scales the tool's side, ``silence`` (``GRAPEVINE_SILENCE_TIMEOUT``, default 20 s):
how long a waiting connection may go without any sign of life from the server before it is
closed.  The server's idle-in-transaction bound follows it, ten seconds later.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ...errors import ConfigError

SILENCE_VARIABLE = "GRAPEVINE_SILENCE_TIMEOUT"
DEFAULT_SILENCE_S = 20.0

# libpq parameters on every connection the tool opens: a dead peer is noticed in about 25 s
# (10 s idle + 3 probes 5 s apart), data left unacknowledged for 30 s closes the connection.
CLIENT_KEEPALIVES = {
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": "30000",
}
# The same for the server's end of the tool's sessions (ignored on unix sockets).
SERVER_KEEPALIVES = (
    ("tcp_keepalives_idle", "10"),
    ("tcp_keepalives_interval", "5"),
    ("tcp_keepalives_count", "3"),
    ("tcp_user_timeout", "30000"),
)


@dataclass(frozen=True)
class Bounds:
    """The watchdog's timings, all derived from ``silence_s``."""

    silence_s: float = DEFAULT_SILENCE_S

    @property
    def probe_after_s(self) -> float:
        """A round trip waited on this long is watched: the server is asked what our backend does."""
        return max(1.0, self.silence_s / 4)

    @property
    def probe_timeout_s(self) -> float:
        """The longest wait for one answer on the watchdog's own connection."""
        return min(5.0, max(1.0, self.silence_s / 4))

    @property
    def idle_in_transaction_s(self) -> float:
        """The server ends a session of ours left idle in a transaction this long (its locks go with it)."""
        return self.silence_s + 10.0

    @property
    def lease_s(self) -> float:
        """The server ends a session of ours that holds a lease (the rollout record's lock) and says nothing
        for this long, idle or not: a lost node or a hung proxy releases the lease within it."""
        return self.silence_s + 10.0

    cancel_timeout_s: float = 2.0  # a cancel request unanswered this long: the socket is closed instead


def bounds_from_environment(env=None) -> Bounds:
    """``GRAPEVINE_SILENCE_TIMEOUT`` (seconds, > 0) or the default."""
    env = os.environ if env is None else env
    text = (env.get(SILENCE_VARIABLE) or "").strip()
    if not text:
        return Bounds()
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise ConfigError(f"{SILENCE_VARIABLE} must be a number of seconds greater than 0, not {text!r}")
    return Bounds(silence_s=value)


def with_keepalives(kwargs: dict) -> dict:
    """``kwargs`` for psycopg2.connect with the client keepalives added where the URL did not set them."""
    for key, value in CLIENT_KEEPALIVES.items():
        kwargs.setdefault(key, value)
    return kwargs


def server_settings(bounds: Bounds) -> list[tuple[str, str]]:
    """Session settings that bound the server's side: an abandoned transaction, a dead peer."""
    return [("idle_in_transaction_session_timeout", f"{int(bounds.idle_in_transaction_s * 1000)}ms"),
            *SERVER_KEEPALIVES]


def lease_settings(bounds: Bounds, server_version: int) -> list[tuple[str, str]]:
    """Session settings for a connection whose session-level lock is a lease: kept only while the tool speaks
    on it (PostgreSQL 14+: ``idle_session_timeout``; it must speak more often than ``lease_s``), and ended by
    the server on a dead peer (keepalives) or in an abandoned transaction."""
    pairs = server_settings(bounds)
    if server_version >= 140000:
        pairs.append(("idle_session_timeout", f"{int(bounds.lease_s * 1000)}ms"))
    return pairs
