"""Differential check of the parser binding: the files layer of an older build (pglast) against this one.

    python bench/parser_diff.py --old REV [--mutants] [FOLDER_OR_FILE ...]

Exports ``grapevine_alembic`` of git revision REV (one that still parsed with pglast; pglast must be
installed: ``pip install 'pglast>=8,<9'``) beside this checkout's package, then parses every ``.sql``
file with both and compares what the tool acts on: each statement's text, line, kind,
transactional or not, session reset and COPY rows; the units (transactions) and the file's shape
notes; the hazards and the lines on tables the file creates; the writes to the tool's tables; for
``CREATE INDEX CONCURRENTLY``, the table and name it builds; and for a file that does not parse,
the error message and line.  Always compared: tests/fixtures, migrations/ and bench/chain.py's
chain.  ``--mutants`` adds, per file, its first third and first two thirds (cut mid-statement:
parse errors) and a copy with a stray token, for the error paths.  Exit 1 on any difference.
"""

from __future__ import annotations

import argparse
import importlib
import io
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _old_package(rev: str, into: Path):
    """Import REV's grapevine_alembic as ``grapevine_alembic_old``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "grapevine_alembic"],
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    (into / "grapevine_alembic").rename(into / "grapevine_alembic_old")
    sys.path.insert(0, str(into))
    return importlib.import_module("grapevine_alembic_old")


def _summary(pkg_name: str, path: Path, text: bytes) -> object:
    """What the tool acts on in one file, as plain values (no parse-tree objects)."""
    parsing = importlib.import_module(f"{pkg_name}.files.parsing")
    sqlstream = importlib.import_module(f"{pkg_name}.files.sqlstream")
    hazards = importlib.import_module(f"{pkg_name}.files.hazards")
    writes = importlib.import_module(f"{pkg_name}.files.tool_table_writes")
    tool_tables = importlib.import_module(f"{pkg_name}.tool_tables")
    errors = importlib.import_module(f"{pkg_name}.errors")
    try:  # database/ was split into rooms after the parser changed
        indexes = importlib.import_module(f"{pkg_name}.database.apply.invalid_indexes")
    except ModuleNotFoundError:
        indexes = importlib.import_module(f"{pkg_name}.database.invalid_indexes")
    try:
        parsed = parsing.parse_source(sqlstream.Source(None, text), path=path)
    except errors.MigrationFileError as err:
        return ("error", str(err), getattr(err, "line", None))

    def stmt(s):
        copy = (s.copy.start, s.copy.end, s.copy.line) if s.copy is not None else None
        parts = s.statements() if hasattr(s, "statements") else None
        return (s.sql, s.line, s.kind, s.transactional, s.resets_session, copy, parts)

    units = [(tuple(stmt(s) for s in u.statements), u.transactional, u.begin, u.rollback, u.end_line)
             for u in parsed.units]
    found = [(h.line, h.code, h.message) for h in hazards.find_hazards(parsed)]
    tables = tool_tables.ToolTables(version_table="alembic_version", ledger_table="schema_migrations")
    tool = [(w.line, w.verb, w.option, w.statement) for w in writes.find_tool_table_writes(parsed.statements, tables)]
    concurrent = [(i.table, i.name) for i in map(indexes.concurrent_index, parsed.statements) if i is not None]
    return ("parsed", [stmt(s) for s in parsed.statements], units, parsed.transactional, parsed.wrapped,
            parsed.no_transaction_directive, [repr(n) for n in parsed.notes], found,
            hazards.new_table_spans(parsed), tool, concurrent)


def _corpus(extra: list[str], mutants: bool) -> list[tuple[str, bytes]]:
    sys.path.insert(0, str(ROOT / "bench"))
    from chain import write_chain

    chain = Path(tempfile.mkdtemp()) / "chain"
    write_chain(chain)
    places = [ROOT / "tests" / "fixtures", ROOT / "migrations", chain, *map(Path, extra)]
    files = sorted(p for place in places for p in ([place] if place.is_file() else place.rglob("*.sql")))
    corpus = [(str(p), p.read_bytes()) for p in files]
    if mutants:
        for name, data in list(corpus):
            corpus += [(f"{name} [first third]", data[:len(data) // 3]),
                       (f"{name} [two thirds]", data[:2 * len(data) // 3]),
                       (f"{name} [stray token]", data.replace(b";", b"; stray", 1))]
    return corpus


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", required=True, help="a git revision whose files layer parses with pglast")
    parser.add_argument("--mutants", action="store_true")
    parser.add_argument("places", nargs="*", help="more .sql files or folders")
    args = parser.parse_args()
    try:
        import pglast  # noqa: F401
    except ImportError:
        print("pglast is not installed: pip install 'pglast>=8,<9'", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    _old_package(args.old, Path(tempfile.mkdtemp()))
    files = statements = errors = 0
    differences = []
    for name, data in _corpus(args.places, args.mutants):
        path = Path(name.split(" [")[0])
        old, new = _summary("grapevine_alembic_old", path, data), _summary("grapevine_alembic", path, data)
        files += 1
        if old[0] == "error":
            errors += 1
        else:
            statements += sum(len(s[6]) if s[6] else 1 for s in old[1])
        if old != new:
            differences.append(name)
            print(f"DIFFERENT: {name}\n  old: {old!r:.2000}\n  new: {new!r:.2000}")
    print(f"{files} files ({errors} that do not parse), {statements} statements compared;"
          f" {len(differences)} different")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
