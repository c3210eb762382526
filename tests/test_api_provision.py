"""``grapevine_alembic.api.provision_database``, as a provisioning service calls it (in a process of its own)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pg

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
