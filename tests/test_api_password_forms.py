"""The Python API never hands back or logs a password, whatever form the URL carries it in."""

from __future__ import annotations

import logging
from urllib.parse import quote

import pytest

PASSWORD = "Gv8812/Zq+Xa9w"
PIECES = ("Gv8812", "Xa9w")


def _base(server) -> str:
    return f"postgresql://{quote(server.superuser, safe='')}"


def test_query_password_is_masked_in_the_error_and_the_log(project, pg_server, caplog):
    from grapevine_alembic.api import migrate_database

    url = f"{_base(pg_server)}@{pg_server.host}:{pg_server.port}/no_such_db_api?password={quote(PASSWORD, safe='')}"
    with caplog.at_level(logging.INFO, logger="grapevine_alembic"):
        result = migrate_database(url, project.migrations("tenant"), retries=0)
    # not the server's password: the connection error carries the URL, which is the point
    assert not result.ok and result.error.startswith("cannot connect to postgresql://"), result.error
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "no_such_db_api" in logged  # the failure was logged, masked
    for text in (result.error, logged):
        for leak in (PASSWORD, quote(PASSWORD, safe=""), *PIECES):
            assert leak not in text, text


@pytest.mark.parametrize("userinfo", [PASSWORD, "Hy7w@Jw3k:Pqz8"], ids=["slash", "at"])
def test_unencoded_password_is_refused_without_echoing_it(project, pg_server, userinfo):
    from grapevine_alembic.api import migrate_database

    url = f"{_base(pg_server)}:{userinfo}@{pg_server.host}:{pg_server.port}/ctl"
    with pytest.raises(ValueError) as raised:
        migrate_database(url, project.migrations("tenant"), retries=0)
    message = str(raised.value)
    assert "percent-encode the password" in message
    for piece in [userinfo, *(p for p in userinfo.replace("/", " ").replace("@", " ").replace(":", " ").split()
                              if len(p) >= 4)]:
        assert piece not in message, message
