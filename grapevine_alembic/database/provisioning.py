"""One new database at head, without replaying the chain: a copy of the template the tool keeps on its server.

The template (``grapevine_template_tenant``) is an ordinary database migrated file by file
by ``runner.migrate`` (under its migration lock, ledger rows ``provision (template)``) and
then sealed: no connections allowed, marked with the head and a fingerprint of the files it
holds (``cloning.mark_text``).  A provision reads that mark from ``pg_database`` on the
maintenance database, so it never connects to the template it copies.  Where the server
refuses (no CREATEDB, no right to copy), the chain is applied file by file instead, with a
notice.  Either way the new database is what ``migrate`` would have made of an empty one.
"""

from __future__ import annotations

import re
import time
from dataclasses import replace

from . import cloning, runner
from .connection import acquire_lock, describe_error, open_connection
from ..errors import DatabaseError, GrapevineError
from ..files.cluster_wide import left_out_notices
from .result import DatabaseResult
from .target import Target

TEMPLATE_APPLIED_BY = "provision (template)"
CHAIN_APPLIED_BY = "provision (chain)"
MAINTENANCE_DATABASE = "postgres"

# A copy does not carry database-level settings (ALTER DATABASE ... SET) and holds the
# template's name wherever a file wrote current_database(): such chains are applied instead.
_NAMES_ITS_DATABASE = re.compile(r"\balter\s+database\b|\bcurrent_database\s*\(", re.IGNORECASE)


def template_name(env: str) -> str:
    return "grapevine_template_" + re.sub(r"[^a-z0-9_]", "_", env.lower())[:40]


def provision(target: Target, chain: runner.Chain, options: runner.RunOptions, *,
              maintenance_db: str = MAINTENANCE_DATABASE) -> DatabaseResult:
    """Create ``target``'s database at the chain's head; never touches a database that exists."""
    import psycopg2

    result = DatabaseResult(target)
    started = time.monotonic()
    try:
        _provision(target, chain, options, maintenance_db, result)
    except GrapevineError as err:
        result.fail(str(err))
    except psycopg2.Error as err:
        result.fail(f"{target.database}: {describe_error(err)}")
    result.seconds = time.monotonic() - started
    return result


def _provision(target: Target, chain, options, maintenance_db: str, result: DatabaseResult) -> None:
    name = target.database
    server = open_connection(target.spec.for_database(maintenance_db), connect_timeout=options.connect_timeout_s)
    try:
        found = cloning.rights(server, name)
        if not found.can_create:
            server.close()
            _into_existing_empty(target, chain, options, found, result)
            return
        if found.exists:
            raise cloning.AlreadyExists(f"database {name} already exists; nothing was changed")
        try:
            _from_template(server, target, chain, options)
        except cloning.TemplateRefused as err:
            _notice(options, target, f"cannot use the template ({err}): creating {name} empty and"
                                     f" applying the {len(chain.files)} file(s) one by one")
            cloning.create_empty(server, name)
            _apply_chain(target, chain, options, result, created=True)
            return
    finally:
        server.close()
    result.how = "template"
    _date_the_ledger(target, chain, options)
    result.applied = list(chain.versions)
    result.after = chain.versions[-1] if chain.versions else None


def _from_template(server, target: Target, chain, options) -> None:
    """Copy the template under the shared template lock; bring it to head first (alone) when it is behind."""
    template = template_name(chain.env)
    keys = cloning.lock_keys(options.lock_key, template)
    files = chain.files
    cloning.take(server, keys, shared=True, timeout_s=options.timeout_s)
    try:
        ready = cloning.template_state(server, template).holds(files)
        if ready:
            cloning.copy_template(server, target.database, template)
            return
    finally:
        cloning.release(server, keys, shared=True)
    cloning.take(server, keys, shared=False, timeout_s=options.timeout_s)
    try:
        state = cloning.template_state(server, template)
        if not state.holds(files):  # nobody brought it to head while we waited
            _refuse_copies_of(chain)
            _to_head(server, target, template, chain, options, state)
        cloning.copy_template(server, target.database, template)
    finally:
        cloning.release(server, keys, shared=False)


