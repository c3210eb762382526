"""One database: connection and session policy, the executor, the ledger, the plan, INVALID-index repair,
the Alembic bridge and one database's job (runner, mark, reset)."""
