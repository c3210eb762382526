"""schema.sql from a catalog snapshot: pg_dump-style statements in an order that restores.

Deterministic by construction: every list in the snapshot is sorted by name, views by their
dependencies and then by name, and nothing depends on OIDs, the server's version banner or
the clock.  Owners and grants are left out (like ``pg_dump --no-owner --no-privileges``).
Order: schemas, extensions, types, sequences, functions that need no table, tables (parents
first), the functions that do, aggregates, views, then sequence ownership, constraints (foreign
keys last), indexes and triggers, then what a ``complete`` snapshot adds (clustering, replica
identity, column settings, statistics, rules, policies, row level security, comments last), so
every statement finds what it refers to.
"""

from __future__ import annotations

HEADER = """\
-- The schema the {env} migrations produce at {version}.
-- Written by `grapevine-migrations schema dump`; `schema check` fails when it is stale.
-- Not a migration: it never runs as one. Owners, grants and the tool's own tables are left out.

SET check_function_bodies = false;
SET client_min_messages = warning;
"""


def render(snapshot: dict, *, env: str, version: str | None, privileges: bool = False) -> str:
    blocks: list[str] = []
    for schema in snapshot["schemas"]:
        if schema["name"] != "public":
            blocks.append(f"CREATE SCHEMA {schema['qname']};")
    blocks += [f"CREATE EXTENSION IF NOT EXISTS {e['qname']};" for e in snapshot["extensions"]]
    order = {"e": 0, "r": 1, "d": 2, "c": 3}
    blocks += [_type(t) for t in sorted(snapshot["types"], key=lambda t: order.get(t["kind"], 9))]
    blocks += [_sequence(s) for s in snapshot["sequences"]]
    blocks += [f["definition"].rstrip() + ";" for f in snapshot["functions"] if not f["uses_tables"]]
    details = _TableDetails(snapshot)
    blocks += [_table(t, details) for t in _parents_first(snapshot["tables"], details)]
    blocks += [f["definition"].rstrip() + ";" for f in snapshot["functions"] if f["uses_tables"]]
    blocks += [_aggregate(a) for a in snapshot.get("aggregates", ())]
    blocks += [_view(v) for v in _views_in_order(snapshot["views"])]
    blocks += [f"ALTER SEQUENCE {s['qname']} OWNED BY {s['owned_by']};" for s in snapshot["sequences"] if s["owned_by"]]
    rank = {"p": 0, "u": 1, "x": 2, "c": 3, "t": 4, "f": 5}
    constraints = [c for c in snapshot["constraints"] if c["local"]]
    blocks += [f"ALTER TABLE {c['table']} ADD CONSTRAINT {c['qname']} {c['definition']};"
               for c in sorted(constraints, key=lambda c: rank.get(c["type"], 9))]
    blocks += [i["definition"] + ";" for i in snapshot["indexes"] if not i["attached"] or details.index_parents]
    # a partitioned table's index is written ON ONLY: its partitions' indexes are attached to it
    blocks += [f"ALTER INDEX {i['parent']} ATTACH PARTITION {i['index']};" for i in details.index_parents]
    for trigger in snapshot["triggers"]:
        blocks.append(trigger["definition"] + ";")
        if trigger["enabled"] == "D":
            blocks.append(f"ALTER TABLE {trigger['table']} DISABLE TRIGGER {trigger['qname']};")
    blocks += details.after_tables(snapshot)
    if privileges:
        blocks += _privileges(snapshot.get("privileges", ()))
    return HEADER.format(env=env, version=version or "no version (no files)") + "".join(f"\n{b}\n" for b in blocks)


