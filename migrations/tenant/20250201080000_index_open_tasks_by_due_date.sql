-- CREATE INDEX CONCURRENTLY cannot run in a transaction block: this file runs
-- statement by statement and its version is recorded after the last one.
CREATE INDEX CONCURRENTLY IF NOT EXISTS tasks_open_due_idx ON tasks (due_at) WHERE NOT done;
