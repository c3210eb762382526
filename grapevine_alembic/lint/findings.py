"""One finding of ``check``: where, how bad, a stable code, what is wrong, how to fix it; and its renderings.

Every source (our checks, Squawk, the database comparison) reports in this one shape, so the
text, GitHub and JSON outputs treat them alike.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Finding:
    level: str  # "error", "warning" or "info"
    env: str | None
    file: str | None  # relative to the project root
    line: int | None  # from 1
    code: str
    message: str
    fix: str | None = None
    source: str = "grapevine"  # or "squawk"

    def text(self) -> str:
        where = f"{self.file}:{self.line}: " if self.line else (f"{self.file}: " if self.file else "")
        fix = f" Fix: {self.fix}" if self.fix else ""
        return f"{self.level}: {where}{self.message} [{self.code}]{fix}"

    def github(self, prefix: str = "") -> str:
        """A GitHub Actions workflow command, so the finding sits on the pull request's diff."""
        command = {"error": "error", "warning": "warning"}.get(self.level, "notice")
        properties = []
        if self.file:
            properties.append(f"file={_escape_property(prefix + self.file)}")
            if self.line:
                properties.append(f"line={self.line}")
        properties.append(f"title={_escape_property(self.code)}")
        fix = f" Fix: {self.fix}" if self.fix else ""
        return f"::{command} {','.join(properties)}::{_escape_data(self.message + fix)}"

    def as_json(self) -> dict:
        return {"level": self.level, "env": self.env, "file": self.file, "line": self.line, "code": self.code,
                "message": self.message, "fix": self.fix, "source": self.source}


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")
