"""``check`` reports a file that writes the tool's own tables as an error."""

from __future__ import annotations

from checkproject import CheckProject

LEFTOVER = (
    "CREATE TABLE IF NOT EXISTS alembic_version (version_num varchar(32) NOT NULL);\n"
    "INSERT INTO alembic_version VALUES ('1.6.0');\n"
)


def _tool_table_findings(doc: dict) -> list[dict]:
    return [f for f in doc["findings"] if f["code"] == "tool-table"]


def _configure(proj: CheckProject, **options: str) -> None:
    ini = proj.root / "alembic.ini"
    lines = "".join(f"{key} = {value}\n" for key, value in options.items())
    ini.write_text(ini.read_text().replace("[tenant]\n", f"[tenant]\n{lines}", 1))


def test_check_reports_each_statement_on_the_tools_tables(tmp_path):
    proj = CheckProject(tmp_path / "proj")
    proj.write("20250101000000_alembic_leftover.sql", LEFTOVER)
    proj.write("20250102000000_ledger.sql", "SELECT 1;\nALTER TABLE public.schema_migrations ADD COLUMN data_version int;\n")
    proj.write("20250103000000_reads.sql", "SELECT * FROM alembic_version;\n-- INSERT INTO schema_migrations\n"
                                           "CREATE TABLE app.alembic_version (x int);\n")
    doc = proj.check_json()
    found = sorted((f["file"].rsplit("/", 1)[-1], f["line"], f["level"]) for f in _tool_table_findings(doc))
    assert found == [
        ("20250101000000_alembic_leftover.sql", 1, "error"),
        ("20250101000000_alembic_leftover.sql", 2, "error"),
        ("20250102000000_ledger.sql", 2, "error"),
    ]
    assert doc["exit"] != 0
    ledger = next(f for f in _tool_table_findings(doc) if f["line"] == 2 and "ledger" in f["file"])
    assert "ledger" in ledger["message"] and "ledger_table" in ledger["fix"] and "[tenant]" in ledger["fix"]


def test_check_follows_the_configured_names(tmp_path):
    proj = CheckProject(tmp_path / "proj")
    proj.write("20250101000000_alembic_leftover.sql", LEFTOVER)
    proj.write("20250102000000_ledger.sql", "INSERT INTO grapevine_ledger (version) VALUES ('x');\n")
    _configure(proj, version_table="grapevine_version", ledger_table="grapevine_ledger")
    found = [(f["file"].rsplit("/", 1)[-1], f["line"]) for f in _tool_table_findings(proj.check_json())]
    assert found == [("20250102000000_ledger.sql", 1)]
