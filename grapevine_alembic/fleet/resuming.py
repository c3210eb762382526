"""What a resumed rollout takes from its record, and what it takes from the command that resumes it.

A resume runs over the recorded tenants, in the recorded waves: options that would change which tenants
or waves (``SCOPE``) are refused when given again, naming the recorded value. Run-time knobs (``KNOBS``:
timeouts, parallelism, retries, the budget, the pause) given to the resume win over the recorded ones, and
the record keeps them (``resumed_with``), so ``rollouts show`` says what the rollout ran with.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..defaults import DEFAULTS
from ..errors import UsageError
from . import rollout as fleet_rollout

SCOPE = ("control", "selection", "waves", "canary", "verify")
KNOBS = ("max_failures", "wave_pause", "max_parallel", "max_per_server", "retries", "retry_window", "timeout",
         "lock_timeout", "out_of_order")


@dataclass(frozen=True)
class Resumed:
    """What a resumed rollout takes from its record: its options and the tenants not done, in wave order."""

    id: int
    options: dict
    tenants: tuple[str, ...]
    waves: tuple[int, ...]  # per tenant: its recorded wave
    gates: dict  # wave number -> [gated, canary]
    planned: bool = True  # False: it stopped before its tenants were known (control failed), so plan afresh

    def planner(self, targets: list) -> fleet_rollout.Plan:
        """The recorded waves over what is left of them (their numbers kept)."""
        wave_of = dict(zip(self.tenants, self.waves))
        waves, first = [], 0
        for target in targets:
            number = wave_of[target.tenant_id]
            if waves and waves[-1].number == number:
                waves[-1] = fleet_rollout.Wave(number, waves[-1].first, waves[-1].size + 1, *self.gates[str(number)])
            else:
                waves.append(fleet_rollout.Wave(number, first, 1, *self.gates[str(number)]))
            first += 1
        return fleet_rollout.Plan(tuple(waves), len(targets))


def with_defaults(knobs: dict) -> dict:
    """Every knob, ``migrate``'s default where ``knobs`` (given, or a record written without one) has none."""
    return {knob: getattr(DEFAULTS, knob) if knobs.get(knob) is None else knobs[knob] for knob in KNOBS}


def to_record(selection, *, waves, canary, verify, knobs: dict) -> dict:
    """The options a new rollout records: its targets (a ``targets.Selection``), its waves and its ``KNOBS``."""
    shard = selection.shard
    targets = ("all tenants" if selection.all_tenants else f"{len(selection.tenant_ids)} named tenant(s)") + (
        f", shard {shard[0]}/{shard[1]}" if shard else "")
    return {"control": selection.control, "targets": targets, "waves": waves, "canary": canary or DEFAULTS.canary,
            "verify": bool(verify),
            "selection": {"all_tenants": selection.all_tenants, "tenant_ids": list(selection.tenant_ids),
                          "shard": list(shard) if shard else None}, **with_defaults(knobs)}


def reconciled(rollout_id: int, recorded: dict, given: dict) -> dict:
    """The options rollout ``rollout_id`` resumes with. ``given`` maps the name the caller knows an option
    by (``--timeout``, ``timeout``) to ``(option, value)`` for each option given to the resume."""
    options, overrides = dict(recorded), {}
    for name, (option, value) in given.items():
        if option in SCOPE:
            raise UsageError(f"rollout {rollout_id} resumes {_scope(option, recorded)}: drop {name}")
        if option not in KNOBS:
            raise ValueError(f"not an option of a rollout: {option}")
        options[option] = overrides[option] = value
    if overrides:
        options["resumed_with"] = overrides
    return options


def _scope(option: str, recorded: dict) -> str:
    if option in ("control", "selection"):
        targets = recorded.get("targets") or "its tenants"
        return f"over its recorded targets ({'control and ' if recorded.get('control') else ''}{targets})"
    if option == "verify":
        return f"with its recorded verify ({'on' if recorded.get('verify') else 'off'})"
    waves = recorded.get("waves") or (f"canary {recorded['canary']}" if recorded.get("canary") else "one wave")
    return f"in its recorded waves ({waves})"
