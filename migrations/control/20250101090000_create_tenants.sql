-- The registry of tenants. Every tenant whose state is 'provisioned' (and not
-- soft-deleted) has its own database named db_<id>.
BEGIN;

CREATE TABLE tenants (
    id          text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,60}$'),
    name        text NOT NULL,
    state       text NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'provisioned', 'suspended', 'deleted')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);

CREATE INDEX tenants_state_idx ON tenants (state) WHERE deleted_at IS NULL;

COMMIT;
