"""The names of the tool's two tables, from ``alembic.ini``, and the SQL that names them.

Alembic's version table (``alembic_version``) and the ledger beside it (``schema_migrations``,
the previous tool's table) are the tool's own.  A team whose files already use either name
(from Alembic or golang-migrate) renames the tool's instead, per environment section::

    [tenant]
    version_table = grapevine_version        # Alembic's own option name
    version_table_schema = migrations        # optional; default: the session's search_path
    ledger_table = grapevine_ledger
    ledger_table_schema = migrations         # optional

and, in ``[control]`` only, the rollout record (``fleet/record``): ``rollout_table = grapevine_rollouts``
names the rollouts, and ``<rollout_table>_tenants`` their tenants; ``verified_table = grapevine_verified``
holds drift's fingerprints (``schema/fingerprint``).

Names are plain lowercase identifiers, so the SQL here can quote them without surprises and
the file check (``tool_table_writes``) can compare them with what the parser reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from .errors import ConfigError

DEFAULT_VERSION_TABLE = "alembic_version"
DEFAULT_LEDGER_TABLE = "schema_migrations"
DEFAULT_ROLLOUT_TABLE = "grapevine_rollouts"
DEFAULT_VERIFIED_TABLE = "grapevine_verified"
# option name in alembic.ini -> what it names, for messages
OPTIONS = {"version_table": "version table", "ledger_table": "ledger"}
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}", re.ASCII)

# The previous tool's table had only (version VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ);
# adding columns keeps its rows.
LEDGER_EXTRA_COLUMNS = {"checksum": "text", "description": "text", "applied_by": "text", "execution_ms": "integer"}
LEDGER_COLUMNS = {"version", "applied_at", *LEDGER_EXTRA_COLUMNS}


@dataclass(frozen=True)
class ToolTables:
    version_table: str = DEFAULT_VERSION_TABLE
    version_schema: str | None = None
    ledger_table: str = DEFAULT_LEDGER_TABLE
    ledger_schema: str | None = None
    rollout_table: str = DEFAULT_ROLLOUT_TABLE  # control only: the rollout record
    verified_table: str = DEFAULT_VERIFIED_TABLE  # read from [control] only: it lives in the control database

    def __post_init__(self) -> None:
        for option, value in (("version_table", self.version_table), ("version_table_schema", self.version_schema),
                              ("ledger_table", self.ledger_table), ("ledger_table_schema", self.ledger_schema),
                              ("rollout_table", self.rollout_table), ("verified_table", self.verified_table)):
            if value is not None and not _IDENTIFIER.fullmatch(value):
                raise ConfigError(
                    f"{option} = {value[:70]!r}: use a lowercase identifier (letters a-z, digits, _; at most 63)"
                )
        if len(self.rollout_table) > 55:  # its tenants table adds "_tenants"
            raise ConfigError(f"rollout_table = {self.rollout_table!r}: at most 55 characters")
        if (self.version_schema, self.version_table) == (self.ledger_schema, self.ledger_table):
            raise ConfigError(f"version_table and ledger_table are both {self.version_table!r}: they must differ")
        if self.verified_table in (self.version_table, self.ledger_table):
            raise ConfigError(f"verified_table = {self.verified_table!r} is already the version table or the ledger:"
                              " name it differently")

    @classmethod
    def from_section(cls, options: dict[str, str], where: str = "alembic.ini") -> ToolTables:
        """From an ini section's options (missing or empty ones keep their defaults)."""

        def get(name: str) -> str | None:
            value = (options.get(name) or "").strip()
            return value or None

        try:
            return cls(get("version_table") or DEFAULT_VERSION_TABLE, get("version_table_schema"),
                       get("ledger_table") or DEFAULT_LEDGER_TABLE, get("ledger_table_schema"),
                       get("rollout_table") or DEFAULT_ROLLOUT_TABLE, get("verified_table") or DEFAULT_VERIFIED_TABLE)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None

    # ---- names as SQL ----
    @cached_property
    def version(self) -> str:
        return _qualified(self.version_schema, self.version_table)

    @cached_property
    def ledger(self) -> str:
        return _qualified(self.ledger_schema, self.ledger_table)

    @property
    def rollouts(self) -> str:
        return _quoted(self.rollout_table)

    @property
    def rollout_tenants(self) -> str:
        return _quoted(self.rollout_table + "_tenants")

    @property
    def own_names(self) -> tuple[str, ...]:
        """Every relation the tool creates under these names (``drift`` and ``schema dump`` leave them out)."""
        return (self.version_table, self.ledger_table, self.rollout_table, self.rollout_table + "_tenants",
                self.rollout_table + "_id_seq", self.verified_table)

    def regclass(self, which: str) -> str:
        """``to_regclass('...')`` of the version table or the ledger (``which``: "version" or "ledger")."""
        return f"to_regclass('{getattr(self, which)}')"

    @property
    def unpinned(self) -> list[tuple[str, str]]:
        """(table, "version" or "ledger") of the tables configured without a schema."""
        return [(table, which) for table, schema, which in ((self.version_table, self.version_schema, "version"),
                                                             (self.ledger_table, self.ledger_schema, "ledger"))
                if schema is None]

    @cached_property  # built once: read for every database of a run (as are version, ledger, plain_state)
    def placed(self) -> str:
        """A boolean, cheap enough for every state read (no catalog scan): false when a table named
        without a schema resolves to one outside ``current_schema()`` (see ``misplaced``). Functions named
        in full, no operators: a fresh backend resolving ``regclass = regclass`` and ``||`` cost every
        database's state read about 0.4 ms more (bench: 0.73 against 0.27 ms over the read without it)."""
        return " AND ".join(
            f"coalesce(pg_catalog.oideq({self.regclass(which)}, pg_catalog.to_regclass(pg_catalog.concat("
            f"pg_catalog.quote_ident(pg_catalog.current_schema()), '.{_quoted(table)}'))), {self.regclass(which)} IS NULL)"
            for table, which in self.unpinned) or "true"

    @property
    def misplaced(self) -> str:
        """A scalar: the schemas holding a tool table that names no schema but is not where the
        session's search_path creates tables (``current_schema()``), else NULL.

        Both tables were created in ``current_schema()`` by name, and the files ran with the same
        search_path; a table found elsewhere means the search_path changed since
        (``ALTER DATABASE/ROLE ... SET search_path``): a table the search_path no longer reaches would
        read as a fresh database, and one it still reaches would let files run into another schema.
        """
        unpinned = self.unpinned
        # the table the name resolves to, or any of that name when it resolves to none (the IN list
        # first: pg_class's index on relname, not a scan of every relation)
        names = ", ".join(f"'{table}'" for table, _ in unpinned)
        found = " OR ".join(f"(c.relname = '{table}' AND coalesce(c.oid = {self.regclass(which)}, true))"
                            for table, which in unpinned)
        return ("(SELECT pg_catalog.string_agg(DISTINCT n.nspname, ', ') FROM pg_catalog.pg_class c"
                " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
                f" WHERE c.relname IN ({names}) AND ({found}) AND c.relkind IN ('r', 'p')"
                " AND n.nspname IS DISTINCT FROM pg_catalog.current_schema()"
                " AND n.nspname <> 'information_schema' AND pg_catalog.left(n.nspname, 3) <> 'pg_')")

    # ---- DDL ----
    @property
    def version_ddl(self) -> str:
        """Exactly what Alembic creates (MigrationContext._version), so both roads share one table."""
        return (
            f"CREATE TABLE {self.version} (version_num VARCHAR(32) NOT NULL,"
            f" CONSTRAINT {_quoted(self.version_table + '_pkc')} PRIMARY KEY (version_num))"
        )

    @property
    def ledger_create(self) -> str:
        return (
            f"CREATE TABLE IF NOT EXISTS {self.ledger} (version varchar(255) PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now(), "
            + ", ".join(f"{name} {kind}" for name, kind in LEDGER_EXTRA_COLUMNS.items()) + ")"
        )

    @property
    def ledger_ddl(self) -> tuple[str, str]:
        return (
            self.ledger_create,
            f"ALTER TABLE {self.ledger} "
            + ", ".join(f"ADD COLUMN IF NOT EXISTS {name} {kind}" for name, kind in LEDGER_EXTRA_COLUMNS.items()),
        )

    def ledger_add_columns(self, missing: list[str]) -> str:
        return f"ALTER TABLE {self.ledger} " + ", ".join(f"ADD COLUMN {n} {LEDGER_EXTRA_COLUMNS[n]}" for n in missing)

    @property
    def upsert(self) -> str:
        """The ledger row of an applied version; five ``{}`` (or ``%s``) slots for its values."""
        return (
            f"INSERT INTO {self.ledger} AS s (version, applied_at, checksum, description, applied_by, execution_ms)"
            " VALUES ({}, now(), {}, {}, {}, {}) ON CONFLICT (version) DO UPDATE SET applied_at = now(),"
            " checksum = EXCLUDED.checksum, description = EXCLUDED.description, applied_by = EXCLUDED.applied_by,"
            " execution_ms = EXCLUDED.execution_ms"
        )

    @cached_property
    def plain_state(self) -> str:
        """Both tables as plain rows in one statement (see ledger._read_plain)."""
        return (
            "SELECT true, v.version_num::text, NULL::timestamptz, NULL::text, NULL::text, NULL::integer"
            f" FROM {self.version} v"
            " UNION ALL SELECT false, s.version::text, s.applied_at, s.checksum, s.applied_by, s.execution_ms"
            f" FROM {self.ledger} s"
        )

    def alembic_options(self) -> dict[str, str | None]:
        """``version_table`` / ``version_table_schema`` for Alembic's ``MigrationContext``."""
        return {"version_table": self.version_table, "version_table_schema": self.version_schema}


