"""Python API for services that migrate a database they just created (tenant provisioning).

The previous tool's call, with richer results (``grapevine_alembic.service`` is the drop-in with
its exact names)::

    applied, total, ok = await migrate_database_async(url, migrations_dir, timeout=300, retries=1)

The same lock, transactions, ledger and adoption as ``grapevine-migrations migrate``.
A failure on the database side (unreachable, wrong password, a failing migration)
is ``ok = False`` with the reason in ``error``; only a programming error (a bad
argument, a missing folder, two files with one version) raises.  Nothing is
printed: notices go to the ``grapevine_alembic`` logger and into the result.
Every call has its own connection and state, so many threads (or tasks) may call
at once.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from .defaults import DEFAULTS
from .errors import OUT_OF_ORDER, MIGRATE, MIGRATE_CONTROL, RAISE_TIMEOUT, Fix, GrapevineError
from .masking import known_secrets, mask

__all__ = ["FleetDatabase", "FleetResult", "MigrationResult", "ProvisionResult", "migrate_database",
           "migrate_database_async", "migrate_fleet", "provision_database"]

logger = logging.getLogger("grapevine_alembic")
# A library prints nothing unless its caller configures logging: without a handler of ours,
# logging's last-resort handler would write every warning to stderr.
logger.addHandler(logging.NullHandler())


@dataclass(frozen=True)
class MigrationResult:
    """Unpacks as ``applied, total, ok``; also carries the version reached, the error and the notices."""

    applied: int
    total: int
    ok: bool
    version: str | None = None
    error: str | None = None
    notices: tuple[str, ...] = field(default=())
    applied_versions: tuple[str, ...] = ()

    def __iter__(self):
        return iter((self.applied, self.total, self.ok))


def migrate_database(
    url: str, migrations_dir: str | Path, *, timeout: float = DEFAULTS.timeout, retries: int = DEFAULTS.retries,
    dry_run: bool = False, retry_window: float = DEFAULTS.retry_window, silence_timeout: float | None = None,
    out_of_order: str | None = None, version_table: str = "alembic_version", ledger_table: str = "schema_migrations",
    lock_timeout: float = DEFAULTS.lock_timeout,
) -> MigrationResult:
    """Apply every pending migration of ``migrations_dir`` (a tenant or control folder) to ``url``.

    ``timeout`` and ``lock_timeout``: seconds a statement may run and wait for a table lock (``migrate``'s
    ``--timeout`` and ``--lock-timeout``; 0: no limit); ``retry_window``: seconds a restarting server is
    retried; ``silence_timeout``: seconds a connection may wait without a sign of life from the server
    (default: GRAPEVINE_SILENCE_TIMEOUT, else 20).
    ``out_of_order`` (``"apply"`` or ``"refuse"``) decides about files older than the database's version
    that it never ran; None: the ``[grapevine] out_of_order`` setting of the project's alembic.ini
    (found above the folder), else ``"apply"``, with a warning in ``notices`` for each.

    ``version_table`` and ``ledger_table`` name the tool's two tables, as the options of the same
    names in alembic.ini do for the CLI.
    """
    from .database.jobs import runner  # lazy: importing the API stays cheap
    from .database.session.netbounds import Bounds
    from .fleet.breakers import Breakers
    from .database.state.target import Target
    from .settings import parse_database_url
    from .tool_tables import ToolTables

    try:
        tables = ToolTables(version_table=version_table, ledger_table=ledger_table)
    except GrapevineError as err:
        raise ValueError(str(err)) from None
    spec, chain = _spec(url, parse_database_url), _chain(migrations_dir, runner, tables)
    if timeout < 0 or retries < 0 or retry_window < 0 or lock_timeout < 0:
        raise ValueError("timeout, lock_timeout, retries and retry_window must not be negative")
    if silence_timeout is not None and not silence_timeout > 0:
        raise ValueError("silence_timeout must be greater than 0")
    lock_key, late = _project_near(chain.folder, out_of_order)
    notices: list[str] = []

    def on_notice(database: str, version: str | None, message: str) -> None:
        line = f"{database} {version or '-'}: {message}"
        notices.append(line)
        logger.info("%s", line)

    def on_retry(database: str, attempt: int, error: str, delay: float) -> None:
        logger.warning("%s: attempt %d failed (%s); retrying in %.1fs", database, attempt,
                       _masked(error.splitlines()[0], spec.password), delay)

    def on_warning(line: str) -> None:
        notices.append(line)
        logger.warning("%s", line)

    options = runner.RunOptions(
        lock_key=lock_key, timeout_s=float(timeout), lock_timeout_s=float(lock_timeout), retries=retries,
        dry_run=dry_run, on_notice=on_notice,
        on_warning=on_warning, out_of_order=late, on_retry=on_retry,
        retry_window_s=float(retry_window), servers=Breakers(),
        bounds=Bounds(float(silence_timeout)) if silence_timeout is not None else None, word_fix=_word_fix,
    )
    env = "control" if chain.folder.name == "control" else "tenant"
    result = runner.migrate(Target(env, spec), chain, options)
    error = _masked(result.error, spec.password)
    if error:
        logger.warning("migrating %s failed: %s", spec.dbname, error)
    applied = tuple(result.applied)
    return MigrationResult(applied=len(applied), total=len(chain.files), ok=result.ok, version=result.after, error=error,
                           notices=tuple(notices), applied_versions=applied)


@dataclass(frozen=True)
class FleetDatabase:
    """One database of a fleet rollout: ``wave`` is its wave (None for control); ``skipped``: never started."""

    database: str
    tenant: str | None
    wave: int | None
    ok: bool
    skipped: bool
    applied: tuple[str, ...] = ()
    version: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class FleetResult:
    """A rollout: ``halted`` with its ``reason`` ("budget", "wave failed", "canary failed", "control failed")
    and the ``wave`` it stopped in; ``waves`` are the planned wave sizes; ``error``: no rollout could start;
    ``rollout``: its id in the rollout record (``migrate_fleet(..., resume=ID)`` continues it)."""

    ok: bool
    databases: tuple[FleetDatabase, ...] = ()
    waves: tuple[int, ...] = ()
    halted: bool = False
    reason: str | None = None
    wave: int | None = None
    error: str | None = None
    rollout: int | None = None


def migrate_fleet(
    project_dir: str | Path, *, control_url: str | None = None, control: bool | None = None,
    tenants: list[str] | None = None, waves: str | None = None, canary: int | None = None,
    max_failures: int | str | None = None, wave_pause: float | None = None, max_parallel: int | None = None,
    max_per_server: int | None = None, timeout: float | None = None, lock_timeout: float | None = None,
    retries: int | None = None, retry_window: float | None = None, out_of_order: str | None = None,
    verify: bool | None = None, resume: int | bool | None = None,
) -> FleetResult:
    """``grapevine-migrations migrate [--control] --all-tenants`` (or ``--tenant`` for each of ``tenants``),
    with the same rollout: control first, then ``waves`` ("5,10%,rest"), ``canary`` and the
    ``max_failures`` budget (3 or "5%") halting it.  ``project_dir`` holds alembic.ini (or the
    ``migrations/`` folders); ``control_url`` defaults to CONTROL_DATABASE_URL, and the tenant server
    to the PG_TENANT_DATABASE_* variables, as for the CLI.  ``verify``: each database, once migrated, is
    compared with the schema its version should have (``--verify``); one that differs fails.
    The run-time arguments are ``migrate``'s options of the same names, with its defaults: ``max_parallel=5``,
    ``max_per_server`` (None: ``max_parallel``), ``timeout=300`` and ``lock_timeout=5`` seconds, ``retries=3``,
    ``retry_window=60`` seconds, ``out_of_order`` ("apply" or "refuse"; None: alembic.ini's setting, else
    "apply"), ``wave_pause=0``.  Every call is recorded in the control database; ``resume=ID`` (``True``: the
    latest not done) continues a recorded rollout with its own targets, options and waves: run-time arguments
    given with it win over the recorded ones (the record keeps them under ``options.resumed_with``);
    ``control``, ``tenants``, ``waves``, ``canary`` and ``verify`` would change the rollout and are refused.
    Unset: control included, every provisioned tenant, one wave, no budget, no verification.
    """
    import os  # lazy: importing the API stays cheap
    from dataclasses import replace

    from .database.jobs import runner
    from .database.state.out_of_order_files import APPLY, parse_policy
    from .fleet import record, rollout
    from .fleet.breakers import Breakers
    from .fleet.resuming import to_record, with_defaults
    from .fleet.targets import Selection, control_target, resolve
    from .settings import Settings, default_project, find_config, load_project

    if canary and waves:
        raise ValueError("canary=N is a first wave of N: give waves instead of both")
    knobs = dict(max_failures=None if max_failures is None else str(max_failures), wave_pause=wave_pause,
                 max_parallel=max_parallel, max_per_server=max_per_server, retries=retries, retry_window=retry_window,
                 timeout=timeout, lock_timeout=lock_timeout, out_of_order=out_of_order)
    values = {**knobs, "canary": canary}
    low = next((name for name, least in _LEAST.items() if values[name] is not None and not values[name] >= least), None)
    if low is not None:
        raise ValueError(f"{low} must be at least {_LEAST[low]}")
    try:
        if out_of_order is not None:  # recorded as the CLI records --out-of-order/--refuse-out-of-order
            knobs["out_of_order"] = parse_policy(out_of_order, "out_of_order") == APPLY
        sizes = rollout.parse_waves(waves, "waves") if waves is not None else ()
        rollout.parse_budget(max_failures, "max_failures")  # a bad value raises before anything is written
        config = find_config(start=(folder := Path(project_dir).resolve()))
        project = load_project(config) if config is not None else default_project(folder)
        environ = {**os.environ, **({"CONTROL_DATABASE_URL": control_url} if control_url else {})}
        settings = replace(Settings.from_environment(environ), server_logins=project.server_logins)
        chains = {env: runner.Chain(project, env) for env in ("control", "tenant")}
    except GrapevineError as err:
        raise ValueError(_masked(str(err))) from None
    blocking = [name for chain in chains.values() for name in chain.blocking]
    if blocking:  # as the CLI: nothing is written while a file looks like a migration but is not one
        raise ValueError(f"a file looks like a migration but is not one: {blocking[0]}")
    given = {name: value for name, value in (("control", control), ("tenants", tenants), ("waves", waves),
                                             ("canary", canary), ("verify", verify), *knobs.items()) if value is not None}
    control, canary, verify = control is not False, canary or 0, bool(verify)
    secrets = (settings.control.password, settings.tenant_server.password)

    def on_notice(database: str, version: str | None, message: str) -> None:
        logger.info("%s %s: %s", database, version or "-", message)

    tables = project.tool_tables("control")
    try:
        if resume is not None and resume is not False:
            recorder = record.Recorder.resume(settings.control, tables, None if resume is True else int(resume), {
                name: ("selection" if name == "tenants" else name, value) for name, value in given.items()})
            recorded = recorder.resumed.options
            control, tenants, verify = recorded["control"], list(recorder.resumed.tenants), recorded.get("verify", False)
            knobs = with_defaults(recorded)
            sizes, canary = (), 0
            if not recorder.resumed.planned:  # control failed before its tenants were known: plan them afresh
                tenants = None if recorded["selection"]["all_tenants"] else recorded["selection"]["tenant_ids"]
                sizes = rollout.parse_waves(recorded["waves"]) if recorded["waves"] else ()
                canary = recorded["canary"]
        else:
            knobs = with_defaults(knobs)
            recorder = record.Recorder.start(settings.control, tables, heads={
                env: (chain.versions[-1] if chain.versions else None) for env, chain in chains.items()},
                options=to_record(Selection(control, tenants is None, tuple(tenants or ())), waves=waves,
                                  canary=canary, verify=verify, knobs=knobs),
                command="grapevine_alembic.api.migrate_fleet", secrets=secrets)
    except GrapevineError as err:
        return FleetResult(ok=False, error=_masked(str(err) + (_word_fix(err.fix) if err.fix else ""), *secrets))
    late = knobs["out_of_order"] if knobs["out_of_order"] is not None else project.out_of_order == APPLY
    options = runner.RunOptions(
        lock_key=project.lock_key, timeout_s=float(knobs["timeout"]), lock_timeout_s=float(knobs["lock_timeout"]),
        retries=knobs["retries"], retry_window_s=float(knobs["retry_window"]), out_of_order=late,
        on_notice=on_notice, on_warning=lambda line: logger.warning("%s", line), servers=Breakers(), word_fix=_word_fix)
    selection = Selection(all_tenants=tenants is None, tenant_ids=tuple(tenants or ()))
    verifier = None
    if verify:  # then each database compared with its version's schema, through the fingerprints
        from .schema.drift import Verifier

        verifier = Verifier(chains, settings, tables.verified_table, options, lock_key=project.lock_key,
                            on_notice=lambda line: logger.info("%s", line))
    job = verifier.migrate if verifier is not None else (lambda t: runner.migrate(t, chains[t.env], options))

    try:
        done = record.roll_out(
            recorder, control_target(settings) if control else None,
            lambda: resolve(selection, settings, project.tenants_query, connection=recorder.connection)
            if selection.wants_tenants else [], job,
            options=options, max_parallel=knobs["max_parallel"], max_per_server=knobs["max_per_server"],
            waves=sizes, canary=canary, budget=rollout.parse_budget(knobs["max_failures"]),
            wave_pause=float(knobs["wave_pause"]), peek=lambda t: runner.status(t, chains[t.env], options),
        )
    except GrapevineError as err:
        return FleetResult(ok=False, error=_masked(str(err), *secrets), rollout=recorder.id)
    finally:  # what was compared is remembered, a halt or a refusal notwithstanding
        if verifier is not None and (problem := verifier.finish()):
            logger.warning("%s; the next verification reads every catalog again", _masked(problem, *secrets))
    databases = tuple(
        FleetDatabase(r.target.spec.dbname, r.target.tenant_id, wave, r.ok, r.skipped, tuple(r.applied), r.after,
                      _masked(r.error, *secrets))
        for r, wave in zip(done.results, done.waves)
    )
    if done.record_behind:
        logger.warning("rollout %s: the record could not be brought up to date (the control database could not be"
                       " reached); it reads as interrupted until resumed", done.record)
    halt = done.halt
    halted = halt is not None and halt.reason != rollout.INTERRUPTED
    return FleetResult(ok=all(d.ok for d in databases), databases=databases,
                       waves=tuple(w.size for w in done.plan.waves) if done.plan else (),
                       halted=halted, reason=halt.reason if halt else None, wave=halt.wave if halt else None,
                       rollout=done.record)


# the least value each argument takes
_LEAST = {"max_parallel": 1, "max_per_server": 1, "timeout": 0, "lock_timeout": 0, "retries": 0, "retry_window": 0,
          "wave_pause": 0, "canary": 0}


@dataclass(frozen=True)
class ProvisionResult:
    """A new database at head: ``method`` is "template" (a copy) or "chain" (the files applied one by one)."""

    ok: bool
    version: str | None = None
    method: str | None = None
    error: str | None = None
    notices: tuple[str, ...] = field(default=())


def provision_database(
    url: str, migrations_dir: str | Path, *, timeout: float = DEFAULTS.timeout, maintenance_db: str = "postgres",
    version_table: str = "alembic_version", ledger_table: str = "schema_migrations",
) -> ProvisionResult:
    """Create the database ``url`` names, at the head of ``migrations_dir``, from the server's template.

    The database must not exist (where the role has no CREATEDB right: it must exist, empty,
    and the chain is applied to it).  ``maintenance_db`` is where the tool connects to create
    it and to coordinate with other runs; ``version_table`` and ``ledger_table`` as for ``migrate_database``.
    """
    from .database.jobs import provisioning, runner  # lazy: importing the API stays cheap
    from .database.state.target import Target
    from .settings import parse_database_url
    from .tool_tables import ToolTables

    try:
        tables = ToolTables(version_table=version_table, ledger_table=ledger_table)
    except GrapevineError as err:
        raise ValueError(str(err)) from None
    spec, chain = _spec(url, parse_database_url), _chain(migrations_dir, runner, tables)
    if timeout < 0:
        raise ValueError("timeout must not be negative")
    notices: list[str] = []

    def on_notice(database: str, version: str | None, message: str) -> None:
        line = f"{database} {version or '-'}: {message}"
        notices.append(line)
        logger.info("%s", line)

    options = runner.RunOptions(lock_key=_project_near(chain.folder, None)[0], timeout_s=float(timeout),
                                on_notice=on_notice, word_fix=_word_fix)
    result = provisioning.provision(Target("tenant", spec), chain, options, maintenance_db=maintenance_db)
    error = _masked(result.error, spec.password)
    if error:
        logger.warning("provisioning %s failed: %s", spec.dbname, error)
    return ProvisionResult(ok=result.ok, version=result.after, method=result.how, error=error, notices=tuple(notices))


async def migrate_database_async(
    url: str, migrations_dir: str | Path, *, timeout: float = DEFAULTS.timeout, retries: int = DEFAULTS.retries,
    dry_run: bool = False, retry_window: float = DEFAULTS.retry_window, silence_timeout: float | None = None,
    out_of_order: str | None = None, version_table: str = "alembic_version", ledger_table: str = "schema_migrations",
    lock_timeout: float = DEFAULTS.lock_timeout,
) -> MigrationResult:
    """``migrate_database`` off the event loop (in a worker thread)."""
    return await asyncio.to_thread(
        migrate_database, url, migrations_dir, timeout=timeout, retries=retries, dry_run=dry_run,
        retry_window=retry_window, silence_timeout=silence_timeout, out_of_order=out_of_order,
        version_table=version_table, ledger_table=ledger_table, lock_timeout=lock_timeout,
    )


def _word_fix(fix: Fix, target=None) -> str:
    """What resolves a failure, worded for a caller of this API: its arguments, never a command line."""
    if fix.action == OUT_OF_ORDER:
        return f'; run them with out_of_order="apply", or record {fix.version} as applied'
    if fix.action == MIGRATE:
        return "; migrating it completes it"
    if fix.action == MIGRATE_CONTROL:
        return " (migrate the control database first?)"
    from .database.apply.pgerror import timeout_hint  # lazy; "" for UNAPPLY, whose facts say what to do
    return timeout_hint(fix, "the timeout= argument" if fix.action == RAISE_TIMEOUT else "the lock_timeout= argument")


def _spec(url: str, parse):
    if not isinstance(url, str):
        raise TypeError("url must be a postgresql:// URL string")
    try:
        return parse(url, name="url")
    except GrapevineError as err:
        raise ValueError(str(err)) from None


def _chain(migrations_dir, runner, tables):
    folder = Path(migrations_dir).resolve()
    if not folder.is_dir():
        raise FileNotFoundError(f"migrations folder {folder} does not exist")
    try:
        return runner.Chain.from_folder(folder, tables)
    except GrapevineError as err:
        raise ValueError(str(err)) from None


def _project_near(folder: Path, out_of_order: str | None) -> tuple[int, bool]:
    """The lock key of the project above ``folder`` (the CLI's, so that the two never run at once on a database),
    and True to apply late-merged files: ``out_of_order``, else the project's setting, else apply."""
    from .settings import OUT_OF_ORDER_APPLY, OUT_OF_ORDER_SETTING, grapevine_near, parse_out_of_order_policy

    try:
        lock_key, late = grapevine_near(folder)
        if out_of_order is not None:
            late = parse_out_of_order_policy(out_of_order, OUT_OF_ORDER_SETTING)
    except GrapevineError as err:
        raise ValueError(str(err)) from None
    return lock_key, late == OUT_OF_ORDER_APPLY


def _masked(text: str | None, *passwords: str | None) -> str | None:
    return mask(text, {*passwords, *known_secrets()} - {None}) if text else text
