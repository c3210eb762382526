"""``-- grapevine-ignore: code, ...`` comments: silence a warning or note on purpose, in the file.

``-- grapevine-ignore: code[, code...]`` between statements silences those codes on the
statement that follows; ``-- grapevine-ignore-file: code[, code...]`` anywhere silences them in
the whole file.  They work for every warning and info code ``check`` prints (ours and
Squawk's); errors cannot be silenced, because the deploy would fail on them too.
Squawk's own ``-- squawk-ignore`` comments are read by Squawk itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..files.parsing import ParsedSql

# Every warning and note code of ours (a misspelt code in a comment would otherwise silence nothing, quietly).
OUR_CODES = frozenset({
    "begin-without-commit", "commit-without-begin", "nested-begin", "rollback-in-file", "several-transactions",
    "statements-after-commit", "empty-file", "adding-serial-column", "file-name-characters", "no-transaction",
    "squawk-parse", "out-of-order",
})
_COMMENT = re.compile(r"^\s*--\s*grapevine-ignore(?P<file>-file)?\s*:\s*(?P<codes>[A-Za-z0-9_, -]+?)\s*$")


@dataclass
class Ignores:
    """Which codes are silenced where in one file."""

    whole_file: set[str] = field(default_factory=set)
    spans: list[tuple[int, int, frozenset[str]]] = field(default_factory=list)  # first, last line, codes
    named: list[tuple[int, str]] = field(default_factory=list)  # (comment line, code) as written, to vet

    def covers(self, code: str, line: int | None) -> bool:
        if code in self.whole_file:
            return True
        return line is not None and any(first <= line <= last and code in codes for first, last, codes in self.spans)


def read_ignores(text: str, parsed: ParsedSql) -> Ignores:
    """The ignore comments of a file whose statements are ``parsed``."""
    ignores = Ignores()
    bounds = [(stmt.line, stmt.line + stmt.sql.count("\n")) for stmt in parsed.statements]
    for number, line in enumerate(text.splitlines(), start=1):
        if "grapevine-ignore" not in line:
            continue
        match = _COMMENT.match(line)
        if match is None:
            continue
        codes = frozenset(code.strip() for code in match["codes"].split(",") if code.strip())
        ignores.named += [(number, code) for code in sorted(codes)]
        if match["file"]:
            ignores.whole_file |= codes
            continue
        following = _statement_after(bounds, number)
        if following is not None:
            ignores.spans.append((*following, codes))
    return ignores


def _statement_after(bounds: list[tuple[int, int]], line: int) -> tuple[int, int] | None:
    """The statement that starts after a comment on ``line``, if the comment is between statements."""
    for first, last in bounds:
        if first > line:
            return first, last
        if last >= line:
            return None  # the comment is inside a statement (a function body, say)
    return None