def _refuse_copies_of(chain) -> None:
    for migration in chain.files:
        if _NAMES_ITS_DATABASE.search(migration.read_text()):
            raise cloning.TemplateRefused(f"{migration.path.name} refers to its own database"
                                          " (ALTER DATABASE or current_database()), which a copy would not carry")


def _to_head(server, target: Target, template: str, chain, options, state: cloning.TemplateState) -> None:
    """Migrate the template file by file (from empty when its files changed under it), then seal it."""
    if state.exists and not state.behind_on(chain.files):
        cloning.drop_template(server, template)  # a file it holds was edited, removed or merged below its head
        state = cloning.TemplateState(False)
    if state.exists:
        cloning.unseal(server, template)
    else:
        cloning.create_template(server, template)
    template_options = replace(options, applied_by=TEMPLATE_APPLIED_BY, dry_run=False, out_of_order=False,
                               on_wait=None, servers=None)
    # the template only stands in for a schema: what acts on the whole server already ran where the chain ran
    built = chain.server_free()
    for line in left_out_notices(built.files, f"the template {template}"):
        _notice(options, target, line)
    outcome = runner.migrate(Target("tenant", target.spec.for_database(template)), built, template_options)
    if not outcome.ok:
        raise DatabaseError(f"bringing the template {template} to head failed; {target.database} was not"
                            f" created: {outcome.error}")
    cloning.seal(server, template, chain.files)  # its connection is closed: nobody is on the template now


def _date_the_ledger(target: Target, chain, options) -> None:
    """The copied rows say when the template got each file; this database got them now."""
    raw = open_connection(target.spec, connect_timeout=options.connect_timeout_s)
    try:
        acquire_lock(raw, options.lock_key, timeout_s=options.timeout_s)  # a migrate beside us waits
        with raw.cursor() as cursor:
            cursor.execute(f"UPDATE {chain.tables.ledger} SET applied_at = now() WHERE applied_by = %s",
                           (TEMPLATE_APPLIED_BY,))
    finally:
        raw.close()


def _into_existing_empty(target: Target, chain, options, found: cloning.ServerRights, result) -> None:
    """Without CREATEDB the tool cannot create databases: it applies the chain to one created empty for it."""
    name = target.database
    if not found.exists:
        raise DatabaseError(f"cannot create database {name}: role {found.role} has no CREATEDB right; create {name}"
                            " empty (as a role that may) and run provision again: it then applies the chain")
    raw = open_connection(target.spec, connect_timeout=options.connect_timeout_s)
    try:
        empty = cloning.is_empty(raw)
    finally:
        raw.close()
    if not empty:
        raise cloning.AlreadyExists(f"database {name} already exists and is not empty; nothing was changed")
    _notice(options, target, f"role {found.role} may not create databases (no CREATEDB): applying the"
                             f" {len(chain.files)} file(s) one by one to the existing empty {name}")
    _apply_chain(target, chain, options, result, created=False)


def _apply_chain(target: Target, chain, options, result: DatabaseResult, *, created: bool) -> None:
    outcome = runner.migrate(target, chain, replace(options, applied_by=CHAIN_APPLIED_BY))
    result.how = "chain"
    result.applied, result.after, result.attempts = outcome.applied, outcome.after, outcome.attempts
    if not outcome.ok:
        made = f"{target.database} was created, but " if created else ""
        then = f"`grapevine-migrations migrate --tenant {target.tenant_id}`" if target.tenant_id else "migrating it"
        result.fail(f"{made}applying the chain failed ({outcome.error}); {then} completes it")


def _notice(options, target: Target, message: str) -> None:
    if options.on_notice:
        options.on_notice(target.database, None, f"notice: {message}")
