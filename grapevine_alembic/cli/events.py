"""``migrate --events FILE``: one JSON line per database start and finish, written as it happens.

Each line is flushed on its own, so ``tail -f`` (or a log shipper) sees a tenant start while it
runs.  The file is appended to: two runs into one file stay two runs, told apart by ``run``.
Error texts are masked like every other output.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timezone

from ..errors import UsageError
from .metrics import outcome


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class EventLog:
    """A watcher of a fan-out (``start``, ``finish``, ``done``) writing JSON lines to ``path``."""

    def __init__(self, path: str, redact):
        self.redact = redact
        self.run = f"{_now()} pid {os.getpid()}"
        self.lock = threading.Lock()
        try:  # opened before the run: a path that cannot be written is refused before anything runs
            self.file = open(path, "a", encoding="utf-8")
        except OSError as error:
            raise UsageError(f"--events {path}: {error.strerror}") from None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()

    def _write(self, event: dict) -> None:
        line = self.redact(json.dumps({"time": _now(), "run": self.run, **event}, default=str))
        with self.lock:  # workers finish at once: one whole line each
            self.file.write(line + "\n")
            self.file.flush()

    @staticmethod
    def _where(target, wave) -> dict:
        return {"database": target.database, "tenant": target.tenant_id, "server": target.server, "wave": wave}

    def start(self, target, wave) -> None:
        self._write({"event": "start", **self._where(target, wave)})

    def finish(self, result, wave) -> None:
        self._write({"event": "finish", **self._where(result.target, wave), "outcome": outcome(result),
                     "seconds": round(result.seconds, 3), "applied": result.applied, "error": result.error})

    def done(self, results) -> None:
        pass  # every line is already written
