"""Databases that share the same differences, as one line each: "db_x, db_y: extra index ..."."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Group:
    differences: tuple[str, ...]
    databases: list[str]


def group(differences_by_database: dict[str, list]) -> list[Group]:
    """Groups of drifting databases, the largest first, then by their first database's name."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for database, differences in differences_by_database.items():
        if differences:
            groups.setdefault(tuple(d.text() for d in differences), []).append(database)
    return sorted((Group(key, sorted(names)) for key, names in groups.items()),
                  key=lambda g: (-len(g.databases), g.databases[0]))


def names(databases: list[str], shown: int = 10) -> str:
    listed = ", ".join(databases[:shown])
    return listed + (f" and {len(databases) - shown} more" if len(databases) > shown else "")


def text_lines(groups: list[Group], *, matching: int, failed: list[tuple[str, str]]) -> list[str]:
    """The text summary: how many match, then each group of drifting databases, then the unreadable ones."""
    drifting = sum(len(g.databases) for g in groups)
    head = f"{matching} match"
    if drifting:
        head += f"; {drifting} differ"
    if failed:
        head += f"; {len(failed)} could not be compared"
    lines = [head + (":" if drifting or failed else "")]
    for g in groups:
        if len(g.differences) == 1:
            lines.append(f"  {names(g.databases)}: {g.differences[0]}")
        else:
            lines.append(f"  {names(g.databases)}:")
            lines += [f"    {text}" for text in g.differences]
    by_error: dict[str, list[str]] = {}
    for database, error in failed:  # a server that is down: one line for all its databases
        by_error.setdefault(error, []).append(database)
    lines += [f"  {names(sorted(databases))}: {error}" for error, databases in by_error.items()]
    return lines
