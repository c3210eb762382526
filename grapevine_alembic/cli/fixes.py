"""The commands a person pastes to resolve a failure, worded from the ``errors.Fix`` values the layers
below return: they state the facts, the CLI says what to run.  It imports nothing of ``cli/``."""

from __future__ import annotations

from ..errors import (
    OUT_OF_ORDER,
    MIGRATE,
    MIGRATE_CONTROL,
    RAISE_LOCK_TIMEOUT,
    RAISE_TIMEOUT,
    START_LOCAL,
    START_LOCAL_FIRST,
    STOP_LOCAL,
    UNAPPLY,
    Fix,
    GrapevineError,
)
from ..database.apply.pgerror import timeout_hint
from ..local.envcheck import CONTROL_URL, EMBEDDED_VARIABLE

PROGRAM = "grapevine-migrations"
TIMEOUT_FLAGS = {RAISE_TIMEOUT: "--timeout", RAISE_LOCK_TIMEOUT: "--lock-timeout"}


def target_flag(target) -> str:
    """The command-line flag that selects this database, for suggested commands."""
    return "--control" if target.env == "control" else f"--tenant {target.tenant_id}"


def word_fix(fix: Fix, target=None) -> str:
    """What follows the error's facts: the command(s) that resolve it for ``target`` ("" for none)."""
    flag = target_flag(target) if target is not None else ""
    if fix.action == UNAPPLY:
        return f" with: {PROGRAM} mark --unapply {fix.version} {flag}"
    if fix.action == OUT_OF_ORDER:
        return (f"; run them with: {PROGRAM} migrate {flag} --out-of-order; or record them as applied with:"
                f" {PROGRAM} mark --apply {fix.version} {flag}")
    if fix.action == MIGRATE:
        tenant_id = getattr(target, "tenant_id", None)
        return f"; `{PROGRAM} migrate --tenant {tenant_id}` completes it" if tenant_id else "; migrating it completes it"
    if fix.action == MIGRATE_CONTROL:
        return f" (run `{PROGRAM} migrate --control` first?)"
    if fix.action == START_LOCAL:
        return f": `{PROGRAM} dev up` or {EMBEDDED_VARIABLE}=1"
    if fix.action == START_LOCAL_FIRST:
        return f": run `{PROGRAM} dev up` first, or set {CONTROL_URL}"
    if fix.action == STOP_LOCAL:
        return f"; `{PROGRAM} dev down` stops it"
    if fix.action in TIMEOUT_FLAGS:
        return timeout_hint(fix, TIMEOUT_FLAGS[fix.action])
    return ""


def error_line(err: GrapevineError) -> str:
    """An error's one line with what resolves it."""
    return str(err) + (word_fix(err.fix) if err.fix else "")
