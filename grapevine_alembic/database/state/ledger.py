"""The version table and the ``schema_migrations`` ledger beside it.

Alembic's ``alembic_version`` is authoritative for "which head is this database
at".  ``schema_migrations`` keeps one row per version that is recorded as
applied, with when, how (migrate, stamp, adopt, out-of-order) and the file's
checksum, so we can show applied times, notice edited files, and notice files
that were merged late with a version older than the head.

Rows are written by an ``on_version_apply`` callback, which Alembic calls inside
the same per-migration transaction as the migration and the version update.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from ...errors import DatabaseError
from ...files.migration import MigrationFile
from ...tool_tables import DEFAULT_TABLES, LEDGER_COLUMNS, LEDGER_EXTRA_COLUMNS, ToolTables
from ..session.connection import set_config_sql

# applied_by of a version a person unmarked below the head (``mark --unapply``): migrate re-runs it
UNMARKED = "unmarked"


@dataclass(frozen=True)
class LedgerRow:
    version: str
    applied_at: dt.datetime | None
    checksum: str | None = None
    applied_by: str | None = None
    execution_ms: int | None = None


@dataclass(frozen=True)
class DatabaseState:
    """What one database says about its migrations."""

    has_version_table: bool = False
    heads: tuple[str, ...] = ()
    has_ledger: bool = False
    ledger_columns: frozenset[str] = frozenset()
    ledger: dict[str, LedgerRow] = field(default_factory=dict)
    locked: bool | None = None  # result of the advisory try-lock, when asked for

    @property
    def head(self) -> str | None:
        return max(self.heads) if self.heads else None

    @property
    def is_legacy(self) -> bool:
        """Only the previous tool's ledger, with rows: no Alembic version table yet.

        An empty ledger records nothing to adopt: the database is simply fresh.
        """
        return self.has_ledger and not self.has_version_table and bool(self.ledger)


# Marks the error of a version update that did not move exactly the expected head.
VERSION_CHECK_MARKER = "grapevine: the version table changed under this run"


def version_sql(from_version: str | None, to_version: str, tables: ToolTables = DEFAULT_TABLES) -> str:
    """Move the head one step, as Alembic's HeadMaintainer does for a linear chain, and fail
    unless exactly the expected head moved (Alembic checks the row count the same way).

    The failure is a cast of a non-constant text to int, so it cannot be folded at plan time
    and it carries ``VERSION_CHECK_MARKER`` in PostgreSQL's message.
    """
    fail = f"('{VERSION_CHECK_MARKER}: ' || n)::int"
    table = tables.version
    if from_version is None:
        return (
            f"WITH moved AS (INSERT INTO {table} (version_num) VALUES ({_literal(to_version)}) RETURNING 1)"
            f" SELECT CASE WHEN n = 0 THEN 0 ELSE {fail} END"
            f" FROM (SELECT count(*) AS n FROM {table}) AS existing, (SELECT count(*) FROM moved) AS m"
        )
    return (
        f"WITH moved AS (UPDATE {table} AS v SET version_num = {_literal(to_version)}"
        f" WHERE v.version_num = {_literal(from_version)} RETURNING 1)"
        f" SELECT CASE WHEN n = 1 THEN 0 ELSE {fail} END FROM (SELECT count(*) AS n FROM moved) AS moved_rows"
    )


def setup_sql(state: "DatabaseState", tables: ToolTables = DEFAULT_TABLES) -> list[str]:
    """DDL a database still needs before its first recorded migration (none when all is there)."""
    statements = [] if state.has_version_table else [tables.version_ddl]
    if not state.has_ledger:
        statements.append(tables.ledger_create)
    else:
        missing = [name for name in LEDGER_EXTRA_COLUMNS if name not in state.ledger_columns]
        if missing:
            statements.append(tables.ledger_add_columns(missing))
    return statements


def ensure_ledger(raw, *, create: bool = True, tables: ToolTables = DEFAULT_TABLES) -> bool:
    """Create the ledger (or add its new columns) where missing: one round trip when all is there.

    With ``create=False`` a missing table is left missing; returns whether the ledger is there.
    """
    with raw.cursor() as cursor:
        cursor.execute(
            f"SELECT {tables.regclass('ledger')} IS NOT NULL, (SELECT count(*) FROM pg_attribute"
            f" WHERE attrelid = {tables.regclass('ledger')} AND attname = ANY(%s) AND NOT attisdropped)",
            (sorted(LEDGER_COLUMNS),),
        )
        exists, columns = cursor.fetchone()
        if not exists and not create:
            return False
        if columns != len(LEDGER_COLUMNS):
            # no "already exists, skipping" notices for the user
            cursor.execute("SET client_min_messages = warning;\n" + ";\n".join(tables.ledger_ddl) + ";\nRESET client_min_messages")
        if not raw.autocommit:
            raw.commit()
    return True


def read_state(cursor, *, try_lock_key: int | None = None, settings=(), tables: ToolTables = DEFAULT_TABLES,
               refuse_moved: bool = True) -> DatabaseState:
    """Read version table and ledger in two round trips (one when neither exists).

    ``settings`` (name, value) pairs are applied with ``set_config`` in the first round trip.
    ``refuse_moved=False``: a search_path moved away from the tool's tables is not refused (``reset``,
    which drops every schema, the tables' own included, needs no state it could misread).
    """
    columns = f"{tables.regclass('version')} IS NOT NULL, {tables.regclass('ledger')} IS NOT NULL, {tables.placed}"
    params: list = []
    if try_lock_key is not None:
        columns += ", pg_try_advisory_lock(%s)"
        params.append(try_lock_key)
    if settings:
        setters, values = set_config_sql(list(settings))
        columns += ", " + setters
        params += values
    cursor.execute("SELECT " + columns, params or None)
    has_version, has_ledger, placed, *rest = cursor.fetchone()
    if refuse_moved and (not placed or not (has_version and has_ledger)):  # a table missing here may lie elsewhere
        check_placement(cursor, tables)
    locked = rest[0] if try_lock_key is not None else None
    if not (has_version or has_ledger):
        return DatabaseState(locked=locked)
    if has_version and has_ledger:
        state = _read_plain(cursor, locked, tables)
        if state is not None:
            return state
    parts = []
    if has_version:
        parts.append(f"(SELECT coalesce(array_agg(version_num::text), '{{}}') FROM {tables.version})")
    if has_ledger:
        parts.append(f"(SELECT coalesce(json_agg(row_to_json(s)), '[]') FROM {tables.ledger} s)")
        parts.append(
            f"(SELECT array_agg(attname::text) FROM pg_attribute WHERE attrelid = {tables.regclass('ledger')}"
            " AND attnum > 0 AND NOT attisdropped)"
        )
    cursor.execute("SELECT " + ", ".join(parts))
    row = list(cursor.fetchone())
    heads = tuple(row.pop(0)) if has_version else ()
    ledger = _ledger_rows(row.pop(0)) if has_ledger else {}
    columns = frozenset(row.pop(0) or ()) if has_ledger else frozenset()
    return DatabaseState(has_version, heads, has_ledger, columns, ledger, locked)


def check_placement(cursor, tables: ToolTables = DEFAULT_TABLES) -> None:
    """Refuse a database whose search_path changed since the tool's tables were created (see
    ``ToolTables.misplaced``): also for a command that reads no state of its own (``alembic current``).

    A table the search_path no longer reaches is always refused.  One it still reaches outside
    ``current_schema()`` only where a search_path setting of the database or role says so: a file
    may create the schema ``"$user"`` names, and the next files then create theirs there, as
    PostgreSQL's default search_path means.
    """
    if not tables.unpinned:
        return  # both named with their schema: found there whatever the search_path
    reached = " AND ".join(f"{tables.regclass(which)} IS NOT NULL" for _, which in tables.unpinned)
    cursor.execute(f"SELECT {tables.misplaced}, {reached}")
    misplaced, reached = cursor.fetchone()
    if misplaced:
        refusal = moved_search_path(cursor, misplaced, tables, reached=reached)
        if refusal is not None:
            raise refusal


# Where the session's search_path comes from, strongest first (a role's setting in this database,
# then the role's, then the database's), as the statements that put it back.
_SEARCH_PATH_SOURCES = r"""SELECT pg_catalog.current_setting('search_path'), pg_catalog.current_schema(),
  pg_catalog.current_database(), ARRAY(
  SELECT CASE WHEN s.setrole <> 0 AND s.setdatabase <> 0
              THEN pg_catalog.format('ALTER ROLE %I IN DATABASE %I RESET search_path', session_user, d.datname)
              WHEN s.setrole <> 0 THEN pg_catalog.format('ALTER ROLE %I RESET search_path', session_user)
              ELSE pg_catalog.format('ALTER DATABASE %I RESET search_path', d.datname) END
  FROM pg_catalog.pg_db_role_setting s LEFT JOIN pg_catalog.pg_database d ON d.oid = s.setdatabase
  WHERE s.setdatabase IN (0, (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()))
    AND s.setrole IN (0, (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = session_user))
    AND EXISTS (SELECT FROM pg_catalog.unnest(s.setconfig) c WHERE c LIKE 'search\_path=%')
  ORDER BY s.setrole <> 0 AND s.setdatabase <> 0 DESC, s.setrole <> 0 DESC)"""


def moved_search_path(cursor, schemas: str, tables: ToolTables, *, reached: bool) -> DatabaseError | None:
    """The one line refusing a database whose tool tables lie outside the session's search_path
    (None: they are still reached and no setting moved the search_path)."""
    cursor.execute(_SEARCH_PATH_SOURCES)
    search_path, current, database, statements = cursor.fetchone()
    if reached and not statements:
        return None
    fix = ("; ".join(statements) if statements
           else "remove search_path from the connection's options (PGOPTIONS, or options= in the URL)")
    meant = ""
    if "," not in schemas:  # or keep the new search_path for the files, and the tables where they are
        pins = " and ".join(f"{which}_table_schema = {schemas}"
                            for _, which in tables.unpinned)
        meant = f", or, if the new search_path is meant, name the tables' schema: {pins} in alembic.ini"
    return DatabaseError(
        f"the search_path changed after migrations ran on {database}: the tool's tables are in schema {schemas}"
        f" but search_path = {search_path} now puts new tables in {current or 'no schema'}, so the database would"
        f" read as unmigrated or its files would run into another schema; put it back ({fix}) and run again{meant}"
    )


# The steady state, read as plain rows in one statement (ToolTables.plain_state): on a fresh server
# backend this costs about a third of aggregating JSON and looking the columns up in pg_attribute.
def _read_plain(cursor, locked, tables: ToolTables) -> DatabaseState | None:
    """Both tables with the full ledger; None when the ledger lacks a column (then read it generically)."""
    import psycopg2

    try:
        cursor.execute(tables.plain_state)
    except psycopg2.errors.UndefinedColumn:
        return None  # autocommit: only this statement failed
    heads, ledger = [], {}
    for is_head, version, applied_at, checksum, applied_by, execution_ms in cursor.fetchall():
        if is_head:
            heads.append(version)
        else:
            ledger[version] = LedgerRow(version, applied_at, checksum, applied_by, execution_ms)
    return DatabaseState(True, tuple(heads), True, frozenset(LEDGER_COLUMNS), ledger, locked)


def _ledger_rows(records: list[dict]) -> dict[str, LedgerRow]:
    rows = {}
    for record in records:
        applied = record.get("applied_at")
        rows[str(record["version"])] = LedgerRow(
            version=str(record["version"]),
            applied_at=dt.datetime.fromisoformat(applied) if applied else None,
            checksum=record.get("checksum"),
            applied_by=record.get("applied_by"),
            execution_ms=record.get("execution_ms"),
        )
    return rows


class SqlEmitter:
    """Runs ledger SQL on the migration's connection, or prints it in ``--sql`` mode."""

    def __init__(self, context):
        self.context = context

    def run(self, sql: str, params: tuple = ()) -> None:
        if self.context.as_sql:
            self.context.impl.static_output((sql % tuple(_literal(p) for p in params)) + ";")
            return
        raw = self.context.connection.connection.dbapi_connection
        with raw.cursor() as cursor:
            cursor.execute(sql, params or None)


