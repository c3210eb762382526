"""``grapevine_alembic.api.provision_database``, as a provisioning service calls it (in a process of its own)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pg
from test_cli_provision import HEAD, _reference, _seeded, assert_same_as_file_by_file
from test_cli_provision_template import A, A_EDITED, A_SQL, B, B_FAILS, B_FIXED, _rolled_back

PROGRAM = textwrap.dedent(
    """
    import json, sys
    from grapevine_alembic.api import migrate_database, provision_database

    url, reference, folder = sys.argv[1:]
    out = []
    for _ in range(2):  # the second call finds the database there
        result = provision_database(url, folder)
        out.append({"ok": result.ok, "version": result.version, "method": result.method, "error": result.error})
    out.append(migrate_database(reference, folder).version)
    print(json.dumps(out))
    """
)


def test_provision_database_creates_at_head_then_refuses(project, pg_server):
    name = pg.unique_db_name()
    project.make_db.created.append(name)  # dropped after the test
    reference = project.make_db()
    run = subprocess.run(
        [sys.executable, "-c", PROGRAM, pg.url_for(pg_server, name), pg.url_for(pg_server, reference),
         str(project.migrations("tenant"))],
        capture_output=True, text=True, timeout=300, cwd=project.root,
    )
    assert run.returncode == 0, run.stderr
    first, second, reference_version = json.loads(run.stdout)
    assert first == {"ok": True, "version": "20250201080000", "method": "template", "error": None}
    assert second["ok"] is False and second["error"] == f"database {name} already exists; nothing was changed"
    assert reference_version == first["version"]
    assert project.ledger(name) == [(v, "provision (template)") for v, _ in project.ledger(reference)]
    assert not pg_server.password or pg_server.password not in run.stdout + run.stderr


LOADED = textwrap.dedent(
    """
    import json, sys
    from grapevine_alembic.api import provision_database

    result = provision_database(sys.argv[1], sys.argv[2])
    print(json.dumps({"ok": result.ok, "method": result.method, "parser": "postgast" in sys.modules}))
    """
)


def test_a_copy_of_a_template_at_head_loads_no_sql_parser(project, pg_server):
    """Copying needs no file parsed: a service provisioning a tenant does not pay for the parser's import (~20 ms)."""
    runs = []
    for _ in range(2):  # the first one builds the template (and parses the files); the second only copies it
        name = pg.unique_db_name()
        project.make_db.created.append(name)
        run = subprocess.run([sys.executable, "-c", LOADED, pg.url_for(pg_server, name),
                              str(project.migrations("tenant"))],
                             capture_output=True, text=True, timeout=300, cwd=project.root)
        assert run.returncode == 0, run.stderr
        runs.append(json.loads(run.stdout))
    assert runs[1] == {"ok": True, "method": "template", "parser": False}


API_PROGRAM = textwrap.dedent(
    """
    import json, sys
    from grapevine_alembic.api import provision_database

    print(json.dumps([{"ok": r.ok, "version": r.version, "error": r.error}
                      for r in [provision_database(url, sys.argv[1]) for url in sys.argv[2:]]]))
    """
)


def _api_provision(project, *urls: str) -> list[dict]:
    run = subprocess.run([sys.executable, "-c", API_PROGRAM, str(project.migrations("tenant")), *urls],
                         capture_output=True, text=True, timeout=300, cwd=project.root)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_the_api_provision_never_copies_a_failed_refresh(project, pg_server):
    _seeded(project)
    names = [pg.unique_db_name() for _ in range(4)]
    project.make_db.created.extend(names)  # dropped after the test
    first, second, third, fourth = (pg.url_for(pg_server, name) for name in names)
    assert _api_provision(project, first)[0]["ok"]
    project.write("tenant", A, A_SQL)
    project.write("tenant", B, B_FAILS)
    failed = _api_provision(project, second)[0]
    assert not failed["ok"] and "division by zero" in failed["error"]
    _rolled_back(project)  # (a)
    reference = _reference(project)
    assert _api_provision(project, third)[0] == {"ok": True, "version": HEAD, "error": None}
    assert_same_as_file_by_file(project, names[2], reference, applied_by="provision (template)")
    project.write("tenant", A, A_SQL)
    project.write("tenant", B, B_FAILS)
    assert not _api_provision(project, second)[0]["ok"]
    project.write("tenant", A, A_EDITED)  # (b)
    project.write("tenant", B, B_FIXED)
    assert project.cli("migrate", "--tenant", "ref").returncode == 0
    assert _api_provision(project, fourth)[0]["ok"]
    assert_same_as_file_by_file(project, names[3], reference, applied_by="provision (template)")
