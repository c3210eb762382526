"""Every way a password can be given, with real roles that have such passwords.

For each form the command either connects or fails with one clean line, and neither the password,
nor a spelling of it, nor a distinctive piece of it appears in stdout or stderr: text output,
``--json``, ``--debug`` tracebacks, ``dev url``, connection errors and the alembic road.
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import pytest

# Distinctive pieces on every side of the characters a URL cares about, so a half-echo shows.
PASSWORDS = {
    "slash": "Gv8812/Zq+Xa9w",  # the 8812/Zq+Xa9: unencoded, libpq reads host grape, port 8812
    "slash-port": "Ab3k/Wd8r.Tm5q",  # today: "Port could not be cast to integer value as 'Ab3k'"
    "hash": "Kx9h#Pf4v!Ys2",
    "question": "Kx7m?Bn2c=Lq&Rt4",
    "at-colon": "Hy7w@Jw3k:Pqz8",
}
ROLE_PREFIX = "grape_pwform_"
REFUSED = "percent-encode the password"


@pytest.fixture(scope="module")
def roles(pg_server):
    """One login role per password (superuser: it reads the control database and migrates tenants)."""
    import pg

    made = {}
    try:
        for key, password in PASSWORDS.items():
            role = ROLE_PREFIX + key.replace("-", "_")
            pg.query(pg_server, None, f"DROP ROLE IF EXISTS {role}")
            pg.query(pg_server, None, f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD %s", (password,))
            made[key] = role
    except Exception as err:  # an external server may not let us create roles
        pytest.skip(f"cannot create roles on this server: {err}")
    yield made
    for role in made.values():
        for db in [r[0] for r in pg.query(pg_server, None, "SELECT datname FROM pg_database d JOIN pg_roles r"
                                          " ON r.oid = d.datdba WHERE r.rolname = %s", (role,))]:
            pg.query(pg_server, None, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        pg.query(pg_server, None, f"DROP ROLE IF EXISTS {role}")


def _url(server, role: str, db: str, userinfo_password: str | None = None, query: str = "") -> str:
    auth = role + (f":{userinfo_password}" if userinfo_password is not None else "")
    return f"postgresql://{auth}@{server.host}:{server.port}/{db}{query}"


def _refused_in_query(password: str) -> bool:
    # libpq splits the query at '&', needs one '=' per parameter; an '@' after the host is refused
    return bool(set(password) & set("&=@"))


# (form, password key, whether the command connects: True, or refuses the URL with one line: False)
CASES = (
    [("userinfo encoded", key, True) for key in PASSWORDS]
    + [("userinfo unencoded", key, not set(pw) & set("/@")) for key, pw in PASSWORDS.items()]
    + [("query encoded", key, True) for key in PASSWORDS]
    + [("query unencoded", key, not _refused_in_query(pw)) for key, pw in PASSWORDS.items()]
    + [(form, key, True) for form in ("PGPASSWORD", ".pgpass", ".env", "tenant variable")
       for key in ("slash", "question")]
)


def _configure(project, server, form: str, role: str, password: str, db: str) -> dict:
    """The environment (and files) that give ``password`` in ``form``; the database is ``db``."""
    if form == "userinfo encoded":
        return {"CONTROL_DATABASE_URL": _url(server, role, db, quote(password, safe=""))}
    if form == "userinfo unencoded":
        return {"CONTROL_DATABASE_URL": _url(server, role, db, password)}
    if form == "query encoded":
        return {"CONTROL_DATABASE_URL": _url(server, role, db, query=f"?password={quote(password, safe='')}&sslmode=disable")}
    if form == "query unencoded":
        return {"CONTROL_DATABASE_URL": _url(server, role, db, query=f"?password={password}&sslmode=disable")}
    if form == "PGPASSWORD":
        return {"CONTROL_DATABASE_URL": _url(server, role, db), "PGPASSWORD": password}
    if form == ".pgpass":
        passfile = project.root.parent / "pgpass"
        escaped = password.replace("\\", "\\\\").replace(":", "\\:")
        passfile.write_text(f"{server.host}:{server.port}:*:{role}:{escaped}\n")
        passfile.chmod(0o600)
        return {"CONTROL_DATABASE_URL": _url(server, role, db), "PGPASSFILE": str(passfile)}
    if form == ".env":
        url = _url(server, role, db, quote(password, safe=""))
        (project.root / ".env").write_text(f"CONTROL_DATABASE_URL='{url}'\n")
        return {"CONTROL_DATABASE_URL": None}
    if form == "tenant variable":  # control as the suite's superuser; the tenants through the role
        from pg import url_for

        return {"CONTROL_DATABASE_URL": url_for(server, db), "PG_TENANT_DATABASE_ADMIN_USERNAME": role,
                "PG_TENANT_DATABASE_ADMIN_PASSWORD": password}
    raise AssertionError(form)


def _leaks(password: str) -> set[str]:
    pieces = {p for p in re.split(r"[^A-Za-z0-9]", password) if len(p) >= 4}
    return {password, quote(password, safe=""), quote(password), json.dumps(password)[1:-1], *pieces}


@pytest.mark.parametrize("form,key,connects", CASES, ids=[f"{f}-{k}" for f, k, _ in CASES])
def test_password_form_connects_or_fails_cleanly_and_is_never_printed(project, pg_server, roles, tally,
                                                                      form, key, connects):
    password, role = PASSWORDS[key], roles[key]
    project.migrate_control()
    project.add_tenant("acme")
    project.add_tenant("ghost", create_db=False)  # its connection error carries the tenant's URL
    env = _configure(project, pg_server, form, role, password, project.control_db)
    runs = {
        "status json debug": project.cli("status", "--json", "--debug", "--control", "--tenant", "acme", env=env),
        "migrate debug": project.cli("migrate", "--tenant", "acme", "--debug", env=env),
        "dev url": project.cli("dev", "url", "--tenant", "acme", env=env),
        "alembic current": project.alembic("-n", "tenant", "-x", "tenant=acme", "current", env=env),
        "missing tenant database debug": project.cli("migrate", "--tenant", "ghost", "--debug", env=env),
    }
    if form not in (".env", "tenant variable"):  # where the URL itself holds the password
        missing = _configure(project, pg_server, form, role, password, "no_such_db_pwform")
        runs["missing control database json"] = project.cli("migrate", "--control", "--json", env=missing)
    for name, result in runs.items():
        tally("bad inputs tried")
        output = result.stdout + result.stderr
        for leak in _leaks(password):
            assert leak not in output, f"{form}: {name} printed {leak!r}:\n{output}"
    status, migrate, dev_url = runs["status json debug"], runs["migrate debug"], runs["dev url"]
    document = json.loads(status.stdout)  # one document, even with --debug
    if connects:
        assert status.returncode == 0, status.stdout + status.stderr
        acme = next(d for d in document["databases"] if d["tenant"] == "acme")
        assert acme["ok"] and acme["pending"], acme  # read through the role: its files are pending
        assert migrate.returncode == 0, migrate.stdout + migrate.stderr
        assert "Traceback" not in migrate.stderr
        assert project.version("db_acme") is not None  # it really connected and migrated
        assert runs["alembic current"].returncode == 0, runs["alembic current"].stderr
        assert dev_url.returncode == 0 and dev_url.stdout.startswith("postgresql://"), dev_url.stderr
        if form not in ("PGPASSWORD", ".pgpass"):
            assert ":***@" in dev_url.stdout  # the password is in the spec, and masked
        ghost = runs["missing tenant database debug"]
        assert ghost.returncode == 1 and "database db_ghost does not exist" in ghost.stdout, ghost.stdout
        if "missing control database json" in runs:
            failed = runs["missing control database json"]
            assert failed.returncode == 1 and "no_such_db_pwform does not exist" in failed.stdout, failed.stdout
    else:
        for name in ("status json debug", "migrate debug", "dev url"):
            assert runs[name].returncode == 2, name
            assert REFUSED in runs[name].stderr, f"{name}: {runs[name].stderr}"
        alembic = runs["alembic current"]
        assert alembic.returncode != 0 and REFUSED in alembic.stderr and "Traceback" not in alembic.stderr
        errors = [line for line in dev_url.stderr.splitlines() if line.strip()]
        assert len(errors) == 1 and errors[0].startswith("error: "), dev_url.stderr  # one line, no traceback
        assert project.version("db_acme") is None  # nothing ran


def test_masking_knows_every_form_even_without_the_secret():
    """Shapes are masked whatever the password: userinfo (greedy to the last '@'), ?password=, conninfo."""
    from grapevine_alembic.masking import mask

    text = ("postgresql://grape:Gv8812/Zq+Xa9w@127.0.0.1:5432/ctl and "
            "postgresql://grape@h/ctl?sslmode=disable&password=Kx7mBn2c&x=1 and "
            "host=h password='Hy7w Jw3k' dbname=x and sslpassword=Ab3kWd8r")
    masked = mask(text)
    for piece in ("Gv8812", "Xa9w", "Kx7mBn2c", "Hy7w", "Jw3k", "Ab3kWd8r"):
        assert piece not in masked, masked
    assert "postgresql://grape:***@127.0.0.1:5432/ctl" in masked and "dbname=x" in masked
