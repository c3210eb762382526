"""The default bounds are what the docs promise.

The tests that wait on a stall, an outage or a hung server pass small values (a few seconds)
so that they answer quickly; these checks keep the defaults they no longer run with honest.
No server needed: they read the values the CLI, the API and the jobs start from.
"""

from __future__ import annotations

import inspect

from grapevine_alembic import api
from grapevine_alembic.cli.commands.migrate_command import migrate
from grapevine_alembic.defaults import DEFAULTS
from grapevine_alembic.database.jobs.runner import RunOptions
from grapevine_alembic.database.session.connection import DEFAULT_CONNECT_TIMEOUT
from grapevine_alembic.database.session.netbounds import Bounds, bounds_from_environment


def test_silence_bounds_default_to_what_the_docs_say():
    # docs/guarantees.md: probe after 5 s (each answer within 5 s), lost after 20 s, the server's
    # idle-in-transaction bound 30 s
    bounds = bounds_from_environment({})
    assert bounds == Bounds()
    assert (bounds.silence_s, bounds.probe_after_s, bounds.probe_timeout_s, bounds.idle_in_transaction_s) == (
        20.0, 5.0, 5.0, 30.0)
    assert bounds_from_environment({"GRAPEVINE_SILENCE_TIMEOUT": "4"}).idle_in_transaction_s == 14.0


def test_retry_window_and_connect_timeout_default_to_what_the_docs_say():
    # docs/commands.md: --retry-window 60; docs/guarantees.md: a connect timeout of 10 s
    options = {param.name: param.default for param in migrate.params}
    assert options["retry_window"] == 60.0 == DEFAULTS.retry_window
    assert RunOptions(lock_key=1).retry_window_s == 60.0
    assert inspect.signature(api.migrate_database).parameters["retry_window"].default == 60
    assert DEFAULT_CONNECT_TIMEOUT == 10 == RunOptions(lock_key=1).connect_timeout_s
