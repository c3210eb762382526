"""Which statements PostgreSQL refuses to run inside a transaction block, read from the parse tree (``pgparser``).

A file holding one runs it outside a transaction (see ``txshape``); ``parsing`` also names the
statement when a file puts it inside BEGIN/COMMIT.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["called_procedure", "non_transactional_reason", "procedure_definition", "runs_commit"]

# A procedure's name as written: its parts, e.g. ("batches",) or ("ops", "batches").
ProcedureName = tuple[str, ...]


def non_transactional_reason(node: Any, committing: Callable[[ProcedureName], bool] | None = None) -> str | None:
    """Name the statement if PostgreSQL refuses to run it inside a transaction block, else None.

    ``committing`` says whether a procedure runs COMMIT or ROLLBACK, as the chain defines it
    (see ``procedure_definition``): a CALL of one is refused in a transaction block too.
    """
    kind = type(node).__name__
    if kind == "CallStmt":
        name = called_procedure(node)
        return _CALL_REASON if committing is not None and committing(name) else None
    if kind in _ALWAYS_NON_TRANSACTIONAL:
        return _ALWAYS_NON_TRANSACTIONAL[kind]
    check = _CONDITIONALLY_NON_TRANSACTIONAL.get(kind)
    return check(node) if check else None


# Statements that call PreventInTransactionBlock() unconditionally (or in their usual form:
# CREATE/DROP SUBSCRIPTION with a replication slot, ALTER SUBSCRIPTION ... REFRESH).
# Running them in autocommit is always safe, so being conservative costs nothing.
_ALWAYS_NON_TRANSACTIONAL = {
    "CreatedbStmt": "CREATE DATABASE",
    "DropdbStmt": "DROP DATABASE",
    "AlterSystemStmt": "ALTER SYSTEM",
    "CreateTableSpaceStmt": "CREATE TABLESPACE",
    "DropTableSpaceStmt": "DROP TABLESPACE",
    "CreateSubscriptionStmt": "CREATE SUBSCRIPTION",
    "DropSubscriptionStmt": "DROP SUBSCRIPTION",
    "AlterSubscriptionStmt": "ALTER SUBSCRIPTION",
}


def _index_reason(node: Any) -> str | None:
    """CREATE INDEX CONCURRENTLY."""
    return "CREATE INDEX CONCURRENTLY" if node.concurrent else None


def _drop_reason(node: Any) -> str | None:
    """DROP INDEX CONCURRENTLY (only indexes accept CONCURRENTLY)."""
    return "DROP INDEX CONCURRENTLY" if node.concurrent else None


def _reindex_reason(node: Any) -> str | None:
    """REINDEX CONCURRENTLY, or REINDEX of a whole schema, database or system catalog."""
    if any(param.defname == "concurrently" and _defelem_is_true(param) for param in node.params or ()):
        return "REINDEX CONCURRENTLY"
    # REINDEX SCHEMA/DATABASE/SYSTEM commit once per table, so they refuse a transaction block.
    kind = node.kind.name
    if kind in ("REINDEX_OBJECT_SCHEMA", "REINDEX_OBJECT_DATABASE", "REINDEX_OBJECT_SYSTEM"):
        return "REINDEX " + kind.removeprefix("REINDEX_OBJECT_")
    return None


def _vacuum_reason(node: Any) -> str | None:
    """VACUUM, but not a plain ANALYZE (same node)."""
    return "VACUUM" if node.is_vacuumcmd else None


def _cluster_reason(node: Any) -> str | None:
    """CLUSTER of every previously clustered table."""
    return "CLUSTER without a table name" if node.relation is None else None


def _alter_database_reason(node: Any) -> str | None:
    """ALTER DATABASE ... SET TABLESPACE (other ALTER DATABASE forms are transactional)."""
    if any(option.defname == "tablespace" for option in node.options or ()):
        return "ALTER DATABASE ... SET TABLESPACE"
    return None


def _alter_table_reason(node: Any) -> str | None:
    """ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY."""
    for cmd in node.cmds or ():
        partition = cmd.def_
        if type(partition).__name__ == "PartitionCmd" and partition.concurrent:
            return "DETACH PARTITION CONCURRENTLY"
    return None


def _do_reason(node: Any) -> str | None:
    """A PL/pgSQL DO block whose body runs COMMIT or ROLLBACK: in a transaction block PostgreSQL
    refuses it (invalid transaction termination); psql runs it in autocommit, and so do we."""
    from . import pgparser  # the module only: the parser itself loads when a body is parsed

    options = {option.defname: getattr(option.arg, "sval", None) for option in node.args or ()}
    if (options.get("language") or "plpgsql").lower() != "plpgsql" or not options.get("as"):
        return None
    return "DO block that runs COMMIT or ROLLBACK" if pgparser.plpgsql_ends_transaction(options["as"]) else None


_CALL_REASON = "CALL of a procedure that runs COMMIT or ROLLBACK"


def procedure_definition(node: Any) -> tuple[ProcedureName, bool] | None:
    """For CREATE [OR REPLACE] PROCEDURE: (its name, whether its PL/pgSQL body runs COMMIT or ROLLBACK)."""
    from . import pgparser  # the module only, as in _do_reason

    if type(node).__name__ != "CreateFunctionStmt" or not node.is_procedure:
        return None
    options = {option.defname: option.arg for option in node.options or ()}
    language = (getattr(options.get("language"), "sval", None) or "sql").lower()
    items = options.get("as") or ()  # a List node arrives as a tuple of its items
    body = getattr(items[0], "sval", None) if items else None
    commits = language == "plpgsql" and bool(body) and bool(pgparser.plpgsql_ends_transaction(body))
    return tuple(part.sval for part in node.funcname), commits


def called_procedure(node: Any) -> ProcedureName:
    """The name a CALL statement names, as written."""
    return tuple(part.sval for part in node.funccall.funcname)


def runs_commit(name: ProcedureName, known: dict[ProcedureName, bool]) -> bool:
    """Whether a CALL of ``name`` may reach a procedure of ``known`` that commits: the same name, and the
    same schema where both give one (which schema an unqualified name reaches is the server's to say)."""
    for defined, commits in known.items():
        if commits and defined[-1] == name[-1] and (len(defined) == 1 or len(name) == 1 or defined == name):
            return True
    return False


def _discard_reason(node: Any) -> str | None:
    """DISCARD ALL (DISCARD PLANS/SEQUENCES/TEMP are transactional)."""
    return "DISCARD ALL" if node.target.name == "DISCARD_ALL" else None


_CONDITIONALLY_NON_TRANSACTIONAL: dict[str, Callable[[Any], str | None]] = {
    "IndexStmt": _index_reason,
    "DropStmt": _drop_reason,
    "ReindexStmt": _reindex_reason,
    "VacuumStmt": _vacuum_reason,
    "ClusterStmt": _cluster_reason,
    "AlterDatabaseStmt": _alter_database_reason,
    "AlterTableStmt": _alter_table_reason,
    "DiscardStmt": _discard_reason,
    "DoStmt": _do_reason,
}


def _defelem_is_true(option: Any) -> bool:
    """Evaluate a boolean option the way PostgreSQL's defGetBoolean does (no value = true)."""
    value = option.arg
    if value is None:
        return True
    kind = type(value).__name__
    if kind == "Integer":
        return (value.ival or 0) != 0  # 0 is left out of the tree
    if kind == "Boolean":
        return bool(value.boolval)
    if kind == "String":
        return value.sval.lower() in ("true", "on")
    return True
