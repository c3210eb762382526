-- Preferences as JSON, backfilled for existing users; the DO block reports what it did.
BEGIN;

ALTER TABLE users ADD COLUMN preferences jsonb NOT NULL DEFAULT '{}';

DO $$
DECLARE
    touched integer;
BEGIN
    -- semicolons inside the body are fine; the file is split by PostgreSQL's own parser
    UPDATE users SET preferences = '{"theme": "light"}' WHERE preferences = '{}';
    GET DIAGNOSTICS touched = ROW_COUNT;
    RAISE NOTICE 'backfilled preferences for % users', touched;
END
$$;

COMMIT;
