"""`check`: our rules, Squawk, findings, what changed since a revision, ignores. Writes to no database."""
