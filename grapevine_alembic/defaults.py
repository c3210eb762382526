"""``migrate``'s defaults, written once: the CLI's options (and their ``--help``), the Python API's arguments,
``runner.RunOptions`` (so ``alembic upgrade``'s too) and a resumed rollout whose record lacks a knob all read them
here, so a rollout started by either way in records the same options."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RunDefaults:
    timeout: float = 300.0  # statement_timeout and the longest wait for the migration lock, seconds (0: none)
    lock_timeout: float = 5.0  # the longest wait for a table lock, seconds (0: none)
    retries: int = 3  # re-runs of a database after a transient error
    retry_window: float = 60.0  # how long a restarting server is waited out, seconds
    max_parallel: int = 5  # tenant databases migrated at once
    wave_pause: float = 0.0  # seconds between two waves
    canary: int = 0  # no first wave that must pass whole
    max_per_server: int | None = None  # None: max_parallel
    max_failures: str | None = None  # None: no budget (a wave with a failure stops the rollout)
    out_of_order: bool | None = None  # None: alembic.ini's [grapevine] out_of_order, else apply


DEFAULTS = RunDefaults()