def _literal(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


class LedgerWriter:
    """``on_version_apply`` callback: mirror every upgrade and stamp step into ``schema_migrations``."""

    def __init__(
        self, chain: list[MigrationFile] | tuple[MigrationFile, ...], *, stamp_label: str = "stamp",
        fill_stamped: bool = True, tables: ToolTables = DEFAULT_TABLES,
    ):
        self.tables = tables
        self.chain = {m.version: m for m in chain}
        self.versions = sorted(self.chain)
        self.stamp_label = stamp_label  # applied_by of rows a stamp writes ("mark" for the mark command)
        # False when adopting: the legacy rows are the record, and a version missing from them never ran
        self.fill_stamped = fill_stamped
        self.purged_heads: tuple[str, ...] = ()  # stamp --purge: the heads it emptied (the ledger moves from them)
        self._ensured = False

    def ensure_table(self, emit: SqlEmitter) -> None:
        """Create or extend the ledger once per connection, without chatty 'already exists' notices."""
        if self._ensured:
            return
        # SET LOCAL ends with this migration's transaction, so the next file's notices still show.
        emit.run("SET LOCAL client_min_messages = warning")
        for statement in self.tables.ledger_ddl:
            emit.run(statement)
        self._ensured = True

    def insert_sql(self, migration: MigrationFile, how: str = "migrate") -> str:
        """The ledger row for an applied migration as literal SQL; its duration measured by the server
        (``now()`` is the start of the migration's transaction)."""
        values = [_literal(v) for v in (migration.version, migration.checksum, migration.message, how)]
        return self.tables.upsert.format(*values, "(extract(epoch FROM clock_timestamp() - now()) * 1000)::int")

    def __call__(self, *, ctx, step, heads, run_args) -> None:
        emit = SqlEmitter(ctx)
        journal = run_args.get("journal")
        self.ensure_table(emit)
        if step.is_stamp:
            self._record_stamp(emit, step)
        elif step.is_upgrade:
            self.record(emit, step.up_revision_id, "migrate", journal)

    def record_applied(self, context, version: str, how: str, journal=None) -> None:
        """Record a migration applied outside Alembic's step loop (an out-of-order file)."""
        emit = SqlEmitter(context)
        self.ensure_table(emit)
        self.record(emit, version, how, journal)

    def record(self, emit: SqlEmitter, version: str, how: str, journal=None) -> None:
        migration = self.chain.get(version)
        duration_ms = journal.durations_ms.get(version) if journal else None
        emit.run(
            self.tables.upsert.format(*["%s"] * 5),
            (version, migration.checksum if migration else None, migration.message if migration else None, how, duration_ms),
        )

    def _record_stamp(self, emit: SqlEmitter, step) -> None:
        """A stamp from head A to head B: B above A marks (A, B] applied; below, unmarks (B, A]."""
        source = max(step.source_revision_ids, default=None)
        target = max(step.destination_revision_ids, default=None)
        if source is None and self.purged_heads:
            self._purged_to(emit, target)
        else:
            self._move(emit, source or "", target or "")

    def finish_purge(self, context) -> None:
        """After ``stamp --purge base``, which runs no step: the rows of the purged heads and below go."""
        if self.purged_heads:
            self._purged_to(SqlEmitter(context), None)

    def _purged_to(self, emit: SqlEmitter, target: str | None) -> None:
        """From the purged head to ``target`` (None: base): below it every row of (target, head] goes, that of a
        version no file has too (a lost head, as ``mark --unapply`` drops it); above it, as any stamp."""
        head, self.purged_heads = max(self.purged_heads), ()
        if target is not None and target > head:
            self._move(emit, head, target)
        else:
            emit.run(f"DELETE FROM {self.tables.ledger} WHERE version > %s AND version <= %s", (target or "", head))

    def _move(self, emit: SqlEmitter, low: str, high: str) -> None:
        if high > low:
            for version in self.versions:
                if low < version <= high:
                    if self.fill_stamped:
                        self._insert_if_missing(emit, version, self.stamp_label)
                    else:
                        self._complete_if_present(emit, version)
        else:
            # only the range the head moved over: rows of versions marked further ahead stay
            for version in self.versions:
                if high < version <= low:
                    self.delete_row(emit, version)

    def delete_row(self, emit: SqlEmitter, version: str) -> None:
        emit.run(f"DELETE FROM {self.tables.ledger} WHERE version = %s", (version,))

    def delete(self, context, version: str) -> None:
        """Remove a version's row (a version marked ahead, or one no file has)."""
        emit = SqlEmitter(context)
        self.ensure_table(emit)
        self.delete_row(emit, version)

    def _complete_if_present(self, emit: SqlEmitter, version: str) -> None:
        """A legacy row gains its file's checksum and description; a missing row stays missing."""
        migration = self.chain[version]
        emit.run(
            f"UPDATE {self.tables.ledger} SET checksum = coalesce(checksum, %s), description = coalesce(description, %s)"
            " WHERE version = %s",
            (migration.checksum, migration.message, version),
        )

    def _insert_if_missing(self, emit: SqlEmitter, version: str, how: str) -> None:
        # Rows already there (adopted ones, say) keep their original applied_at.
        migration = self.chain[version]
        emit.run(
            f"INSERT INTO {self.tables.ledger} AS s (version, applied_at, checksum, description, applied_by)"
            " VALUES (%s, now(), %s, %s, %s) ON CONFLICT (version) DO UPDATE SET"
            " checksum = coalesce(s.checksum, EXCLUDED.checksum),"
            " description = coalesce(s.description, EXCLUDED.description),"
            f" applied_by = CASE WHEN s.applied_by IS NULL OR s.applied_by = '{UNMARKED}'"
            " THEN EXCLUDED.applied_by ELSE s.applied_by END",
            (version, migration.checksum, migration.message, how),
        )
