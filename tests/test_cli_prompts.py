"""Confirmation prompts come after the targets are resolved and name what they change; declining
and Ctrl-C at the prompt both exit 2 with nothing changed.  Run on a pseudo-terminal."""

from __future__ import annotations

import pytest
from terminal import on_terminal as _on_terminal


@pytest.fixture
def fleet(project):
    project.migrate_control()
    project.add_tenant("acme")
    project.add_tenant("globex")
    return project


def test_apply_all_names_the_databases_and_heads_before_asking(fleet):
    run = _on_terminal(fleet, "mark --DANGEROUS-apply-all --all-tenants", "n\n")
    screen = run.screen
    assert "in 2 database(s): db_acme, db_globex?" in screen and "tenant head 20250201080000" in screen, screen
    assert run.code == 2 and "nothing was changed" in screen
    assert fleet.version("db_acme") is None


def test_an_unknown_tenant_fails_before_the_question(fleet):
    run = _on_terminal(fleet, "mark --DANGEROUS-apply-all --tenant nope", "y\n")
    screen = run.screen
    assert "unknown tenant nope" in screen and "[y/N]" not in screen and run.code == 2, screen


@pytest.mark.parametrize("args", ["mark --DANGEROUS-apply-all --tenant acme", "reset --tenant acme"])
def test_ctrl_c_at_the_prompt_exits_like_declining(fleet, args):
    assert fleet.cli("migrate", "--tenant", "acme").returncode == 0
    run = _on_terminal(fleet, args, "\x03")
    screen = run.screen
    assert run.code == 2 and "nothing was changed" in screen and "Traceback" not in screen, screen
    assert fleet.version("db_acme") == "20250201080000"
    assert "users" in fleet.tables("db_acme")
