"""What a person reads: one notice a line, each behind tenant once, versions as they are, one line
for a stopped rollout, an empty fleet said so, colour on a terminal, help on every option."""

from __future__ import annotations

import re

import click
from terminal import on_terminal


def _fleet(project, ids, chain: dict[str, str]):
    project.migrate_control()
    for tenant_id in ids:
        project.add_tenant(tenant_id)
    project.clear("tenant")
    for name, sql in chain.items():
        project.write("tenant", name, sql)


CHATTY = ("DO $$\nBEGIN\n  FOR i IN 1..400 LOOP\n"
          "    RAISE NOTICE 'row % of a long backfill with a message long enough to be written in pieces', i;\n"
          "  END LOOP;\nEND\n$$;\n")


def test_notices_from_parallel_tenants_never_run_together(project):
    ids = [f"n{i}" for i in range(8)]
    _fleet(project, ids, {"20240101000000_chatty.sql": CHATTY})
    result = project.cli("migrate", "--all-tenants", "--max-parallel", "8")
    assert result.returncode == 0, result.stderr
    pattern = re.compile(r"^db_n\d 20240101000000: NOTICE: row \d+ of a long backfill with a message long enough"
                         r" to be written in pieces$")
    lines = result.stderr.splitlines()
    assert len(lines) == 8 * 400
    assert all(pattern.match(line) for line in lines), next(line for line in lines if not pattern.match(line))


def test_notices_stay_whole_lines_under_the_progress_bar_on_a_terminal(project):
    """On a terminal the progress bar captures stderr; lines written in pieces from several threads
    used to run together there ("...pieces db_n3 ...")."""
    ids = [f"n{i}" for i in range(8)]
    _fleet(project, ids, {"20240101000000_chatty.sql": CHATTY})
    run = on_terminal(project, "migrate --all-tenants --max-parallel 8")
    assert run.code == 0, run.screen[-2000:]
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", run.screen)
    whole = re.findall(r"db_n\d 20240101000000: NOTICE: row \d+ of a long backfill with a message long enough"
                       r" to be written in pieces\n", text)
    assert len(whole) == 8 * 400, [line for line in text.splitlines() if "NOTICE" in line and line.count("NOTICE") > 1][:3]


def test_default_status_lists_each_behind_tenant_once(project):
    ids = [f"b{i}" for i in range(5)]
    _fleet(project, ids, {"20240101000000_a.sql": "CREATE TABLE a (x int);\n"})
    assert project.cli("migrate", "--all-tenants").returncode == 0
    project.write("tenant", "20240102000000_b.sql", "CREATE TABLE b (x int);\n")
    status = project.cli("status", "--exit-code")
    assert status.returncode == 3
    for tenant_id in ids:
        mentions = [line for line in status.stdout.splitlines() if re.search(rf"\b{tenant_id}\b", line)]
        assert len(mentions) == 1 and "20240102000000" in mentions[0], status.stdout


def test_canary_failure_is_one_line_and_skipped_tenants_show_their_version(project):
    ids = ["c1", "c2", "c3", "c4"]
    _fleet(project, ids, {"20240101000000_a.sql": "CREATE TABLE a (x int);\n"})
    assert project.cli("migrate", "--tenant", "c2", "--tenant", "c3").returncode == 0  # c4 stays empty
    project.write("tenant", "20240102000000_picky.sql",
                  "DO $$ BEGIN IF current_database() = 'db_c1' THEN RAISE EXCEPTION 'no'; END IF; END $$;\n")
    result = project.cli("migrate", "--all-tenants", "--canary", "1")
    assert result.returncode == 1
    assert "canary failed, 3 tenant(s) not started" in result.stderr
    rows = {tenant: line.split() for tenant, line in _table_rows(result.stdout).items()}
    assert rows["c2"][3:] == ["20240101000000", "skipped"] and rows["c3"][3:] == ["20240101000000", "skipped"]
    assert rows["c4"][3:] == ["(none)", "skipped"], result.stdout
    assert project.version("db_c2") == "20240101000000"  # read, not migrated


def test_max_failures_is_one_line(project):
    ids = [f"m{i}" for i in range(6)]
    _fleet(project, ids, {"20240101000000_bad.sql": "SELECT 1/0;\n"})
    result = project.cli("migrate", "--all-tenants", "--max-failures", "2", "--max-parallel", "1")
    assert result.returncode == 1
    assert "2 failure(s) reached --max-failures 2, 4 tenant(s) not started" in result.stderr


def test_unreachable_and_missing_databases_are_named_not_none(project):
    _fleet(project, ["u1"], {"20240101000000_a.sql": "CREATE TABLE a (x int);\n"})
    project.add_tenant("ghost", create_db=False)
    missing = project.cli("migrate", "--all-tenants")
    rows = _table_rows(missing.stdout)
    assert " missing " in rows["ghost"] and "(none)" not in rows["ghost"], missing.stdout
    unreachable = project.cli("migrate", "--all-tenants", "--retries", "0",
                              env={"PG_TENANT_DATABASE_PORT": "1"})
    rows = _table_rows(unreachable.stdout)
    assert " unreachable " in rows["u1"] and "(none)" not in rows["u1"], unreachable.stdout


def _table_rows(stdout: str) -> dict[str, str]:
    """The summary table's rows by tenant (the error lines under the table start the same way)."""
    rows = [line.split() for line in stdout.splitlines()]
    return {cells[0]: " ".join(cells) for cells in rows if len(cells) > 1 and cells[1] == f"db_{cells[0]}"}


def test_an_empty_fleet_says_so(project):
    project.migrate_control()
    status = project.cli("status", "--all-tenants")
    assert status.returncode == 0
    assert "tenants: none provisioned" in status.stdout
    migrate = project.cli("migrate", "--all-tenants")
    assert migrate.returncode == 0 and "no tenants" in migrate.stderr


def test_failed_is_red_and_pending_yellow_on_a_terminal_only(project):
    _fleet(project, ["k1", "k2"], {"20240101000000_a.sql": "CREATE TABLE a (x int);\n"})
    assert project.cli("migrate", "--tenant", "k1").returncode == 0
    project.write("tenant", "20240102000000_bad.sql", "SELECT 1/0;\n")

    status = on_terminal(project, "status", cols=120).screen
    assert re.search(r"\x1b\[[0-9;]*33m[^\x1b]*pending", status), repr(status)
    failed = on_terminal(project, "migrate --all-tenants", cols=120).screen
    assert re.search(r"\x1b\[[0-9;]*31m[^\x1b]*FAILED", failed), repr(failed)
    piped = project.cli("migrate", "--all-tenants")
    assert "FAILED" in piped.stdout and "\x1b[" not in piped.stdout + piped.stderr


def test_every_option_has_help_text():
    from grapevine_alembic.cli.main import cli

    def walk(command, path):
        for param in command.params:
            if isinstance(param, click.Option) and param.name not in ("help", "version"):
                yield path, param
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, f"{path} {name}")

    missing = [f"{path} {param.opts[0]}" for path, param in walk(cli, "grapevine-migrations") if not param.help]
    assert missing == []