class _TableDetails:
    """What ``complete`` snapshots add about tables and columns, by table (empty for drift's snapshots)."""

    def __init__(self, snapshot: dict):
        self.options = {t["table"]: t for t in snapshot.get("table_options", ())}
        self.not_null = {(n["table"], n["column"]): n for n in snapshot.get("not_null", ())}
        self.identities = {(i["table"], i["column"]): i for i in snapshot.get("identities", ())}
        self.columns = snapshot.get("column_options", ())
        self.index_parents = snapshot.get("index_parents", ())

    def inherits(self, table: str) -> list[str]:
        return (self.options.get(table) or {}).get("inherits") or []

    def after_tables(self, snapshot: dict) -> list[str]:
        blocks = []
        for table, t in self.options.items():
            if t["clustered"]:
                blocks.append(f"ALTER TABLE {table} CLUSTER ON {t['clustered']};")
            if t["replica"] in _REPLICA:
                blocks.append(f"ALTER TABLE ONLY {table} REPLICA IDENTITY {_REPLICA[t['replica']]};")
            elif t["replica"] == "i" and t["replica_index"]:
                blocks.append(f"ALTER TABLE ONLY {table} REPLICA IDENTITY USING INDEX {t['replica_index']};")
        for c in self.columns:
            if c["statistics"] is not None:
                blocks.append(f"ALTER TABLE ONLY {c['table']} ALTER COLUMN {c['column']} SET STATISTICS {c['statistics']};")
            if c["storage"]:
                blocks.append(f"ALTER TABLE ONLY {c['table']} ALTER COLUMN {c['column']} SET STORAGE {_STORAGE[c['storage']]};")
            if c["compression"]:
                blocks.append(f"ALTER TABLE ONLY {c['table']} ALTER COLUMN {c['column']} SET COMPRESSION"
                              f" {_COMPRESSION.get(c['compression'], c['compression'])};")
        for s in snapshot.get("statistics", ()):
            blocks.append(s["definition"] + ";")
            if s["target"] is not None:
                blocks.append(f"ALTER STATISTICS {s['qname']} SET STATISTICS {s['target']};")
        blocks += [r["definition"] for r in snapshot.get("rules", ())]
        blocks += [p["definition"] + ";" for p in snapshot.get("policies", ())]
        for table, t in self.options.items():
            if t["rls"]:
                blocks.append(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;")
            if t["force_rls"]:
                blocks.append(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY;")
        blocks += [f"COMMENT ON {c['target']} IS {_literal(c['text'])};" for c in snapshot.get("comments", ())]
        return blocks


_REPLICA = {"f": "FULL", "n": "NOTHING"}
_STORAGE = {"p": "PLAIN", "e": "EXTERNAL", "m": "MAIN", "x": "EXTENDED"}
_COMPRESSION = {"p": "pglz", "l": "lz4"}


def _privileges(entries) -> list[str]:
    """GRANT and REVOKE against each object's default privileges, revokes first, several privileges in one statement."""
    grouped: dict = {}
    for e in entries:
        key = (e["target"], e["granted"], e["column"] or "", e["grantee"], e["grantable"])
        grouped.setdefault(key, []).append(e["privilege"])
    lines = []
    for (target, granted, column, grantee, grantable), names in sorted(grouped.items()):
        what = ", ".join(f"{name}({column})" if column else name for name in sorted(names))
        if granted:
            lines.append(f"GRANT {what} ON {target} TO {grantee}{' WITH GRANT OPTION' if grantable else ''};")
        else:
            lines.append(f"REVOKE {what} ON {target} FROM {grantee};")
    return lines


def _aggregate(a: dict) -> str:
    options = [f"SFUNC = {a['sfunc']}", f"STYPE = {a['stype']}"]
    for key, label in (("sspace", "SSPACE"), ("finalfunc", "FINALFUNC"), ("combinefunc", "COMBINEFUNC"),
                       ("serialfunc", "SERIALFUNC"), ("deserialfunc", "DESERIALFUNC")):
        if a[key] is not None:
            options.append(f"{label} = {a[key]}")
    if a["finalfunc_extra"]:
        options.append("FINALFUNC_EXTRA")
    if a["initcond"] is not None:
        options.append(f"INITCOND = {_literal(a['initcond'])}")
    if a["sortop"] is not None:
        options.append(f"SORTOP = {a['sortop'].split('(')[0]}")
    if a["parallel"] in ("s", "r"):
        options.append(f"PARALLEL = {'SAFE' if a['parallel'] == 's' else 'RESTRICTED'}")
    body = ",\n".join("    " + option for option in options)
    return f"CREATE AGGREGATE {a['qname']}({a['arguments']}) (\n{body}\n);"


def _type(t: dict) -> str:
    if t["kind"] == "e":
        labels = ",\n".join("    " + _literal(label) for label in t["labels"])
        return f"CREATE TYPE {t['qname']} AS ENUM (\n{labels}\n);"
    if t["kind"] == "r":
        return f"CREATE TYPE {t['qname']} AS RANGE (subtype = {t['subtype']});"
    if t["kind"] == "d":
        text = f"CREATE DOMAIN {t['qname']} AS {t['base']}"
        if t["default"] is not None:
            text += f" DEFAULT {t['default']}"
        if t["not_null"]:
            text += " NOT NULL"
        for check in t["checks"]:
            text += f"\n    CONSTRAINT {check['qname']} {check['definition']}"
        return text + ";"
    attributes = ",\n".join(f"    {a['qname']} {a['type']}" for a in t["attributes"] or ())
    return f"CREATE TYPE {t['qname']} AS (\n{attributes}\n);"


def _sequence(s: dict) -> str:
    return f"CREATE SEQUENCE {s['qname']}\n" + _sequence_options(s, "    ") + ";"


def _sequence_options(s: dict, indent: str, *, typed: bool = True) -> str:
    lines = [f"AS {s['type']}"] * typed + [f"START WITH {s['start']}", f"INCREMENT BY {s['increment']}", f"MINVALUE {s['min']}",
             f"MAXVALUE {s['max']}", f"CACHE {s['cache']}"] + (["CYCLE"] if s["cycle"] else [])
    return "\n".join(indent + line for line in lines)


def _table(t: dict, details: _TableDetails) -> str:
    unlogged = "UNLOGGED " if t["unlogged"] else ""
    options = (details.options.get(t["qname"]) or {}).get("options")
    with_options = f"\nWITH ({', '.join(options)})" if options else ""
    if t["partition_of"]:
        text = f"CREATE {unlogged}TABLE {t['qname']} PARTITION OF {t['partition_of']}\n    {t['bound']}"
        return text + (f"\nPARTITION BY {t['partition_key']}" if t["partition_key"] else "") + with_options + ";"
    parents = details.inherits(t["qname"])
    # an inherited column comes from its parent, unless the table declares it too
    columns = ",\n".join("    " + _column(t["qname"], c, details) for c in t["columns"] if c["local"] or not parents)
    text = f"CREATE {unlogged}TABLE {t['qname']} (\n{columns}\n)"
    if parents:
        text += f"\nINHERITS ({', '.join(parents)})"
    if t["partition_key"]:
        text += f"\nPARTITION BY {t['partition_key']}"
    return text + with_options + ";"


def _column(table: str, c: dict, details: _TableDetails) -> str:
    text = f"{c['qname']} {c['type']}"
    if c["collation"]:
        text += f" COLLATE {c['collation']}"
    if c["generated"] is not None:
        text += f" GENERATED ALWAYS AS ({c['generated']}) {'VIRTUAL' if c.get('virtual') else 'STORED'}"
    elif c["default"] is not None:
        text += f" DEFAULT {c['default']}"
    if c["identity"]:
        text += " GENERATED ALWAYS AS IDENTITY" if c["identity"] == "a" else " GENERATED BY DEFAULT AS IDENTITY"
        sequence = details.identities.get((table, c["name"]))
        if sequence:
            text += f" (\n        SEQUENCE NAME {sequence['sequence']}\n" + _sequence_options(sequence, "        ", typed=False) + "\n    )"
    named = details.not_null.get((table, c["name"]))
    if named and named["name"] != named["default_name"]:  # PostgreSQL 18 names them; a renamed table keeps the old name
        text += f" CONSTRAINT {named['qname']} NOT NULL"
    elif c["not_null"] and not c["identity"]:
        text += " NOT NULL"
    if named and named["no_inherit"]:
        text += " NO INHERIT"
    return text


def _view(v: dict) -> str:
    if v["kind"] == "m":
        return f"CREATE MATERIALIZED VIEW {v['qname']} AS\n{v['definition'].rstrip(';')}\nWITH NO DATA;"
    return f"CREATE VIEW {v['qname']} AS\n{v['definition']}"


def _parents_first(tables: list[dict], details: _TableDetails) -> list[dict]:
    """Partitioned and inherited-from tables before their children; otherwise the snapshot's (name) order."""
    done, ordered, waiting = set(), [], list(tables)
    while waiting:
        ready = [t for t in waiting if (not t["partition_of"] or t["partition_of"] in done)
                 and all(parent in done for parent in details.inherits(t["qname"]))]
        if not ready:  # a parent we do not list (an extension's): keep the rest as they are
            ready = waiting
        for table in ready:
            ordered.append(table)
            done.add(table["qname"])
        waiting = [t for t in waiting if t not in ready]
    return ordered


def _views_in_order(views: list[dict]) -> list[dict]:
    """Each view after the views it reads, ties by name (a stable topological order)."""
    by_name = {v["qname"]: v for v in views}
    done, ordered = set(), []

    def visit(name: str, path: tuple) -> None:
        if name in done or name in path or name not in by_name:
            return
        for dependency in sorted(by_name[name]["depends"]):
            visit(dependency, path + (name,))
        done.add(name)
        ordered.append(by_name[name])

    for name in sorted(by_name):
        visit(name, ())
    return ordered


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"

