"""Name every difference between the schema a database should have and the one it has.

Each difference is one short sentence ("extra index public.idx_tmp ON public.documents USING
btree (source)", "changed column default public.tasks.done: false -> true") that does not
mention the database, so databases with the same differences can be grouped by the text.
Objects of a missing or extra table (its columns, indexes, ...) are not listed again.
"""

from __future__ import annotations

from dataclasses import dataclass

# What a difference of each catalog part is called, and the fields compared as its "definition".
_KINDS = {
    "schemas": ("schema", ()),
    "extensions": ("extension", ("schema",)),
    "tables": ("table", ("kind", "unlogged", "partition_key", "partition_of", "bound")),
    "indexes": ("index", ("definition", "valid")),
    "constraints": ("constraint", ("definition",)),
    "views": ("view", ("kind", "definition")),
    "functions": ("function", ("definition",)),
    "triggers": ("trigger", ("definition", "enabled")),
    "sequences": ("sequence", ("type", "start", "increment", "min", "max", "cache", "cycle", "owned_by")),
    "types": ("type", ("kind", "base", "not_null", "default", "checks", "attributes", "subtype")),
}
_COLUMN_FIELDS = {"type": "column type", "not_null": "column nullability", "default": "column default",
                  "generated": "column generation", "identity": "column identity", "collation": "column collation"}


@dataclass(frozen=True)
class Difference:
    change: str  # "missing" (expected, not there), "extra" (there, not expected) or "changed"
    kind: str  # "index", "column default", ...
    name: str
    detail: str | None = None  # shown after the name: where it sits, or "expected -> actual"
    expected: object = None
    actual: object = None

    def text(self) -> str:
        tail = ""
        if self.detail:
            tail = f": {self.detail}" if self.change == "changed" else f" {self.detail}"
        return f"{self.change} {self.kind} {self.name}{tail}"

    def as_json(self) -> dict:
        payload = {"change": self.change, "kind": self.kind, "name": self.name, "text": self.text()}
        if self.change == "changed":
            payload.update(expected=self.expected, actual=self.actual)
        return payload


def _name(part: str, obj: dict) -> str:
    if part in ("schemas", "extensions"):
        return obj["name"]
    if part == "functions":
        return f"{obj['schema']}.{obj['name']}({obj['arguments']})"
    if part in ("constraints", "triggers"):
        return obj["name"]
    return f"{obj['schema']}.{obj['name']}"


def _where(part: str, obj: dict) -> str | None:
    """What follows the name of a missing or extra object, so the sentence says where it is."""
    if part == "indexes":
        definition = obj["definition"]
        return definition[definition.index(" ON ") + 1:] if " ON " in definition else None
    if part in ("constraints", "triggers"):
        return f"ON {obj['table']}"
    if part == "columns":
        return f"({obj['type']})"
    return None


def _parent(part: str, obj: dict) -> str | None:
    return obj.get("table") if part in ("indexes", "constraints", "triggers") else None


def _keyed(snapshot: dict, part: str) -> dict:
    return {(_parent(part, o), _name(part, o)): o for o in snapshot.get(part, ())}


def _qualified(obj: dict) -> str:
    return obj["qname"]


def compare(expected: dict, actual: dict, *, privileges: bool = False) -> list[Difference]:
    """The differences of ``actual`` from ``expected`` (two catalog snapshots), in a stable order."""
    found: list[Difference] = []
    gone_tables = set()
    for part, (kind, fields) in _KINDS.items():
        want, have = _keyed(expected, part), _keyed(actual, part)
        for key in sorted(want.keys() | have.keys(), key=lambda k: (k[0] or "", k[1])):
            parent = key[0]
            if parent is not None and parent in gone_tables:
                continue
            a, b = want.get(key), have.get(key)
            if b is None or a is None:
                obj = a or b
                if part == "tables":
                    gone_tables.add(_qualified(obj))
                found.append(Difference("missing" if b is None else "extra", kind, key[1], _where(part, obj)))
                continue
            found += _changed(kind, key[1], a, b, fields)
            if part == "tables":
                found += _columns(key[1], a, b)
            if part == "types" and a.get("labels") != b.get("labels"):
                found += _labels(key[1], a.get("labels") or [], b.get("labels") or [])
            if privileges and ("owner" in a or "acl" in a):
                found += _changed(f"{kind} privileges", key[1], a, b, ("owner", "acl"))
    return found


def _changed(kind: str, name: str, a: dict, b: dict, fields) -> list[Difference]:
    changed = [f for f in fields if a.get(f) != b.get(f)]
    if not changed:
        return []
    if changed == ["definition"]:
        return [Difference("changed", f"{kind} definition", name, None, a["definition"], b["definition"])]
    expected = {f: a.get(f) for f in changed}
    actual = {f: b.get(f) for f in changed}
    detail = ", ".join(f"{f} {_show(a.get(f))} -> {_show(b.get(f))}" for f in changed if f != "definition")
    if "definition" in changed:
        detail = ("definition, " + detail) if detail else "definition"
    return [Difference("changed", kind, name, detail, expected, actual)]


def _columns(table: str, a: dict, b: dict) -> list[Difference]:
    want = {c["name"]: c for c in a["columns"]}
    have = {c["name"]: c for c in b["columns"]}
    found = []
    for column in sorted(want.keys() | have.keys()):
        x, y = want.get(column), have.get(column)
        name = f"{table}.{column}"
        if x is None or y is None:
            found.append(Difference("missing" if y is None else "extra", "column", name, _where("columns", x or y)))
            continue
        for field, kind in _COLUMN_FIELDS.items():
            if x.get(field) != y.get(field):
                show = _nullability if field == "not_null" else _show
                found.append(Difference("changed", kind, name, f"{show(x.get(field))} -> {show(y.get(field))}",
                                        x.get(field), y.get(field)))
    return found


def _labels(type_name: str, want: list, have: list) -> list[Difference]:
    found = [Difference("missing", "enum label", f"{type_name}.{label!r}") for label in want if label not in have]
    found += [Difference("extra", "enum label", f"{type_name}.{label!r}") for label in have if label not in want]
    if not found:  # the same labels in another order
        found.append(Difference("changed", "enum label order", type_name, f"{want} -> {have}", want, have))
    return found


def _nullability(not_null: bool) -> str:
    return "NOT NULL" if not_null else "NULL"


def _show(value) -> str:
    if value is None:
        return "none"
    if value is True or value is False:
        return "yes" if value else "no"
    return str(value)
