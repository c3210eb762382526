"""A realistic 40-file tenant chain: an initial schema of 25 tables, then the small changes real teams ship."""

from __future__ import annotations

from pathlib import Path

ENTITIES = [
    "accounts", "users", "teams", "memberships", "projects", "boards", "columns", "cards", "comments",
    "attachments", "labels", "card_labels", "checklists", "checklist_items", "notifications", "invites",
    "webhooks", "webhook_deliveries", "api_keys", "audit_events", "sessions", "settings", "tags",
    "saved_views", "reactions",
]
PARENT = {
    "users": "accounts", "teams": "accounts", "memberships": "teams", "projects": "teams", "boards": "projects",
    "columns": "boards", "cards": "columns", "comments": "cards", "attachments": "cards", "labels": "boards",
    "card_labels": "cards", "checklists": "cards", "checklist_items": "checklists", "notifications": "users",
    "invites": "teams", "webhooks": "projects", "webhook_deliveries": "webhooks", "api_keys": "accounts",
    "audit_events": "accounts", "sessions": "users", "settings": "accounts", "tags": "accounts",
    "saved_views": "users", "reactions": "comments",
}


def _initial_schema() -> str:
    parts = [
        "-- Initial tenant schema: 25 tables, foreign keys, indexes, functions and triggers.",
        "BEGIN;",
        "CREATE FUNCTION touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        "BEGIN\n  NEW.updated_at := now();\n  RETURN NEW;\nEND\n$$;",
        "CREATE FUNCTION slugify(value text) RETURNS text LANGUAGE sql IMMUTABLE AS $$\n"
        "  SELECT trim(both '-' from regexp_replace(lower(value), '[^a-z0-9]+', '-', 'g'))\n$$;",
    ]
    for table in ENTITIES:
        parent = PARENT.get(table)
        fk = f",\n    {parent[:-1]}_id bigint NOT NULL REFERENCES {parent} (id) ON DELETE CASCADE" if parent else ""
        parts.append(
            f"CREATE TABLE {table} (\n    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY{fk},\n"
            "    name text NOT NULL DEFAULT '',\n    metadata jsonb NOT NULL DEFAULT '{}',\n"
            "    created_at timestamptz NOT NULL DEFAULT now(),\n    updated_at timestamptz NOT NULL DEFAULT now()\n);"
        )
        if parent:
            parts.append(f"CREATE INDEX {table}_{parent[:-1]}_id_idx ON {table} ({parent[:-1]}_id);")
        parts.append(f"CREATE INDEX {table}_created_at_idx ON {table} (created_at);")
        parts.append(
            f"CREATE TRIGGER {table}_touch BEFORE UPDATE ON {table}\n"
            "    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();"
        )
    parts.append("COMMIT;")
    return "\n\n".join(parts) + "\n"


def _changes() -> list[tuple[str, str]]:
    """39 small follow-up migrations (name, sql)."""
    changes: list[tuple[str, str]] = []
    for index, table in enumerate(ENTITIES[:12]):
        wrap = index % 2 == 0
        body = (f"ALTER TABLE {table} ADD COLUMN archived boolean NOT NULL DEFAULT false;\n"
                f"COMMENT ON COLUMN {table}.archived IS 'hidden from default views';\n")
        changes.append((f"add_archived_to_{table}", f"BEGIN;\n{body}COMMIT;\n" if wrap else body))
    for table in ENTITIES[12:20]:
        changes.append((
            f"index_{table}_name",
            f"BEGIN;\nCREATE INDEX {table}_name_idx ON {table} (lower(name));\nCOMMIT;\n",
        ))
    changes.append((
        "index_cards_name_concurrently",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS cards_name_trgm_idx ON cards (name);\n",
    ))
    for table in ("users", "projects", "cards", "comments", "boards"):
        changes.append((
            f"backfill_{table}_slug",
            f"BEGIN;\nALTER TABLE {table} ADD COLUMN slug text;\n"
            "DO $$\nDECLARE\n  touched integer;\nBEGIN\n"
            f"  UPDATE {table} SET slug = slugify(name) WHERE slug IS NULL;\n"
            "  GET DIAGNOSTICS touched = ROW_COUNT;\n"
            f"  RAISE NOTICE 'backfilled % {table} slugs', touched;\nEND\n$$;\nCOMMIT;\n",
        ))
    changes += [
        ("create_billing_events", "BEGIN;\nCREATE TABLE billing_events (\n    id bigint GENERATED ALWAYS AS IDENTITY"
         " PRIMARY KEY,\n    account_id bigint NOT NULL REFERENCES accounts (id),\n    kind text NOT NULL,\n"
         "    amount_cents integer NOT NULL CHECK (amount_cents >= 0),\n    at timestamptz NOT NULL DEFAULT now()\n);\n"
         "CREATE INDEX billing_events_account_at_idx ON billing_events (account_id, at);\nCOMMIT;\n"),
        ("open_cards_view", "CREATE VIEW open_cards AS\n  SELECT c.id, c.name, c.created_at FROM cards c"
         " WHERE NOT c.archived;\n"),
        ("card_position", "BEGIN;\nALTER TABLE cards ADD COLUMN position integer NOT NULL DEFAULT 0;\n"
         "CREATE INDEX cards_column_position_idx ON cards (column_id, position);\nCOMMIT;\n"),
        ("user_email", "BEGIN;\nALTER TABLE users ADD COLUMN email text;\n"
         "CREATE UNIQUE INDEX users_email_idx ON users (lower(email)) WHERE email IS NOT NULL;\nCOMMIT;\n"),
        ("webhook_secret", "ALTER TABLE webhooks ADD COLUMN secret text NOT NULL DEFAULT md5(random()::text);\n"),
        ("card_due_check", "BEGIN;\nALTER TABLE cards ADD COLUMN due_at timestamptz;\n"
         "ALTER TABLE cards ADD CONSTRAINT cards_due_after_created CHECK (due_at IS NULL OR due_at >= created_at);\n"
         "COMMIT;\n"),
        ("audit_partition_hint", "BEGIN;\nCOMMENT ON TABLE audit_events IS 'append-only; archived monthly';\n"
         "ALTER TABLE audit_events ALTER COLUMN metadata SET DEFAULT '{\"v\": 1}';\nCOMMIT;\n"),
        ("count_cards_function", "CREATE FUNCTION count_open_cards(board bigint) RETURNS bigint LANGUAGE sql"
         " STABLE AS $$\n  SELECT count(*) FROM cards c JOIN columns col ON col.id = c.column_id\n"
         "  WHERE col.board_id = board AND NOT c.archived\n$$;\n"),
        ("session_expiry", "BEGIN;\nALTER TABLE sessions ADD COLUMN expires_at timestamptz NOT NULL"
         " DEFAULT now() + interval '30 days';\nCREATE INDEX sessions_expires_at_idx ON sessions (expires_at);\n"
         "COMMIT;\n"),
    ]
    for table in ENTITIES[20:24]:
        changes.append((f"{table}_notes", f"ALTER TABLE {table} ADD COLUMN notes text;\n"))
    assert len(changes) == 39, len(changes)
    return changes


def write_chain(folder: Path, start_day: int = 1) -> list[Path]:
    """Write the 40 files into ``folder`` (versions 2024-01-01 00:00:00, then one hour apart)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = [("initial_schema", _initial_schema()), *_changes()]
    paths = []
    for hour, (name, sql) in enumerate(files):
        version = f"202401{start_day + hour // 24:02d}{hour % 24:02d}0000"
        path = folder / f"{version}_{name}.sql"
        path.write_text(sql)
        paths.append(path)
    return paths
