-- The schema the control migrations produce at 20250115120000.
-- Written by `grapevine-migrations schema dump`; `schema check` fails when it is stale.
-- Not a migration: it never runs as one. Owners, grants and the tool's own tables are left out.

SET check_function_bodies = false;
SET client_min_messages = warning;

CREATE TABLE public.tenants (
    id text NOT NULL,
    name text NOT NULL,
    state text DEFAULT 'pending'::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    deleted_at timestamp with time zone,
    plan text DEFAULT 'free'::text NOT NULL
);

ALTER TABLE public.tenants ADD CONSTRAINT tenants_pkey PRIMARY KEY (id);

ALTER TABLE public.tenants ADD CONSTRAINT tenants_id_check CHECK ((id ~ '^[A-Za-z0-9_-]{1,60}$'::text));

ALTER TABLE public.tenants ADD CONSTRAINT tenants_state_check CHECK ((state = ANY (ARRAY['pending'::text, 'provisioned'::text, 'suspended'::text, 'deleted'::text])));

CREATE INDEX tenants_state_idx ON public.tenants USING btree (state) WHERE (deleted_at IS NULL);
