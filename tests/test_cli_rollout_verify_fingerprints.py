"""``migrate --verify`` through drift's fingerprints, against real PostgreSQL: a tenant it found equal (or different)
is remembered in the control database's ``verified_table``, so a steady ``--verify`` or ``drift`` reads no catalog
and builds no reference; a tenant the run migrated, or one changed since, is read in full; the API does the same."""

from __future__ import annotations

import json

from grapevine_alembic.api import migrate_fleet

IDS = ("v1", "v2", "v3")
MISSING_INDEX = "missing index public.tasks_project_id_idx ON public.tasks USING btree (project_id)"


def _fleet(project):
    project.migrate_control()
    for tenant_id in IDS:
        project.add_tenant(tenant_id)


def _verify(project, *args):
    result = project.cli("migrate", "--all-tenants", "--verify", "--json", *args)
    assert "Traceback" not in result.stderr and "notice:" not in result.stderr, result.stderr
    return result.returncode, {d["tenant"]: d for d in json.loads(result.stdout)["databases"]}


def _remembered(project) -> dict:
    """tenant database -> (version, when it was last read in full, its remembered differences)."""
    if not project.control("SELECT to_regclass('grapevine_verified') IS NOT NULL")[0][0]:
        return {}
    rows = project.control("SELECT database, version, verified_at, to_jsonb(v) ->> 'differences' FROM grapevine_verified v")
    # control left out: the first run's table of fingerprints moved its catalog, so it is read once more
    return {database: tuple(rest) for database, *rest in rows if database != project.control_db}


def _drift(project):
    result = project.cli("drift", "--all-tenants", "--json")
    assert result.returncode in (0, 1) and "Traceback" not in result.stderr, result.stdout + result.stderr
    document = json.loads(result.stdout)
    return document, {d["database"]: d for d in document["databases"]}


def test_verify_remembers_what_it_compared_and_a_steady_verify_reads_no_catalog_again(project):
    _fleet(project)
    status, by_tenant = _verify(project)  # each tenant migrated here: read in full, found equal, remembered
    assert status == 0 and all(by_tenant[t]["ok"] and by_tenant[t]["applied"] for t in IDS), by_tenant
    first = _remembered(project)
    head = project.version("db_v1")
    assert set(first) == {f"db_{t}" for t in IDS} and all(first[f"db_{t}"][0] == head for t in IDS), first

    status, by_tenant = _verify(project)  # nothing to apply, nothing changed: no tenant read in full again
    assert status == 0 and not any(by_tenant[t]["applied"] for t in IDS)
    assert _remembered(project) == first
    document, by_db = _drift(project)  # and drift trusts what --verify found
    assert document["ok"] is True and document["catalogs_read"] == 0 and document["references_built"] == 0, document

    # a file that changes no catalog row: the migrated tenants are read in full all the same, at their new version
    project.write("tenant", "20991231000000_data_only.sql", "SELECT 1;\n")
    status, by_tenant = _verify(project)
    assert status == 0 and all(by_tenant[t]["applied"] == ["20991231000000"] for t in IDS), by_tenant
    moved = _remembered(project)
    assert all(moved[f"db_{t}"][0] == "20991231000000" and moved[f"db_{t}"][1] > first[f"db_{t}"][1] for t in IDS), moved


def test_a_change_between_two_verify_runs_is_caught_by_the_second(project):
    _fleet(project)
    assert _verify(project)[0] == 0
    project.query("db_v2", "DROP INDEX tasks_project_id_idx")
    status, by_tenant = _verify(project)
    assert status == 1 and [t for t in IDS if not by_tenant[t]["ok"]] == ["v2"], by_tenant
    assert by_tenant["v2"]["error"].endswith(f"should have: {MISSING_INDEX}"), by_tenant["v2"]["error"]
    remembered = _remembered(project)
    assert json.loads(remembered["db_v2"][2])[0]["kind"] == "index", remembered  # remembered as it differs
    status, still = _verify(project)  # not read again, nor its reference built: the same failure from memory
    assert status == 1 and still["v2"]["error"] == by_tenant["v2"]["error"] and _remembered(project) == remembered
    project.query("db_v2", "CREATE INDEX tasks_project_id_idx ON tasks (project_id)")  # fixed: read again, equal
    status, by_tenant = _verify(project)
    assert status == 0 and all(by_tenant[t]["ok"] for t in IDS), by_tenant
    assert _remembered(project)["db_v2"][2] is None


def test_the_api_verify_remembers_through_the_same_record(project):
    _fleet(project)
    url = project.env["CONTROL_DATABASE_URL"]
    result = migrate_fleet(project.root, control_url=url, verify=True)
    assert result.ok, [d.error for d in result.databases if not d.ok]
    first = _remembered(project)
    assert set(first) == {f"db_{t}" for t in IDS}, first
    again = migrate_fleet(project.root, control_url=url, verify=True)
    assert again.ok and _remembered(project) == first
    project.query("db_v3", "ALTER TABLE tasks ALTER COLUMN title TYPE varchar(200)")
    changed = migrate_fleet(project.root, control_url=url, verify=True)
    [failed] = [d for d in changed.databases if not d.ok]
    assert failed.tenant == "v3" and "changed column type public.tasks.title" in failed.error, failed
    document, by_db = _drift(project)
    assert [name for name, d in by_db.items() if d["catalog_read"]] == [] and document["references_built"] == 0
    assert [d["text"] for d in by_db["db_v3"]["differences"]] == [
        "changed column type public.tasks.title: text -> character varying(200)"]


def test_an_unreadable_record_costs_verify_a_full_read_and_one_notice(project):
    _fleet(project)
    project.control("CREATE TABLE grapevine_verified (server text)")  # not the table the tool would create
    result = project.cli("migrate", "--all-tenants", "--verify")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stdout + result.stderr
    notices = [line for line in result.stderr.splitlines() if "grapevine_verified" in line]
    assert len(notices) == 1 and notices[0].startswith(
        "notice: the fingerprints in grapevine_verified could not be read"), notices
    assert all(project.version(f"db_{t}") is not None for t in IDS)
