"""``check`` with Squawk's rules: every rule left on fires, the moot ones never do, suppression, formats.

No database: ``check`` is run as a subprocess on a scratch project (``checkproject``).
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys

import pytest

from checkproject import BIN, REPO, CheckProject, codes_by_file
from grapevine_alembic.files.hazards import RULES_MOOT_ON_NEW_TABLES

SQUAWK = str(BIN / "squawk")


@pytest.fixture
def proj(tmp_path):
    return CheckProject(tmp_path / "proj")


# Every rule of squawk-cli 2.70 that is on by default and left on by check: a migration that
# triggers it on a table the file did not create (one file per rule).
RULES_LEFT_ON = {
    "adding-field-with-default": "ALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid();",
    "adding-foreign-key-constraint": "ALTER TABLE tasks ADD CONSTRAINT tasks_user_fk FOREIGN KEY (user_id) REFERENCES users (id);",
    "adding-not-nullable-field": "ALTER TABLE users ALTER COLUMN email SET NOT NULL;",
    "adding-required-field": "ALTER TABLE users ADD COLUMN plan text NOT NULL;",
    "adding-serial-primary-key-field": "ALTER TABLE users ADD PRIMARY KEY (id);",
    "ban-alter-domain-with-add-constraint": "ALTER DOMAIN email ADD CONSTRAINT email_at CHECK (VALUE LIKE '%@%');",
    "ban-alter-identity": "ALTER TABLE users ALTER COLUMN id DROP IDENTITY;",
    "ban-char-field": "CREATE TABLE codes (code char(4));",
    "ban-create-domain-with-constraint": "CREATE DOMAIN email AS text CHECK (VALUE LIKE '%@%');",
    "ban-drop-column": "ALTER TABLE users DROP COLUMN nickname;",
    "ban-drop-constraint": "ALTER TABLE users DROP CONSTRAINT users_email_key;",
    "ban-drop-database": "DROP DATABASE legacy;",
    "ban-drop-domain": "DROP DOMAIN email;",
    "ban-drop-extension": "DROP EXTENSION pgcrypto;",
    "ban-drop-function": "DROP FUNCTION slugify(text);",
    "ban-drop-generated-expression": "ALTER TABLE users ALTER COLUMN slug DROP EXPRESSION;",
    "ban-drop-not-null": "ALTER TABLE users ALTER COLUMN email DROP NOT NULL;",
    "ban-drop-schema": "DROP SCHEMA archive;",
    "ban-drop-sequence": "DROP SEQUENCE invoice_numbers;",
    "ban-drop-table": "DROP TABLE sessions;",
    "ban-drop-type": "DROP TYPE mood;",
    "ban-drop-view": "DROP VIEW open_tasks;",
    "ban-duplicate-column-assignments": "UPDATE users SET email = 'a', email = 'b';",
    "ban-set-schema": "ALTER TABLE users SET SCHEMA archive;",
    "ban-truncate-cascade": "TRUNCATE users CASCADE;",
    "changing-column-type": "ALTER TABLE users ALTER COLUMN email TYPE varchar(320);",
    "constraint-missing-not-valid": "ALTER TABLE users ADD CONSTRAINT email_at CHECK (email LIKE '%@%');",
    "disallowed-unique-constraint": "ALTER TABLE users ADD CONSTRAINT users_email_unique UNIQUE (email);",
    "identifier-too-long": "CREATE TABLE " + "a" * 70 + " (id bigint);",
    "prefer-bigint-over-int": "CREATE TABLE counters (n integer);",
    "prefer-bigint-over-smallint": "CREATE TABLE counters (n smallint);",
    "prefer-identity": "CREATE TABLE counters (id bigserial);",
    # robustness matters only where a failure leaves earlier statements applied: outside a transaction
    "prefer-robust-stmts": "-- grapevine: no-transaction\nCREATE INDEX CONCURRENTLY users_email_idx ON users (email);",
    "prefer-text-field": "CREATE TABLE notes (body varchar(100));",
    "prefer-timestamp-tz": "CREATE TABLE events (at timestamp);",
    "renaming-column": "ALTER TABLE users RENAME COLUMN email TO mail;",
    "renaming-object": "ALTER VIEW open_tasks RENAME TO tasks_open;",
    "renaming-table": "ALTER TABLE users RENAME TO people;",
    "require-concurrent-index-creation": "CREATE INDEX users_email_idx ON users (email);",
    "require-concurrent-index-deletion": "DROP INDEX IF EXISTS users_email_idx;",
    "require-concurrent-partition-detach": "ALTER TABLE events DETACH PARTITION events_2024;",
    "require-concurrent-reindex": "REINDEX TABLE users;",
    "require-enum-value-ordering": "ALTER TYPE mood ADD VALUE 'calm';",
}

# The rules check leaves out (squawk.MOOT_RULES): a file that would trigger each in plain Squawk.
MOOT_RULES = {
    "require-lock-timeout": "ALTER TABLE users ADD COLUMN bio text;",
    "require-statement-timeout": "ALTER TABLE users ADD COLUMN bio text;",
    "transaction-nesting": "BEGIN;\nBEGIN;\nSELECT 1;\nCOMMIT;\n",
    "ban-uncommitted-transaction": "BEGIN;\nSELECT 1;\n",
    "ban-concurrent-index-creation-in-transaction": "BEGIN;\nCREATE INDEX CONCURRENTLY i ON users (email);\nCOMMIT;\n",
}

# Off by default in squawk-cli 2.70 (opt-in with included_rules in .squawk.toml).
OPT_IN_RULES = [
    "ban-add-column", "ban-add-composite-attribute", "ban-add-enum-value", "ban-alter-database-options",
    "ban-alter-extension", "ban-alter-function-options", "ban-alter-generated-expression",
    "ban-alter-policy-condition", "ban-alter-policy-roles", "ban-alter-role-options", "ban-alter-row-level-security",
    "ban-alter-sequence-values", "ban-alter-system-options", "ban-alter-view-options", "ban-create-policy",
    "ban-detach-inheritance", "ban-disable-trigger", "ban-drop-index", "ban-drop-policy", "ban-new-write-restriction",
    "ban-replace-view-function", "ban-replica-identity", "ban-revoke", "ban-set-default", "require-table-schema",
    "require-timeout-settings",
]


def _file_name(index: int, rule: str) -> str:
    return f"2099{index // 28 + 1:02d}{index % 28 + 1:02d}000000_{rule.replace('-', '_')}.sql"


@pytest.fixture(scope="module")
def all_rules_run(tmp_path_factory):
    """One check over a project holding one file per rule (left on, and moot)."""
    proj = CheckProject(tmp_path_factory.mktemp("rules") / "proj")
    rules = {**RULES_LEFT_ON, **MOOT_RULES}
    for index, (rule, sql) in enumerate(rules.items()):
        proj.write(_file_name(index, rule), sql)
    return proj, proj.check_json(), {rule: _file_name(i, rule) for i, rule in enumerate(rules)}


@pytest.mark.parametrize("rule", RULES_LEFT_ON)
def test_every_rule_left_on_fires_through_check(all_rules_run, rule):
    _, doc, files = all_rules_run
    [finding] = [f for f in doc["findings"] if f["code"] == rule and f["file"].endswith(files[rule])][:1]
    assert finding["level"] == "warning" and finding["source"] == "squawk"
    assert finding["line"] >= 1 and finding["message"] and finding["fix"]
    assert finding["file"] == f"migrations/tenant/{files[rule]}"


@pytest.mark.parametrize("rule", MOOT_RULES)
def test_moot_rules_never_show(all_rules_run, rule):
    proj, doc, files = all_rules_run
    assert all(f["code"] not in MOOT_RULES for f in doc["findings"]), doc["findings"]
    assert rule in doc["squawk"]["excluded_rules"]
    # plain Squawk does report it on the same file: the exclusion is what keeps it out
    raw = subprocess.run([SQUAWK, "--reporter", "json", f"migrations/tenant/{files[rule]}"], cwd=proj.root,
                         capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert rule in {item["rule_name"] for item in json.loads(raw.stdout)}


def test_transaction_shape_is_reported_by_check_itself(all_rules_run):
    _, doc, files = all_rules_run
    by_file = codes_by_file(doc)
    expected = {
        "transaction-nesting": {"nested-begin"},  # runs as the previous tool ran it: a warning of ours
        "ban-uncommitted-transaction": {"begin-without-commit"},
        "ban-concurrent-index-creation-in-transaction": {"parse"},  # PostgreSQL refuses it: an error
    }
    for rule, codes in expected.items():
        assert by_file[files[rule]] == codes, rule


def test_rule_catalogue_matches_the_installed_squawk(tmp_path):
    version = subprocess.run([SQUAWK, "--version"], capture_output=True, text=True).stdout
    assert re.fullmatch(r"squawk 2\.70\.\d+\s*", version), version  # the tables above are for 2.70
    empty = tmp_path / "empty.sql"
    empty.write_text("SELECT 1;\n")
    for rule in [*RULES_LEFT_ON, *MOOT_RULES, *OPT_IN_RULES]:
        known = subprocess.run([SQUAWK, "--reporter", "json", "--exclude", rule, str(empty)],
                               capture_output=True, text=True, stdin=subprocess.DEVNULL)
        assert known.returncode == 0, (rule, known.stderr)
    bogus = subprocess.run([SQUAWK, "--exclude", "no-such-rule", str(empty)], capture_output=True, text=True)
    assert bogus.returncode != 0


def test_opt_in_rules_stay_off_unless_the_project_includes_them(proj):
    proj.write("20990101000000_policy.sql", "CREATE POLICY own_rows ON tasks USING (true);\n")
    assert "ban-create-policy" not in codes_by_file(proj.check_json()).get("20990101000000_policy.sql", set())
    (proj.root / ".squawk.toml").write_text('included_rules = ["ban-create-policy"]\n')
    assert "ban-create-policy" in codes_by_file(proj.check_json())["20990101000000_policy.sql"]


def test_pg_version_from_squawk_toml_is_honoured(proj):
    proj.write("20990101000000_vacuum.sql", "VACUUM FULL users;\n")
    assert "prefer-repack" not in codes_by_file(proj.check_json()).get("20990101000000_vacuum.sql", set())
    (proj.root / ".squawk.toml").write_text('pg_version = "19"\n')
    assert "prefer-repack" in codes_by_file(proj.check_json())["20990101000000_vacuum.sql"]


# ---- configured from how the runner runs each file ---------------------------------------------


def test_robust_statements_are_asked_for_only_outside_a_transaction(proj):
    plain = "ALTER TABLE users ADD COLUMN bio text;\nDROP INDEX IF EXISTS x;\n"
    proj.write("20990101000000_unwrapped.sql", "ALTER TABLE users ADD COLUMN bio text;\n")
    proj.write("20990102000000_wrapped.sql", "BEGIN;\nALTER TABLE users ADD COLUMN bio2 text;\nCOMMIT;\n")
    proj.write("20990103000000_stray.sql", "ALTER TABLE users ADD COLUMN x text;\nBEGIN;\nSELECT 1;\nCOMMIT;\n"
               "ALTER TABLE users ADD COLUMN y text;\n")
    proj.write("20990104000000_outside.sql", "-- grapevine: no-transaction\n" + plain)
    by_file = codes_by_file(proj.check_json())
    for name in ("20990101000000_unwrapped.sql", "20990102000000_wrapped.sql", "20990103000000_stray.sql"):
        assert "prefer-robust-stmts" not in by_file.get(name, set()), name
    assert "prefer-robust-stmts" in by_file["20990104000000_outside.sql"]


def test_validate_in_the_same_transaction_is_caught_in_a_file_without_begin(proj):
    # the runner wraps this file in one transaction: VALIDATE then holds ADD CONSTRAINT's lock
    proj.write("20990101000000_check.sql", "ALTER TABLE users ADD CONSTRAINT c CHECK (id > 0) NOT VALID;\n"
               "ALTER TABLE users VALIDATE CONSTRAINT c;\n")
    doc = proj.check_json()
    [finding] = [f for f in doc["findings"] if f["code"] == "constraint-missing-not-valid"]
    assert finding["line"] == 2


# Tables the same file creates are empty and unused: check drops Squawk's lock and rewrite findings
# on them (Squawk itself reports each of these).
NEW_TABLE_CASES = {
    "index, table qualified on one side": (
        "CREATE TABLE public.notes (id bigint);\nCREATE INDEX notes_id ON notes (id);",
        "require-concurrent-index-creation"),
    "index on a new materialized view": (
        "CREATE MATERIALIZED VIEW totals AS SELECT 1::bigint AS n;\nCREATE INDEX totals_n ON totals (n);",
        "require-concurrent-index-creation"),
    "index in a file that runs outside a transaction": (
        "-- grapevine: no-transaction\nCREATE TABLE IF NOT EXISTS notes (id bigint);\n"
        "CREATE INDEX IF NOT EXISTS notes_id ON notes (id);",
        "require-concurrent-index-creation"),
    "column type": ("CREATE TABLE notes (id bigint, body text);\nALTER TABLE notes ALTER COLUMN body TYPE varchar(9);",
                    "changing-column-type"),
    "set not null": ("CREATE TABLE notes (id bigint);\nALTER TABLE notes ALTER COLUMN id SET NOT NULL;",
                     "adding-not-nullable-field"),
    "required column": ("CREATE TABLE notes (id bigint);\nALTER TABLE notes ADD COLUMN body text NOT NULL;",
                        "adding-required-field"),
    "volatile default": ("CREATE TABLE notes (id bigint);\nALTER TABLE notes ADD COLUMN u uuid DEFAULT gen_random_uuid();",
                         "adding-field-with-default"),
    "rename column": ("CREATE TABLE notes (id bigint, body text);\nALTER TABLE notes RENAME COLUMN body TO text;",
                      "renaming-column"),
    "unique constraint": ("CREATE TABLE public.notes (id bigint, e text);\nALTER TABLE notes ADD CONSTRAINT u UNIQUE (e);",
                          "disallowed-unique-constraint"),
    "check constraint": ("CREATE TABLE public.notes (id bigint);\nALTER TABLE notes ADD CONSTRAINT c CHECK (id > 0);",
                         "constraint-missing-not-valid"),
    "foreign key": ("CREATE TABLE public.notes (id bigint);\n"
                    "ALTER TABLE notes ADD CONSTRAINT f FOREIGN KEY (id) REFERENCES users (id);",
                    "adding-foreign-key-constraint"),
    "primary key": ("CREATE TABLE public.notes (id bigint);\nALTER TABLE notes ADD PRIMARY KEY (id);",
                    "adding-serial-primary-key-field"),
    "drop column": ("CREATE TABLE notes (id bigint, e text);\nALTER TABLE notes DROP COLUMN e;", "ban-drop-column"),
    "drop not null": ("CREATE TABLE notes (id bigint, e text NOT NULL);\nALTER TABLE notes ALTER COLUMN e DROP NOT NULL;",
                      "ban-drop-not-null"),
}


def test_every_rule_moot_on_new_tables_has_its_case():
    assert {rule for _, rule in NEW_TABLE_CASES.values()} == RULES_MOOT_ON_NEW_TABLES


@pytest.mark.parametrize("sql, rule", NEW_TABLE_CASES.values(), ids=NEW_TABLE_CASES.keys())
def test_lock_findings_on_tables_the_file_creates_are_dropped(proj, sql, rule):
    path = proj.write("20990101000000_new_table.sql", sql + "\n")
    assert rule not in codes_by_file(proj.check_json()).get(path.name, set())
    # linted as check lints it: the runner wraps this file in a transaction unless it says otherwise
    assume = "--no-assume-in-transaction" if "no-transaction" in sql else "--assume-in-transaction"
    raw = subprocess.run([SQUAWK, "--reporter", "json", assume, str(path)], capture_output=True,
                         text=True, stdin=subprocess.DEVNULL)
    assert rule in {item["rule_name"] for item in json.loads(raw.stdout)}  # Squawk alone reports it


def test_serial_column_on_an_existing_table_is_ours(proj):
    # Squawk only suggests an identity column here; the rewrite under ACCESS EXCLUSIVE is ours to say
    path = proj.write("20990101000000_serial.sql", "ALTER TABLE users ADD COLUMN n bigserial;\n")
    [ours] = [f for f in proj.check_json()["findings"] if f["code"] == "adding-serial-column"]
    assert (ours["line"], ours["source"], ours["level"]) == (1, "grapevine", "warning")
    assert "rewrites existing table users" in ours["message"] and ours["fix"]
    raw = subprocess.run([SQUAWK, "--reporter", "json", "--assume-in-transaction", str(path)], capture_output=True,
                         text=True, stdin=subprocess.DEVNULL)
    assert {item["rule_name"] for item in json.loads(raw.stdout)} == {"prefer-identity", "require-lock-timeout",
                                                                       "require-statement-timeout"}


# ---- suppression ---------------------------------------------------------------------------------


SUPPRESSION = {
    "squawk-ignore before the statement": (
        "-- squawk-ignore require-concurrent-index-creation\nCREATE INDEX a ON users (email);\n"
        "CREATE INDEX b ON users (id);\n",
        "require-concurrent-index-creation", [3]),
    "squawk-ignore-file": (
        "-- squawk-ignore-file require-concurrent-index-creation\nCREATE INDEX a ON users (email);\n"
        "CREATE INDEX b ON users (id);\n",
        "require-concurrent-index-creation", []),
    "grapevine-ignore on our own code": (
        "-- grapevine-ignore: adding-serial-column\nALTER TABLE users ADD COLUMN n bigserial;\n"
        "ALTER TABLE tasks ADD COLUMN m bigserial;\n",
        "adding-serial-column", [3]),
    "grapevine-ignore on a Squawk code, several codes": (
        "-- grapevine-ignore: prefer-identity, require-concurrent-index-creation\nCREATE INDEX a ON users (email);\n"
        "CREATE INDEX b ON users (id);\n",
        "require-concurrent-index-creation", [3]),
    "grapevine-ignore covers a finding inside the statement": (
        "-- grapevine-ignore: adding-field-with-default\nALTER TABLE users\n  ADD COLUMN u uuid DEFAULT gen_random_uuid();\n",
        "adding-field-with-default", []),
    "grapevine-ignore-file": (
        "-- grapevine-ignore-file: adding-serial-column\nALTER TABLE users ADD COLUMN n bigserial;\n"
        "ALTER TABLE tasks ADD COLUMN m bigserial;\n",
        "adding-serial-column", []),
    "grapevine-ignore-file on a note": (
        "-- grapevine: no-transaction\n-- grapevine-ignore-file: no-transaction\nVACUUM users;\n",
        "no-transaction", []),
    "a comment inside a function body is not an ignore": (
        "DO $$\nBEGIN\n-- grapevine-ignore: adding-serial-column\nEND\n$$;\nALTER TABLE users ADD COLUMN n bigserial;\n",
        "adding-serial-column", [6]),
    "a misspelt code silences nothing": (
        "-- grapevine-ignore: adding-serial-columns\nALTER TABLE users ADD COLUMN n bigserial;\n",
        "adding-serial-column", [2]),
}


@pytest.mark.parametrize("sql, code, lines_left", SUPPRESSION.values(), ids=SUPPRESSION.keys())
def test_suppression_comments(proj, sql, code, lines_left):
    proj.write("20990101000000_suppressed.sql", sql)
    doc = proj.check_json()
    assert [f["line"] for f in doc["findings"] if f["code"] == code] == lines_left


def test_an_unknown_code_in_an_ignore_comment_is_an_error(proj):
    proj.write("20990101000000_typo.sql", "-- grapevine-ignore: adding-serial-colum, prefer-identity\n"
               "ALTER TABLE users ADD COLUMN n bigserial;\n-- grapevine-ignore-file: no-such-rule, no-transaction\n")
    doc = proj.check_json()
    errors = [(f["code"], f["line"], f["fix"]) for f in doc["findings"] if f["level"] == "error"]
    assert doc["exit"] == 1 and errors == [("ignore-code", 1, "did you mean adding-serial-column?"),
                                           ("ignore-code", 3, "use the code check printed")], doc["findings"]
    assert "grapevine-ignore names no-such-rule, which is no warning or note code" in json.dumps(doc["findings"])
    proj.write("20990101000000_typo.sql", "-- grapevine-ignore: adding-serial-column, prefer-identity\n"
               "ALTER TABLE users ADD COLUMN n bigserial;\n-- grapevine-ignore-file: require-concurrent-index-creation\n")
    assert proj.check_json()["exit"] == 0  # ours and Squawk's real rule names are accepted


def test_errors_cannot_be_silenced(proj):
    proj.write("20990101000000_typo.sql", "-- grapevine-ignore-file: parse\n-- grapevine-ignore: parse\nCREATE TABEL x (a int);\n")
    doc = proj.check_json()
    assert doc["exit"] == 1 and [(f["code"], f["line"]) for f in doc["findings"] if f["level"] == "error"] == [("parse", 3)]


def test_squawk_toml_excluded_rules_add_to_ours(proj):
    proj.write("20990101000000_index.sql", "CREATE INDEX a ON users (email);\nCREATE TABLE n (a integer);\n")
    (proj.root / ".squawk.toml").write_text('excluded_rules = ["require-concurrent-index-creation"]\n')
    doc = proj.check_json()
    assert codes_by_file(doc)["20990101000000_index.sql"] == {"prefer-bigint-over-int"}
    assert {"require-concurrent-index-creation", "require-lock-timeout"} <= set(doc["squawk"]["excluded_rules"])


def test_squawk_toml_excluded_paths_are_globs_from_the_project_root(proj):
    proj.write("20990101000000_legacy.sql", "ALTER TABLE users ADD COLUMN n bigserial;\nCREATE INDEX a ON users (id);\n")
    proj.write("20990102000000_new.sql", "CREATE INDEX b ON users (id);\n")
    (proj.root / ".squawk.toml").write_text('excluded_paths = ["migrations/tenant/*_legacy.sql"]\n')
    by_file = codes_by_file(proj.check_json())
    assert by_file["20990101000000_legacy.sql"] == {"adding-serial-column"}  # ours still applies
    assert by_file["20990102000000_new.sql"] == {"require-concurrent-index-creation"}


@pytest.mark.parametrize("content, words", [
    ("excluded_rules = [\n", ".squawk.toml"),
    ('excluded_rules = "prefer-identity"\n', "excluded_rules must be a list"),
    ('excluded_rules = ["no-such-rule"]\n', "no-such-rule"),
    ('included_rules = ["no-such-rule"]\n', "no-such-rule"),
])
def test_a_broken_squawk_toml_is_one_error(proj, content, words):
    proj.write("20990101000000_serial.sql", "ALTER TABLE users ADD COLUMN n bigserial;\n")
    (proj.root / ".squawk.toml").write_text(content)
    result = proj.cli("check")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    [line] = [line for line in result.stdout.splitlines() if "[squawk-config]" in line]
    assert line.startswith("error: .squawk.toml: ") and words in line
    assert "[adding-serial-column]" in result.stdout  # the rest still ran


# ---- missing or broken binary --------------------------------------------------------------------


def _plain_file(path):
    path.write_text("not a program")
    return str(path)


def _script(path, body: str):
    path.write_text(f"#!{sys.executable}\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.mark.parametrize("kind", ["missing", "not executable", "crashes", "prints garbage"])
def test_a_binary_that_cannot_run_is_one_line_and_the_rest_runs(proj, tmp_path, kind):
    binary = {
        "missing": lambda: str(tmp_path / "nowhere" / "squawk"),
        "not executable": lambda: _plain_file(tmp_path / "squawk"),
        "crashes": lambda: _script(tmp_path / "squawk", "import sys; sys.stderr.write('Illegal instruction\\n'); sys.exit(132)"),
        "prints garbage": lambda: _script(tmp_path / "squawk", "print('<html>')"),
    }[kind]()
    proj.write("20990101000000_serial.sql", "ALTER TABLE users ADD COLUMN n bigserial;\nCREATE INDEX i ON users (id);\n")
    proj.write("20990102000000_typo.sql", "CREATE TABEL x (a int);\n")
    result = proj.cli("check", env={"GRAPEVINE_SQUAWK": binary})
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    [unavailable] = [line for line in lines if "[squawk-unavailable]" in line]
    assert unavailable.startswith(f"warning: squawk at {binary} cannot run (")
    assert any("[adding-serial-column]" in line for line in lines)  # ours still ran
    assert any("[parse]" in line for line in lines)
    assert not any("[require-concurrent-index-creation]" in line for line in lines)
    assert result.returncode == 1  # the parse error
    doc = proj.check_json(env={"GRAPEVINE_SQUAWK": binary})
    assert doc["squawk"]["ran"] is False


def test_without_squawk_strict_fails_so_the_gate_is_not_silently_weaker(proj, tmp_path):
    proj.write("20990101000000_fine.sql", "ALTER TABLE users ADD COLUMN bio text;\n")
    missing = {"GRAPEVINE_SQUAWK": str(tmp_path / "nowhere")}
    assert proj.cli("check", env=missing).returncode == 0
    assert proj.cli("check", "--strict", env=missing).returncode == 1
    assert proj.cli("check", "--strict").returncode == 0


def test_a_file_only_squawk_cannot_parse_gets_one_warning(proj, tmp_path):
    # squawk's own parser is not PostgreSQL's: if it rejects SQL PostgreSQL accepts, say so once
    path = proj.write("20990101000000_fine.sql", "SELECT 1;\nSELECT 2;\n")
    report = [{"file": f"migrations/tenant/{path.name}", "line": line, "column": 0, "level": "Error",
               "message": "expected command", "help": None, "rule_name": "syntax-error"} for line in (0, 1)]
    fake = _script(tmp_path / "squawk", f"print({json.dumps(json.dumps(report))})")
    doc = proj.check_json(env={"GRAPEVINE_SQUAWK": fake})
    assert [(f["code"], f["level"], f["line"]) for f in doc["findings"]] == [("squawk-parse", "warning", 1)]
    assert doc["exit"] == 0


# ---- output formats --------------------------------------------------------------------------------


def test_github_format_annotates_the_diff(proj):
    proj.write("20990101000000_index.sql", "SELECT 1;\nCREATE INDEX i ON users (id);\n")
    proj.write("20990102000000_typo.sql", "SELECT 1;\nCREATE TABEL x (a int);\n")
    proj.write("20990103000000_vacuum.sql", "VACUUM users;\n")
    result = proj.cli("check", "--format", "github")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert ("::warning file=migrations/tenant/20990101000000_index.sql,line=2,"
            "title=require-concurrent-index-creation::") in "\n".join(lines)
    assert any(line.startswith("::error file=migrations/tenant/20990102000000_typo.sql,line=2,title=parse::syntax error")
               for line in lines)
    assert any(line.startswith("::notice file=migrations/tenant/20990103000000_vacuum.sql,line=1,title=no-transaction::")
               for line in lines)
    assert all(line.startswith("::") for line in lines[:-1]) and lines[-1].startswith("checked ")


def test_github_paths_are_from_the_repository_root(tmp_path):
    proj = CheckProject(tmp_path / "repo" / "db")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path / "repo", check=True)
    proj.write("20990101000000_index.sql", "CREATE INDEX i ON users (id);\n")
    result = proj.cli("check", "--format", "github")
    assert "::warning file=db/migrations/tenant/20990101000000_index.sql,line=1," in result.stdout


def test_github_escapes_what_would_break_a_workflow_command(proj):
    (proj.root / ".squawk.toml").write_text("excluded_rules = [\n")  # tomllib's message has a colon, a comma
    result = proj.cli("check", "--format", "github")
    [line] = [line for line in result.stdout.splitlines() if "squawk-config" in line]
    assert line.startswith("::error file=.squawk.toml,title=squawk-config::")
    assert "\n" not in line and "%" not in line.split("::", 2)[1].replace("%3A", "").replace("%2C", "")


def test_json_keeps_its_shape_and_gains_fields(proj):
    proj.write("20990101000000_index.sql", "CREATE INDEX i ON users (id);\n")
    doc = proj.check_json()
    assert {"command", "ok", "files", "errors", "warnings", "findings"} <= set(doc)
    assert doc["command"] == "check" and doc["ok"] is True and doc["warnings"] == 1
    assert doc["changed_since"] is None and doc["judged"] == 3 and doc["squawk"]["ran"] is True
    [finding] = doc["findings"]
    assert finding == {"level": "warning", "env": "tenant", "file": "migrations/tenant/20990101000000_index.sql",
                       "line": 1, "code": "require-concurrent-index-creation", "message": finding["message"],
                       "fix": finding["fix"], "source": "squawk"}
    assert finding["message"] and finding["fix"]


def test_json_and_github_format_exclude_each_other(proj):
    result = proj.cli("check", "--json", "--format", "github")
    assert result.returncode == 2 and result.stderr.strip() == "error: --json and --format github exclude each other"


def test_squawk_comes_with_the_package():
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(r'"squawk-cli>=2\.70,<2\.71"', pyproject)
    assert os.access(SQUAWK, os.X_OK)
