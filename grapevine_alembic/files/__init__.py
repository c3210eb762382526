"""The migration files: a .sql file becomes an immutable value (naming, discovery, parsing, transaction shape,
hazards, authoring). Never opens a connection."""