def _qualified(schema: str | None, name: str) -> str:
    return f"{_quoted(schema)}.{_quoted(name)}" if schema else _quoted(name)


# The default names are no keywords (tests/test_database_tool_tables.py checks): they need no
# keyword test, which loads the parser (about 20 ms), which `provision` needs for nothing else.
_NO_KEYWORDS = frozenset({DEFAULT_VERSION_TABLE, DEFAULT_VERSION_TABLE + "_pkc", DEFAULT_LEDGER_TABLE,
                          DEFAULT_ROLLOUT_TABLE, DEFAULT_ROLLOUT_TABLE + "_tenants"})


def _quoted(identifier: str) -> str:
    """A validated lowercase identifier, quoted only where PostgreSQL needs it (a keyword such as
    ``user``), so the SQL --sql prints reads as written by hand."""
    if identifier in _NO_KEYWORDS:
        return identifier
    return f'"{identifier}"' if _is_keyword(identifier) else identifier


def _is_keyword(identifier: str) -> bool:
    """A keyword PostgreSQL does not take as a plain name everywhere (reserved, column name, type or function).

    The one use of the parser's binding outside files/pgparser: the root may not import files/.
    """
    import postgast  # lazy: see _NO_KEYWORDS

    tokens = postgast.scan(identifier).tokens
    kind = postgast.pg_query_pb2.KeywordKind.Name(tokens[0].keyword_kind) if len(tokens) == 1 else "NO_KEYWORD"
    return kind not in ("NO_KEYWORD", "UNRESERVED_KEYWORD")


DEFAULT_TABLES = ToolTables()
