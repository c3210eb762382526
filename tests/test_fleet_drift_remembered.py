"""`drift` remembers a database that differs as it remembers one that is equal: while its version and its catalog's
fingerprint stay, the next run reports the same differences without reading its catalog or building its reference;
anything that moves the fingerprint (fixed, or drifted further) reads it in full again.  Against real PostgreSQL."""

from __future__ import annotations

from test_fleet_drift_fingerprints import _drift, _fleet

EXTRA = "extra index public.idx_tmp ON public.tasks USING btree (title)"
MISSING = "missing index public.tasks_project_id_idx ON public.tasks USING btree (project_id)"


def _texts(database: dict) -> list[str]:
    return [d["text"] for d in database["differences"]]


def _read(by_db: dict) -> list[str]:
    return sorted(name for name, d in by_db.items() if d["catalog_read"])


def test_a_tenant_that_still_differs_is_reported_from_memory_without_its_catalog_or_its_reference(project):
    _fleet(project, ["d1", "d2"])
    project.query("db_d2", "CREATE INDEX idx_tmp ON tasks (title)")
    first, by_db = _drift(project, "--all-tenants")
    assert first["ok"] is False and first["references_built"] == 1 and _read(by_db) == ["db_d1", "db_d2"]
    assert _texts(by_db["db_d2"]) == [EXTRA]

    steady, by_db = _drift(project, "--all-tenants")  # as cheap as a fleet where nothing differs
    assert steady["references_built"] == 0 and steady["catalogs_read"] == 0, steady
    assert steady["ok"] is False and steady["summary"] == first["summary"] == {"match": 1, "differ": 1, "failed": 0}
    assert _texts(by_db["db_d2"]) == [EXTRA] and by_db["db_d2"]["drift"] is True
    # a question it was not asked then (owners and grants) reads it again; the one found equal byte for byte is not
    assert _read(_drift(project, "--all-tenants", "--privileges")[1]) == ["db_d2"]

    project.query("db_d2", "DROP INDEX tasks_project_id_idx")  # drifted further: read in full again
    further, by_db = _drift(project, "--all-tenants")
    assert _read(by_db) == ["db_d2"] and further["references_built"] == 1
    assert sorted(_texts(by_db["db_d2"])) == sorted([EXTRA, MISSING])

    project.query("db_d2", "DROP INDEX idx_tmp; CREATE INDEX tasks_project_id_idx ON tasks (project_id)")  # fixed
    fixed, by_db = _drift(project, "--all-tenants")
    assert fixed["ok"] is True and _read(by_db) == ["db_d2"] and by_db["db_d2"]["drift"] is False
    assert _drift(project, "--all-tenants")[0]["catalogs_read"] == 0


def test_a_table_of_fingerprints_from_before_differences_were_remembered_still_serves(project):
    _fleet(project, ["o1", "o2"])
    assert _drift(project, "--all-tenants")[0]["ok"] is True
    project.control("ALTER TABLE grapevine_verified DROP COLUMN differences")  # the table as the last release made it
    project.query("db_o2", "CREATE INDEX idx_tmp ON tasks (title)")
    result = project.cli("drift", "--all-tenants", "--json")
    assert result.returncode == 1 and "notice:" not in result.stderr, result.stderr  # read, and the column added
    again, by_db = _drift(project, "--all-tenants")
    assert again["catalogs_read"] == 0 and _texts(by_db["db_o2"]) == [EXTRA], again
