"""What resolves a refused database is worded by the way in that shows it: the CLI's commands are the
CLI's (its tests assert them), the Python API names its own arguments and never a command line, and the
alembic road names alembic's command where there is one."""

from __future__ import annotations

import json

import pytest

import pg
from test_cli_out_of_order_files import HEAD, LATE, late, set_policy  # noqa: F401 (late: the fixture)
from test_cli_lost_version import HEAD as LOST_HEAD
from test_cli_lost_version import migrated  # noqa: F401 (the fixture)


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


# ---- timeouts: each road names its own knob --------------------------------------------------------

HELD = "20260101000000_touch_users.sql"  # needs the lock another session holds on users
SLOW = "20260102000000_slow_backfill.sql"  # outlasts a short statement timeout
CLI_LOCK_HINT = ("HINT: another session held a lock this statement needed: raise --lock-timeout,"
                 " or run when that transaction has ended")
CLI_TIMEOUT_HINT = "HINT: raise --timeout (seconds per statement; 0 = no limit); for a long backfill, split it into batches"


@pytest.fixture
def timing_out(migrated):
    """acme at the head; then a file that waits for users' lock and one that sleeps past a short statement timeout."""
    migrated.write("tenant", HELD, "ALTER TABLE users ADD COLUMN nickname text;\n")
    migrated.write("tenant", SLOW, "SELECT pg_sleep(3);\n")
    return migrated


def _timed_out(project, run) -> tuple[str, str]:
    """What ``run(lock_timeout, timeout)`` reports, first with users locked by another session, then, the lock
    released, with the sleep past a short statement timeout."""
    holder = pg.connect(project.server, "db_acme")
    try:
        holder.cursor().execute("BEGIN; LOCK TABLE users IN ACCESS SHARE MODE")
        locked = run("0.2", "300")
    finally:
        holder.close()
    assert "lock timeout" in locked, locked
    assert project.version("db_acme") == LOST_HEAD  # nothing of the held file committed
    slow = run("5", "0.5")
    assert "statement timeout" in slow, slow
    assert project.version("db_acme") == HELD[:14]  # the held file went in once the lock was free; the sleep not
    return locked, slow


def _hints_name_only(locked: str, slow: str, lock_knob: str, timeout_knob: str, *absent: str) -> None:
    """The two HINT lines name this road's knobs (the rest of the hint is the same on every road), and no other."""
    assert (f"HINT: another session held a lock this statement needed: raise {lock_knob}, or run when that"
            " transaction has ended") in locked, locked
    assert (f"HINT: raise {timeout_knob} (seconds per statement; 0 = no limit); for a long backfill, split it into"
            " batches") in slow, slow
    for text in absent:
        assert text not in locked + slow, (text, locked, slow)


def test_the_cli_names_its_own_timeout_flags_and_not_alembics(timing_out):
    def run(lock_timeout: str, timeout: str) -> str:
        result = timing_out.cli("migrate", "--tenant", "acme", "--lock-timeout", lock_timeout, "--timeout", timeout,
                                "--retries", "0", "--json")
        assert result.returncode == 1, result.stdout + result.stderr
        [db] = json.loads(result.stdout)["databases"]
        (timing_out.root / "run.json").write_text(result.stdout)
        summary = timing_out.cli("summary", "run.json")  # the GitHub summary of that document
        assert db["error"].splitlines()[-1].strip() in summary.stdout, summary.stdout
        return db["error"]

    locked, slow = _timed_out(timing_out, run)
    assert locked.endswith("\n  " + CLI_LOCK_HINT) and slow.endswith("\n  " + CLI_TIMEOUT_HINT), (locked, slow)
    _hints_name_only(locked, slow, "--lock-timeout", "--timeout", "-x", "alembic", "argument")
    shown = timing_out.cli("migrate", "--tenant", "acme", "--timeout", "0.5", "--retries", "0")  # the table's lines
    assert shown.returncode == 1 and CLI_TIMEOUT_HINT in shown.stdout and "-x" not in shown.stdout, shown.stdout


def test_the_alembic_road_names_its_own_x_arguments_and_not_the_clis_flags(timing_out):
    def run(lock_timeout: str, timeout: str) -> str:
        result = timing_out.alembic("-n", "tenant", "-x", "tenant=acme", "-x", f"lock_timeout={lock_timeout}",
                                    "-x", f"timeout={timeout}", "-x", "retries=0", "upgrade", "head")
        assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
        return result.stderr

    _hints_name_only(*_timed_out(timing_out, run), "-x lock_timeout=S", "-x timeout=S", "--lock-timeout", "--timeout",
                     "grapevine-migrations")


def test_the_api_names_its_own_timeout_arguments_and_no_command_line(timing_out, pg_server):
    from grapevine_alembic.api import migrate_database, migrate_fleet

    url, folder = pg.url_for(pg_server, "db_acme"), timing_out.migrations("tenant")
    fleet = {}

    def run(lock_timeout: str, timeout: str) -> str:
        if not fleet:  # the lock timeout through migrate_database, the statement timeout through migrate_fleet
            fleet["used"] = True
            result = migrate_database(url, folder, lock_timeout=float(lock_timeout), timeout=float(timeout),
                                      retries=0)
            assert not result.ok
            return result.error
        rollout = migrate_fleet(timing_out.root, control_url=timing_out.env["CONTROL_DATABASE_URL"], control=False,
                                tenants=["acme"], lock_timeout=float(lock_timeout), timeout=float(timeout), retries=0)
        [db] = rollout.databases
        assert not rollout.ok and not db.ok
        return db.error

    _hints_name_only(*_timed_out(timing_out, run), "the lock_timeout= argument", "the timeout= argument",
                     "--lock-timeout", "--timeout", "-x")
