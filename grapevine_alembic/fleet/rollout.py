"""A rollout over a fleet: control alone first, then its tenants in waves planned up front, under a
failure budget that halts it.

Every entry point runs a rollout the same way through ``roll_out``; it returns values (the ``Plan``,
each database's result with its wave, the ``Halt`` that stopped it) and the command line words them.

* Waves (``parse_waves``): sizes as a count, a percentage of the selected tenants (rounded up, so
  no wave is empty: 10% of 95 tenants is 10) or ``rest`` (last only), taken in the order of the
  tenants query. Tenants after the last wave are not started (write ``rest`` to include them).
  ``canary=N`` is a first wave of N that must pass whole.
* A wave boundary: without a budget, any failure so far stops the rollout there; with one, the
  budget alone decides.  ``wave_pause`` seconds are waited between waves (a stop request ends the wait).
* The budget (``parse_budget``): ``K`` halts when the K-th failure comes, ``P%`` when the failures
  exceed P% of the tenants started so far; either at any point of any wave (running tenants finish).
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Sequence

from ..database.state.result import DatabaseResult
from ..errors import UsageError
from . import fanout, fleet

if TYPE_CHECKING:
    from fractions import Fraction

REST = "rest"
CONTROL_FAILED = "control failed"
CANARY_FAILED = "canary failed"
WAVE_FAILED = "wave failed"
BUDGET = "budget"
INTERRUPTED = "interrupted"
_PAUSE_TICK_S = 0.05  # how soon a stop request ends a pause between waves


@dataclass(frozen=True)
class WaveSize:
    """One wave as asked: ``count`` tenants, ``percent`` of the selection, or (neither) the rest."""

    count: int | None = None
    percent: Fraction | None = None

    def size(self, total: int, left: int) -> int:
        if self.count is not None:
            return min(self.count, left)
        if self.percent is not None:
            return min(math.ceil(self.percent * total / 100), left)
        return left


def parse_waves(text: str, name: str = "--waves") -> tuple[WaveSize, ...]:
    """``5,10%,rest``: counts (>= 1), percentages (0 < P <= 100) and, last only, ``rest``; ``name`` is
    what the caller calls the value in its errors (the API: its argument's name)."""
    parts = [part.strip() for part in str(text).split(",")]
    sizes = []
    for number, part in enumerate(parts, 1):
        if part.lower() == REST:
            if number != len(parts):
                raise UsageError(f"{name} {text}: rest can only be the last wave")
            sizes.append(WaveSize())
        elif part.endswith("%"):
            percent = _number(part[:-1], text, name)
            if not 0 < percent <= 100:
                raise UsageError(f"{name} {text}: a percentage must be above 0% and at most 100% (got {part})")
            sizes.append(WaveSize(percent=percent))
        else:
            count = _number(part, text, name)
            if count.denominator != 1 or count < 1:
                raise UsageError(f"{name} {text}: a wave size is a whole number of tenants (at least 1),"
                                 f" a percentage or rest (got {part!r})")
            sizes.append(WaveSize(count=int(count)))
    return tuple(sizes)


def _number(part: str, text: str, name: str) -> Fraction:
    from fractions import Fraction  # lazy: only --waves and --max-failures need exact numbers

    try:
        if not part or not part.replace(".", "", 1).isdigit():
            raise ValueError(part)
        return Fraction(part)  # exact: 10% of 30 is 3, not 3.0000000000000004 rounded up to 4
    except ValueError:
        raise UsageError(f"{name} {text}: a wave size is a count, a percentage (10%) or rest"
                         f" (got {part!r})") from None


@dataclass(frozen=True)
class Budget:
    """How many failures a rollout tolerates before it starts no more tenants."""

    limit: Fraction
    percent: bool
    text: str

    def exceeded(self, failures: int, started: int) -> bool:
        if self.percent:
            return failures * 100 > self.limit * started
        return failures >= self.limit


def parse_budget(value, name: str = "--max-failures") -> Budget | None:
    """``K`` (a count, at least 1) or ``P%`` (0 <= P < 100, of the tenants started so far); None: no budget."""
    if value is None:
        return None
    text = str(value).strip()
    percent = text.endswith("%")
    digits = text[:-1] if percent else text
    from fractions import Fraction  # lazy: see _number

    try:
        if not digits.replace(".", "", 1).isdigit():
            raise ValueError(text)
        limit = Fraction(digits)
    except ValueError:
        raise UsageError(f"{name} takes a count or a percentage, for example 3 or 5% (got {text!r})") from None
    if percent and not limit < 100:
        raise UsageError(f"{name} {text}: a percentage must be below 100%")
    if not percent and (limit.denominator != 1 or limit < 1):
        raise UsageError(f"{name} {text}: a count must be a whole number, at least 1")
    return Budget(limit, percent, text)


@dataclass(frozen=True)
class Wave:
    number: int  # 1-based
    first: int  # index of its first tenant in the selection
    size: int
    gated: bool  # the next wave starts only if no tenant has failed so far
    canary: bool = False

    @property
    def indices(self) -> range:
        return range(self.first, self.first + self.size)


@dataclass(frozen=True)
class Plan:
    """The waves over ``total`` selected tenants, computed before any tenant starts."""

    waves: tuple[Wave, ...]
    total: int

    @property
    def planned(self) -> int:
        return sum(wave.size for wave in self.waves)

    @property
    def last(self) -> int:
        """The last wave's number (a resumed rollout keeps its waves' first numbers)."""
        return self.waves[-1].number if self.waves else 0

    def wave_of(self, index: int) -> int | None:
        return next((wave.number for wave in self.waves if index in wave.indices), None)


def plan(total: int, sizes: Sequence[WaveSize] = (), *, canary: int = 0, budget: Budget | None = None) -> Plan:
    """No sizes and no canary: one wave of every tenant."""
    if canary:
        sizes, gates = (WaveSize(count=canary), WaveSize()), (True, False)
    elif sizes:
        gates = (budget is None,) * len(sizes)
    else:
        sizes, gates = (WaveSize(),), (False,)
    waves, first = [], 0
    for size, gated in zip(sizes, gates):
        count = size.size(total, total - first)
        if count:
            waves.append(Wave(len(waves) + 1, first, count, gated, canary=bool(canary) and not waves))
        first += count
    return Plan(tuple(waves), total)


@dataclass(frozen=True)
class Halt:
    """Why a rollout started no more tenants."""

    reason: str  # CONTROL_FAILED, CANARY_FAILED, WAVE_FAILED, BUDGET or INTERRUPTED
    wave: int | None  # where it stopped (None: before any tenant)
    failures: int
    started: int
    not_started: int
    budget: Budget | None = None


@dataclass
class Rollout:
    """Control's result first (when asked), then each tenant's, in the order of the tenants query."""

    results: list = field(default_factory=list)
    waves: list = field(default_factory=list)  # per result: its wave number (None for control)
    plan: Plan | None = None
    halt: Halt | None = None
    record: int | None = None  # the rollout record's id (fleet/record), when one was kept
    record_behind: bool = False  # the record could not be brought up to date at the end (fleet/record)

    @property
    def unplanned(self) -> int:
        """Tenants after the last wave, left alone on purpose."""
        return self.plan.total - self.plan.planned if self.plan else 0


def roll_out(control, tenants: Callable[[], list] | None, job: Callable, *, options, max_parallel: int,
             max_per_server: int | None = None, waves: Sequence[WaveSize] = (), canary: int = 0,
             budget: Budget | None = None, wave_pause: float = 0.0, should_stop: Callable[[], bool] = lambda: False,
             peek: Callable | None = None, progress=None, on_wave=None, on_pause=None, on_start=None,
             on_finish=None, planner: Callable[[list], Plan] | None = None, on_plan=None,
             on_result=None, on_stopped=None) -> Rollout:
    """Run ``job`` on ``control`` (a Target, or None) alone, then on ``tenants()`` wave by wave.

    ``progress(total)`` is a context manager giving a callable advanced per result; ``on_wave(wave, plan)``
    hears of each wave as it starts and ``on_pause(seconds, wave)`` of each pause before one.
    ``peek`` reads the state of the tenants a halt left unstarted, so a summary shows their real version.
    ``on_start(target, wave)`` hears of each database as its job starts (on the worker thread) and
    ``on_finish(result, wave)`` as it ends (wave None for control); neither for a tenant never started.
    ``planner(targets)`` replaces the plan (a resumed rollout's recorded waves); ``on_plan(targets, plan)``
    hears of it before any tenant starts (it may refuse by raising) and ``on_result(result)`` of each result.
    ``on_stopped(rollout)`` hears that no tenant runs any more, before ``peek`` reads the unstarted ones.
    """
    def skipped(target):
        return DatabaseResult(target, ok=True, skipped=True)

    def finished(wave_of):
        # the fan-out reports only the jobs it started: tenants a halt left unstarted get no finish
        def hear(result):
            if on_finish is not None:
                on_finish(result, wave_of(result))
        return hear

    def starting(wave_of):
        return (lambda index, target: on_start(target, wave_of(index))) if on_start is not None else None

    rollout = Rollout()
    if control is not None:
        rollout.results += fanout.run_all([control], job, max_parallel=1, skipped=skipped, should_stop=should_stop,
                                          on_start=starting(lambda _: None), on_result=finished(lambda _: None))
        rollout.waves.append(None)
        if not rollout.results[0].ok and tenants is not None:
            rollout.halt = Halt(CONTROL_FAILED, None, 1, 0, 0)
            return rollout
    if tenants is None:
        return rollout
    targets = tenants()
    the_plan = planner(targets) if planner is not None else plan(len(targets), waves, canary=canary, budget=budget)
    rollout.plan = the_plan
    if on_plan is not None:
        on_plan(targets, the_plan)
    state = {"wave": 0, "budget": False, "gate": False}

    def halt(failures: int, started: int) -> bool:
        state["budget"] = state["budget"] or (budget is not None and budget.exceeded(failures, started))
        return state["budget"]

    def next_wave(finished: int, failures: int) -> bool:
        if failures and the_plan.waves[finished].gated:
            state["gate"] = True
            return False
        coming = the_plan.waves[finished + 1]
        if wave_pause > 0:
            if on_pause is not None:
                on_pause(wave_pause, coming)
            _pause(wave_pause, should_stop)
            if should_stop():
                return False
        state["wave"] = finished + 1
        if on_wave is not None:
            on_wave(coming, the_plan)
        return True

    if on_wave is not None and the_plan.waves:
        on_wave(the_plan.waves[0], the_plan)
    wave_by_target = {id(target): the_plan.wave_of(index) for index, target in enumerate(targets)}
    hear = finished(lambda result: wave_by_target.get(id(result.target)))
    with (progress(len(targets)) if progress is not None else nullcontext(None)) as bar:
        def advance(result) -> None:
            hear(result)
            for hook in (bar, on_result):
                if hook is not None:
                    hook(result)

        tenant_results = fleet.run_targets(
            targets, job, options=options, max_parallel=max_parallel, max_per_server=max_per_server,
            failed=lambda r: not r.ok, skipped=skipped, on_result=advance, should_stop=should_stop,
            on_start=starting(the_plan.wave_of),
            waves=[wave.indices for wave in the_plan.waves], halt=halt if budget is not None else None,
            next_wave=next_wave,
        )
    rollout.results += tenant_results
    rollout.waves += [the_plan.wave_of(index) for index in range(len(tenant_results))]
    rollout.halt = _halt(tenant_results, the_plan, state, budget, should_stop())
    if on_stopped is not None:  # a halt over a big fleet leaves many to read: the record ends before that
        on_stopped(rollout)
    if peek is not None and not should_stop():
        _read_skipped(tenant_results, peek, max_parallel)
    return rollout


def _halt(results: list, the_plan: Plan, state: dict, budget: Budget | None, stopped: bool) -> Halt | None:
    not_started = sum(r.skipped for r in results[:the_plan.planned])
    if not not_started:
        return None
    wave = the_plan.waves[state["wave"]]
    if stopped:
        reason = INTERRUPTED
    elif state["budget"]:
        reason = BUDGET
    elif state["gate"]:
        reason = CANARY_FAILED if wave.canary else WAVE_FAILED
    else:
        return None  # a server given up on (the breakers): its tenants are skipped, the rollout went on
    failures = sum(not r.ok for r in results)
    started = sum(not r.skipped for r in results)
    return Halt(reason, wave.number, failures, started, not_started, budget)


def _pause(seconds: float, should_stop: Callable[[], bool]) -> None:
    """Sleep between waves in short ticks, so Ctrl-C (seen by the signal thread) ends the wait at once."""
    deadline = time.monotonic() + seconds
    while not should_stop():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(_PAUSE_TICK_S, left))


def _read_skipped(results: list, peek: Callable, max_parallel: int) -> None:
    """Where the tenants a halted rollout never started stand (not those whose server was given up on)."""
    unstarted = [r for r in results if r.skipped and r.ok]
    if not unstarted:
        return
    for result, seen in zip(unstarted, fanout.run_all([r.target for r in unstarted], peek, max_parallel=max_parallel)):
        if seen.ok:
            result.plan, result.before, result.after = seen.plan, seen.before, seen.after

