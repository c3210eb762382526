"""One new database at head, without replaying the chain: a copy of the template the tool keeps on its server.

The template (``grapevine_template_tenant``) is an ordinary database migrated file by file
by ``runner.migrate`` (under its migration lock, ledger rows ``provision (template)``) and
then sealed: no connections allowed, marked with the head and a fingerprint of the files it
holds (``cloning.mark_text``).  A provision reads that mark from ``pg_database`` on the
maintenance database, so it never connects to the template it copies.  The mark only says
which template to copy: what it holds is read from its ledger (versions and checksums) every
time, in the copy, and before it is migrated forward.  A template whose ledger is anything but
the chain's first files is rebuilt from empty; a copy that is not the whole chain is dropped.
Where the server refuses (no CREATEDB, no right to copy), the chain is applied file by file
instead, with a notice.  Either way the new database is what ``migrate`` would have made of an
empty one, or ``provision`` fails.
"""

from __future__ import annotations

import re
import time
from dataclasses import replace

from . import cloning, runner
from ..session.connection import acquire_lock, describe_error, open_connection
from ..state.ledger import DatabaseState, read_state
from ...errors import MIGRATE, DatabaseError, Fix, GrapevineError
from ...files.cluster_wide import created_roles, left_out_notices
from ..state.result import DatabaseResult
from ..state.target import Target

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
    if target.problem:  # known before connecting: an id or a server it cannot be placed on
        return result.fail(target.problem)
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
            _copy_that_holds_the_chain(server, target, chain, options)
        except cloning.TemplateRefused as err:
            _notice(options, target, f"cannot use the template ({err}): creating {name} empty and"
                                     f" applying the {len(chain.files)} file(s) one by one")
            cloning.create_empty(server, name)
            _apply_chain(target, chain, options, result, created=True)
            return
    finally:
        server.close()
    result.how = "template"
    result.applied = list(chain.versions)
    result.after = chain.versions[-1] if chain.versions else None


def _copy_that_holds_the_chain(server, target: Target, chain, options) -> None:
    """Copy the template, then check the copy's ledger; a copy of anything but the chain is dropped and
    the template rebuilt from its ledger, once (a template sealed over a failed refresh by an older release)."""
    for trust_mark in (True, False):
        _from_template(server, target, chain, options, trust_mark=trust_mark)
        if _held_by(target.spec, chain, options, date_the_copy=True) == len(chain.files):
            return
        cloning.drop_copy(server, target.database)
        if trust_mark:
            _notice(options, target, f"the copy of {template_name(chain.env)} did not hold the chain's files"
                                     " (versions and checksums): dropped; rebuilding the template from its ledger")
    raise DatabaseError(f"the copy of {template_name(chain.env)} did not hold the chain's files after a rebuild;"
                        f" {target.database} was not created")


def _from_template(server, target: Target, chain, options, *, trust_mark: bool) -> None:
    """Copy the template under the shared template lock; bring it to head first (alone) when it is behind."""
    template = template_name(chain.env)
    keys = cloning.lock_keys(options.lock_key, template)
    files = chain.files
    if trust_mark:
        cloning.take(server, keys, shared=True, timeout_s=options.timeout_s)
        try:
            if cloning.template_state(server, template).holds(files):
                cloning.copy_template(server, target.database, template)
                return
        finally:
            cloning.release(server, keys, shared=True)
    cloning.take(server, keys, shared=False, timeout_s=options.timeout_s)
    try:
        state = cloning.template_state(server, template)
        if not (trust_mark and state.holds(files)):  # nobody brought it to head while we waited
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
    """Migrate the template file by file (from empty when its ledger is not the chain's first files), then seal it."""
    if state.exists:
        cloning.unseal(server, template)  # unmarked from here until sealed: a failure leaves it unusable
        if _held_by(target.spec.for_database(template), chain, options) is None:
            _notice(options, target, f"the template {template} holds files the chain does not have (a file edited,"
                                     " removed or merged below its head, or a refresh that failed): rebuilding it")
            cloning.drop_template(server, template)
            state = cloning.TemplateState(False)
    if not state.exists:
        cloning.create_template(server, template)
    template_options = replace(options, applied_by=TEMPLATE_APPLIED_BY, dry_run=False, out_of_order=False,
                               on_wait=None, servers=None)
    # the template only stands in for a schema: what acts on the whole server already ran where the chain ran
    # except the CREATE ROLEs of roles the server lacks: the copies need them, and a file-by-file migration
    # would have created them too, so they stay
    missing = cloning.missing_roles(server, created_roles(chain.server_free().files))
    built = chain.server_free(create_roles=missing)
    for name in sorted(missing):
        _notice(options, target, f"the server has no role {name}: the template {template}'s build creates it (it stays)")
    for line in left_out_notices(built.files, f"the template {template}"):
        _notice(options, target, line)
    outcome = runner.migrate(Target("tenant", target.spec.for_database(template)), built, template_options)
    if not outcome.ok:
        raise DatabaseError(f"bringing the template {template} to head failed; {target.database} was not"
                            f" created: {outcome.error}")
    cloning.seal(server, template, chain.files)  # its connection is closed: nobody is on the template now


def held_files(state: DatabaseState, files) -> int | None:
    """How many of ``files`` a database holds when its ledger and version are exactly the first n of them
    (same versions, same checksums); None when it holds anything else, which no forward migration mends."""
    count = len(state.ledger)
    prefix = files[:count]
    if len(prefix) != count:
        return None
    for migration in prefix:
        row = state.ledger.get(migration.version)
        if row is None or row.checksum != migration.checksum:
            return None
    return count if tuple(state.heads) == ((prefix[-1].version,) if prefix else ()) else None


def _held_by(spec, chain, options, *, date_the_copy: bool = False) -> int | None:
    """``held_files`` of the database at ``spec``; a copy that holds the whole chain gets its rows dated now
    (the copied rows say when the template got each file), under its migration lock."""
    raw = open_connection(spec, connect_timeout=options.connect_timeout_s)
    try:
        if date_the_copy:
            acquire_lock(raw, options.lock_key, timeout_s=options.timeout_s)  # a migrate beside us waits
        with raw.cursor() as cursor:
            held = held_files(read_state(cursor, tables=chain.tables), chain.files)
            if date_the_copy and held == len(chain.files):
                cursor.execute(f"UPDATE {chain.tables.ledger} SET applied_at = now() WHERE applied_by = %s",
                               (TEMPLATE_APPLIED_BY,))
            return held
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
        result.refuse(f"{made}applying the chain failed ({outcome.error})", Fix(MIGRATE), options.word_fix)


def _notice(options, target: Target, message: str) -> None:
    if options.on_notice:
        options.on_notice(target.database, None, f"notice: {message}")
