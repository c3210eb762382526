"""What resolves a refused database is worded by the way in that shows it: the CLI's commands are the
CLI's (its tests assert them), the Python API names its own arguments and never a command line, and the
alembic road names alembic's command where there is one."""

from __future__ import annotations

import pg
from test_cli_out_of_order_files import HEAD, LATE, late, set_policy  # noqa: F401 (late: the fixture)
from test_cli_lost_version import HEAD as LOST_HEAD


def test_the_api_words_an_out_of_order_file_refusal_with_its_own_argument(late, pg_server):
    from grapevine_alembic.api import migrate_database

    url, folder = pg.url_for(pg_server, "db_acme"), late.migrations("tenant")
    refused = migrate_database(url, folder, retries=0, out_of_order="refuse")
    assert not refused.ok and "late" not in late.tables("db_acme")
    assert refused.error == (f"never applied here although older than the database's version {HEAD}"
                             f" (merged late, or its ledger row was removed): {LATE};"
                             f' run them with out_of_order="apply", or record {LATE[:14]} as applied')
    applied = migrate_database(url, folder, retries=0, out_of_order="apply")  # what the error says, pasted
    assert applied.ok, applied.error
    assert "late" in late.tables("db_acme")


def test_the_api_states_a_lost_version_without_a_command_line(late, pg_server):
    from grapevine_alembic.api import migrate_database

    [head_file] = late.migrations("tenant").glob(f"{LOST_HEAD}_*.sql")
    head_file.unlink()  # a branch switch
    lost = migrate_database(pg.url_for(pg_server, "db_acme"), late.migrations("tenant"), retries=0)
    assert not lost.ok
    assert lost.error == (f"the database is at {LOST_HEAD}, which no migration file has (its file deleted, or"
                          " another branch's?); once checked, move it back to the newest applied version that has"
                          " a file")


def test_the_alembic_road_words_an_out_of_order_file_refusal_as_an_alembic_command(late):
    set_policy(late, "refuse")
    refused = late.alembic("-n", "tenant", "-x", "tenant=acme", "upgrade", "head")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    command = "alembic -c alembic.ini -n tenant -x tenant=acme -x out_of_order=apply upgrade head"
    assert f"run them with: {command}" in refused.stderr, refused.stderr
    assert "grapevine-migrations" not in refused.stderr
    pasted = late.alembic(*command.split()[3:])
    assert pasted.returncode == 0, pasted.stderr
    assert "late" in late.tables("db_acme")
