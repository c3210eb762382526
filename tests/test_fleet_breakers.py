"""The circuit breaker's rules on their own (no database): what counts, when it trips, what is retried."""

from __future__ import annotations

import pytest

from grapevine_alembic.fleet.breakers import Breakers
from grapevine_alembic.database.session.connection import ConnectionFailed
from grapevine_alembic.placement import BadServer, parse_server
from grapevine_alembic.settings import ConnectionSpec
from grapevine_alembic.database.state.target import Target

SPEC = ConnectionSpec("127.0.0.9", 5433, "u", None, "db_a")


def tenant(name: str) -> Target:
    return Target("tenant", SPEC.for_database(f"db_{name}"), name)


def failure(reason: str) -> ConnectionFailed:
    return ConnectionFailed(f"cannot connect: {reason}", transient=True, reason=reason)


def test_three_tenants_in_a_row_trip_it_and_the_rest_are_skipped():
    breakers = Breakers()
    for name in ("a", "b"):
        assert breakers.gave_up(tenant(name), failure("Connection refused")) == "Connection refused"
    assert breakers.down("127.0.0.9:5433") is None
    breakers.gave_up(tenant("c"), failure("Connection refused"))
    assert breakers.down("127.0.0.9:5433") == "Connection refused"
    guarded = breakers.guard(lambda target: "ran", lambda target, message, reason: message)
    assert guarded(tenant("d")) == "server 127.0.0.9:5433 unreachable: Connection refused"
    assert not breakers.may_retry(tenant("e"), failure("Connection refused"))


def test_a_tenant_that_connects_resets_the_count():
    breakers = Breakers()
    breakers.gave_up(tenant("a"), failure("timeout expired"))
    breakers.gave_up(tenant("b"), failure("timeout expired"))
    breakers.answered(tenant("c"))
    breakers.gave_up(tenant("d"), failure("timeout expired"))
    assert breakers.down("127.0.0.9:5433") is None


def test_the_server_saying_no_is_an_answer_not_a_strike():
    breakers = Breakers()
    for name in "abc":
        missing = ConnectionFailed("no db", transient=False, missing_database=True, reason="database x does not exist")
        assert breakers.gave_up(tenant(name), missing) is None
    assert breakers.down("127.0.0.9:5433") is None
    assert breakers.gave_up(tenant("d"), ValueError("a SQL error after connecting")) is None


def test_timeouts_are_retried_only_once_the_server_has_answered():
    breakers = Breakers()
    assert not breakers.may_retry(tenant("a"), failure("timeout expired"))
    assert breakers.may_retry(tenant("a"), failure("Connection refused"))  # a restart refuses: worth a retry
    breakers.answered(tenant("b"))
    assert breakers.may_retry(tenant("a"), failure("timeout expired"))


def test_a_failing_server_that_never_answered_gets_one_probe_at_a_time():
    breakers = Breakers()
    assert breakers.cap("127.0.0.9:5433", 10) == 10
    breakers.gave_up(tenant("a"), failure("timeout expired"))
    assert breakers.cap("127.0.0.9:5433", 10) == 1
    breakers.answered(tenant("b"))
    assert breakers.cap("127.0.0.9:5433", 10) == 10


@pytest.mark.parametrize("text, expected", [
    ("db2", ("db2", 5432)), ("db2.internal:6432", ("db2.internal", 6432)), ("[::1]:7000", ("::1", 7000)),
    ("[fe80::1]", ("fe80::1", 5432)), (" 127.0.0.2 ", ("127.0.0.2", 5432)),
])
def test_server_values(text, expected):
    assert parse_server(text, 5432) == expected


@pytest.mark.parametrize("text, message", [
    ("", "empty"), ("db 2", "expected host or host:port"), ("::1", "in brackets"), ("db:0", "1 to 65535"),
    ("db:65536", "1 to 65535"), ("db:x", "1 to 65535"), ("[::1", "IPv6"), ("user@db", "expected host"),
    ("-db", "expected host"), ("db:５４３２", "1 to 65535"),
])
def test_malformed_server_values(text, message):
    with pytest.raises(BadServer, match=message):
        parse_server(text, 5432)
