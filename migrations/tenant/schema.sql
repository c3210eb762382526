-- The schema the tenant migrations produce at 20250201080000.
-- Written by `grapevine-migrations schema dump`; `schema check` fails when it is stale.
-- Not a migration: it never runs as one. Owners, grants and the tool's own tables are left out.

SET check_function_bodies = false;
SET client_min_messages = warning;

CREATE TABLE public.projects (
    id bigint GENERATED ALWAYS AS IDENTITY,
    owner_id bigint NOT NULL,
    name text NOT NULL,
    archived boolean DEFAULT false NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE public.tasks (
    id bigint GENERATED ALWAYS AS IDENTITY,
    project_id bigint NOT NULL,
    title text NOT NULL,
    done boolean DEFAULT false NOT NULL,
    due_at timestamp with time zone
);

CREATE TABLE public.users (
    id bigint GENERATED ALWAYS AS IDENTITY,
    email text NOT NULL,
    full_name text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    preferences jsonb DEFAULT '{}'::jsonb NOT NULL
);

ALTER TABLE public.projects ADD CONSTRAINT projects_pkey PRIMARY KEY (id);

ALTER TABLE public.tasks ADD CONSTRAINT tasks_pkey PRIMARY KEY (id);

ALTER TABLE public.users ADD CONSTRAINT users_pkey PRIMARY KEY (id);

ALTER TABLE public.users ADD CONSTRAINT users_email_key UNIQUE (email);

ALTER TABLE public.projects ADD CONSTRAINT projects_owner_id_fkey FOREIGN KEY (owner_id) REFERENCES public.users(id);

ALTER TABLE public.tasks ADD CONSTRAINT tasks_project_id_fkey FOREIGN KEY (project_id) REFERENCES public.projects(id) ON DELETE CASCADE;

CREATE INDEX tasks_open_due_idx ON public.tasks USING btree (due_at) WHERE (NOT done);

CREATE INDEX tasks_project_id_idx ON public.tasks USING btree (project_id);
