"""Statements that act on the whole server rather than on the database they run in, read from the parse tree's nodes.

Roles (and their settings, passwords and memberships), tablespaces, ``ALTER SYSTEM``, other
databases, subscriptions and grants on server parameters live in the cluster's shared catalogs
or outside the database.  A build that exists only to read a schema (the scratch databases of
``schema dump``, ``schema check`` and ``drift``, and ``provision``'s template) must not run them
again on a real server: re-running ``ALTER ROLE app SET ...`` silently undoes a DBA's later
change.  ``without_cluster_wide`` gives a file's parse without them, and the statements it left out.
One exception: a ``CREATE ROLE`` whose role the server does not have yet (a fresh CI server) runs as
written, so that the chain's ``GRANT ... TO`` that role still works; creating what is missing undoes
nothing (``created_roles`` names them, the build asks the server which are missing).
Statements inside ``DO`` blocks or functions cannot be seen here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import MigrationFileError
from .migration import MigrationFile
from .parsing import ParsedSql, Statement

__all__ = ["ServerFreeFile", "cluster_wide_reason", "created_roles", "without_cluster_wide"]

_ALWAYS = {
    "CreateRoleStmt": "CREATE ROLE",
    "AlterRoleStmt": "ALTER ROLE",
    "AlterRoleSetStmt": "ALTER ROLE ... SET",
    "DropRoleStmt": "DROP ROLE",
    "GrantRoleStmt": "GRANT/REVOKE role membership",
    "ReassignOwnedStmt": "REASSIGN OWNED",
    "CreatedbStmt": "CREATE DATABASE",
    "DropdbStmt": "DROP DATABASE",
    "AlterDatabaseStmt": "ALTER DATABASE",
    "AlterDatabaseSetStmt": "ALTER DATABASE ... SET",
    "AlterDatabaseRefreshCollStmt": "ALTER DATABASE ... REFRESH COLLATION VERSION",
    "CreateTableSpaceStmt": "CREATE TABLESPACE",
    "DropTableSpaceStmt": "DROP TABLESPACE",
    "AlterTableSpaceOptionsStmt": "ALTER TABLESPACE",
    "AlterSystemStmt": "ALTER SYSTEM",
    "CreateSubscriptionStmt": "CREATE SUBSCRIPTION",
    "AlterSubscriptionStmt": "ALTER SUBSCRIPTION",
    "DropSubscriptionStmt": "DROP SUBSCRIPTION",
}
# Statements on any kind of object: cluster-wide when the object is one of these.
_SHARED_OBJECTS = {"OBJECT_ROLE": "role", "OBJECT_DATABASE": "database", "OBJECT_TABLESPACE": "tablespace",
                   "OBJECT_PARAMETER_ACL": "server parameter", "OBJECT_SUBSCRIPTION": "subscription"}
_ON_OBJECT = {"RenameStmt": ("renameType", "ALTER {} ... RENAME"), "AlterOwnerStmt": ("objectType", "ALTER {} ... OWNER"),
              "GrantStmt": ("objtype", "GRANT/REVOKE ON {}"), "CommentStmt": ("objtype", "COMMENT ON {}"),
              "SecLabelStmt": ("objtype", "SECURITY LABEL ON {}")}


def cluster_wide_reason(node: Any) -> str | None:
    """Name the statement if it acts on the server as a whole (shared catalogs, files, other databases), else None."""
    kind = type(node).__name__
    if kind in _ALWAYS:
        return _ALWAYS[kind]
    if kind not in _ON_OBJECT:
        return None
    field, label = _ON_OBJECT[kind]
    name = getattr(node, field, None)  # the enum's name (OBJECT_ROLE, ...), or None
    shared = _SHARED_OBJECTS.get(name or "")
    return label.format(shared.upper()) if shared else None


def _created_role(node: Any) -> str | None:
    """The role a CREATE ROLE / USER / GROUP statement creates, else None."""
    return node.role if type(node).__name__ == "CreateRoleStmt" else None


def created_roles(files) -> tuple[str, ...]:
    """The roles the files' CREATE ROLE statements create, in order, once each (a file that does not
    parse gives none: the build fails on it, naming it)."""
    names: list[str] = []
    for migration in files:
        try:
            statements = getattr(migration, "source", None) or migration
            statements = statements.parse().statements
        except MigrationFileError:
            continue
        for statement in statements:
            name = _created_role(statement.node) if statement.node is not None else None
            if name and name not in names:
                names.append(name)
    return tuple(names)


def without_cluster_wide(parsed: ParsedSql, create_roles: frozenset[str] = frozenset()) -> tuple[ParsedSql, tuple[tuple[Statement, str], ...]]:
    """``parsed`` without its cluster-wide statements (a unit left empty goes), and those statements with their reason.

    ``create_roles``: roles the server lacks; the CREATE ROLE statements that create them stay.
    """
    skipped: list[tuple[Statement, str]] = []
    units = []
    for unit in parsed.units:
        kept = []
        for statement in unit.statements:
            reason = cluster_wide_reason(statement.node) if statement.node is not None else None
            if reason is not None and _created_role(statement.node) in create_roles:
                reason = None
            if reason is None:
                kept.append(statement)
            else:
                skipped.append((statement, reason))
        if kept:
            units.append(replace(unit, statements=tuple(kept)))
    if not skipped:
        return parsed, ()
    statements = tuple(s for s in parsed.statements if all(s is not gone for gone, _ in skipped))
    return replace(parsed, statements=statements, units=tuple(units)), tuple(skipped)


@dataclass(frozen=True)
class ServerFreeFile(MigrationFile):
    """The same file (version, path, checksum) whose parse leaves out what acts on the whole server."""

    # the file as the chain holds it: its parse is shared, not done again
    source: MigrationFile | None = field(default=None, compare=False, repr=False)
    create_roles: frozenset[str] = field(default=frozenset(), compare=False, repr=False)  # see without_cluster_wide

    def parse(self) -> ParsedSql:
        return self._split()[0]

    @property
    def left_out(self) -> tuple[tuple[Statement, str], ...]:
        """The statements ``parse`` leaves out, each with what it is."""
        return self._split()[1]

    def _split(self):
        return self._cached("_server_free", lambda: without_cluster_wide(
            _without_prechecks((self.source or super(ServerFreeFile, self)).parse()), self.create_roles))

    @classmethod
    def of(cls, migration: MigrationFile, create_roles: frozenset[str] = frozenset()) -> ServerFreeFile:
        return cls(migration.version, migration.description, migration.path, migration.chain, source=migration,
                   create_roles=create_roles)

def _without_prechecks(parsed: ParsedSql) -> ParsedSql:
    """A build that only reads a schema starts from an empty database: there is no data to check."""
    return replace(parsed, prechecks=()) if parsed.prechecks else parsed


def left_out_notices(files, build: str) -> list[str]:
    """One line per statement left out of ``build`` (e.g. "the scratch build"), in file order.

    A file that cannot be read or parsed gives none: the build itself fails on it, naming it as it always does."""
    lines = []
    for migration in files:
        try:
            left_out = migration.left_out if isinstance(migration, ServerFreeFile) else ()
        except MigrationFileError:
            continue
        lines += [f"{migration.path.name} line {statement.line}: {reason} left out of {build}: it acts on the whole"
                  " server, not on one database" for statement, reason in left_out]
    return lines
