"""``check --changed-since REV``: only the files a branch adds or edits are judged (a git fixture, no database)."""

from __future__ import annotations

import subprocess

import pytest

from checkproject import CheckProject

OLD_RISKY = "CREATE INDEX users_email_idx ON users (email);\n"  # a warning, merged long ago


@pytest.fixture
def repo(tmp_path):
    """A project whose main branch holds old files with warnings; the test works on branch `feature`."""
    proj = CheckProject(tmp_path / "proj")
    proj.write("20250101000000_users.sql", "CREATE TABLE users (id bigint, email text);\n")
    proj.write("20250102000000_index_email.sql", OLD_RISKY)
    proj.write("20250103000000_index_id.sql", "CREATE INDEX users_id_idx ON users (id);\n")
    proj.git("init", "-q", "-b", "main")
    proj.git("add", "-A")
    proj.git("commit", "-q", "-m", "history")
    proj.git("checkout", "-q", "-b", "feature")
    return proj


def _named_files(stdout: str) -> set[str]:
    return {line.split(": ", 2)[1].split(":")[0] for line in stdout.splitlines() if line.startswith(("error", "warning"))}


def test_the_old_files_do_carry_warnings(repo):
    assert repo.cli("check", "--strict").returncode == 1


def test_one_new_risky_file_fails_strict_naming_only_that_file(repo):
    repo.write("20250201000000_add_unique_email.sql", "ALTER TABLE users ADD CONSTRAINT u UNIQUE (email);\n")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "risky")
    result = repo.cli("check", "--strict", "--changed-since", "main")
    assert result.returncode == 1, result.stdout + result.stderr
    assert _named_files(result.stdout) == {"migrations/tenant/20250201000000_add_unique_email.sql"}
    assert "[disallowed-unique-constraint]" in result.stdout
    assert result.stdout.splitlines()[-1].startswith("checked 2 control, 4 tenant migration file(s) (1 changed since main)")


def test_a_clean_change_passes_although_old_files_carry_warnings(repo):
    repo.write("20250201000000_add_bio.sql", "ALTER TABLE users ADD COLUMN bio text;\n")  # not committed yet
    result = repo.cli("check", "--strict", "--changed-since", "main")
    assert result.returncode == 0, result.stdout
    assert "0 error(s), 0 warning(s)" in result.stdout
    doc = repo.check_json("--strict", "--changed-since", "main")
    assert doc["judged"] == 1 and doc["changed_since"] == "main" and doc["findings"] == []


def test_an_edited_old_file_is_an_error(repo):
    path = repo.root / "migrations" / "tenant" / "20250101000000_users.sql"
    path.write_text(path.read_text() + "-- tidy\n")
    doc = repo.check_json("--changed-since", "main")
    assert doc["exit"] == 1
    [error] = [f for f in doc["findings"] if f["level"] == "error"]
    assert (error["code"], error["file"]) == ("edited-after-merge", "migrations/tenant/20250101000000_users.sql")
    assert "already in main" in error["message"] and error["fix"]


def test_a_new_file_older_than_the_newest_at_the_base_is_an_error(repo):
    repo.write("20250102120000_late.sql", "ALTER TABLE users ADD COLUMN bio text;\n")
    doc = repo.check_json("--changed-since", "main")
    [error] = [f for f in doc["findings"] if f["level"] == "error"]
    assert error["code"] == "older-than-merged" and error["file"] == "migrations/tenant/20250102120000_late.sql"
    assert "20250103000000" in error["message"]


def test_the_newest_file_on_the_base_counts_even_if_merged_after_the_branch_started(repo):
    repo.write("20250201000000_mine.sql", "ALTER TABLE users ADD COLUMN bio text;\n")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "mine")
    repo.git("checkout", "-q", "main")
    repo.write("20250301000000_theirs.sql", "ALTER TABLE users ADD COLUMN nick text;\n")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "theirs, merged first")
    repo.git("checkout", "-q", "feature")
    doc = repo.check_json("--changed-since", "main")
    # only my file is judged (theirs is not a change of this branch), and it now runs out of order
    assert [(f["code"], f["file"]) for f in doc["findings"]] == [
        ("older-than-merged", "migrations/tenant/20250201000000_mine.sql")]


def test_a_misnamed_new_file_is_judged_and_an_old_one_is_not(repo):
    (repo.root / "migrations" / "tenant" / "2025010_old_typo.sql").write_text("SELECT 1;\n")
    repo.git("add", "-A")
    repo.git("commit", "-q", "--amend", "--no-edit")
    repo.git("branch", "-f", "main", "HEAD")
    repo.write("20250201000000_bad_name.SQL", "SELECT 1;\n")
    doc = repo.check_json("--changed-since", "main")
    assert [(f["code"], f["file"]) for f in doc["findings"]] == [
        ("file-name", "migrations/tenant/20250201000000_bad_name.SQL")]


def test_control_and_tenant_are_judged_alike(repo):
    repo.write("20990101000000_index.sql", "CREATE INDEX tenants_name ON tenants (name);\n", env="control")
    result = repo.cli("check", "--changed-since", "main", "--format", "github")
    assert result.returncode == 0
    assert result.stdout.startswith(
        "::warning file=migrations/control/20990101000000_index.sql,line=1,title=require-concurrent-index-creation::")


@pytest.mark.parametrize("rev, words", [
    ("no-such-branch", "--changed-since: unknown revision 'no-such-branch'"),
    ("HEAD~5", "--changed-since: unknown revision 'HEAD~5'"),
    ("", "--changed-since: unknown revision ''"),
])
def test_a_bad_revision_is_one_line(repo, rev, words):
    result = repo.cli("check", "--changed-since", rev)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == f"error: {words}"


def test_outside_git_is_one_line(tmp_path):
    proj = CheckProject(tmp_path / "plain")
    result = proj.cli("check", "--changed-since", "main", env={"GIT_CEILING_DIRECTORIES": str(tmp_path)})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"error: --changed-since: {proj.root} is not in a git repository"


def test_a_project_in_a_subfolder_of_the_repository(tmp_path):
    proj = CheckProject(tmp_path / "repo" / "db")
    proj.write("20250101000000_users.sql", OLD_RISKY)
    (tmp_path / "repo" / "README").write_text("app\n")
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=tmp_path / "repo", check=True)
    proj.git("add", "-A", "..")
    proj.git("commit", "-q", "-m", "history")
    proj.write("20250201000000_index.sql", "CREATE INDEX users_id_idx ON users (id);\n")
    (tmp_path / "repo" / "README").write_text("app, changed\n")
    result = proj.cli("check", "--changed-since", "main", "--format", "github")
    lines = result.stdout.splitlines()
    assert lines[0].startswith("::warning file=db/migrations/tenant/20250201000000_index.sql,line=1,")
    assert len(lines) == 2 and "(1 changed since main)" in lines[1]
