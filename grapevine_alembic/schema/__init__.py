"""The schema as an artifact: what the chain produces, and whether each database still has it.

``catalog`` reads one database's schema in one round trip, ``scratch`` builds a throwaway
database at a version, ``render`` writes deterministic schema.sql from a snapshot, ``diff``
names the differences between two snapshots and ``grouping`` folds databases with the same
differences together.  The commands are ``cli/commands/schema_commands`` and ``cli/commands/drift_command``.
"""
