-- Base schema of a tenant database, for reference and for new tooling.
-- Not part of the migration chain: the .sql files with a timestamp are.
CREATE TABLE users (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email       text NOT NULL UNIQUE,
    full_name   text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    preferences jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE projects (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner_id    bigint NOT NULL REFERENCES users (id),
    name        text NOT NULL,
    archived    boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tasks (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id  bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    title       text NOT NULL,
    done        boolean NOT NULL DEFAULT false,
    due_at      timestamptz
);
CREATE INDEX tasks_project_id_idx ON tasks (project_id);
CREATE INDEX tasks_open_due_idx ON tasks (due_at) WHERE NOT done;
