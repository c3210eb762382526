"""One database's job: read its state, and apply what is pending.

Everything for one database happens on one connection: connect, bound the
session, try the advisory lock and read the version table and ledger (two round
trips), then apply each pending file in one transaction with its ledger row and
its move of Alembic's version table (see ``_apply``).  An up-to-date database
costs a connect and two queries; neither Alembic nor the SQL parser is loaded.
Retries wrap a whole database's attempt; each file commits on its own, so a
retry resumes at the first file not yet applied.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...defaults import DEFAULTS
from ...errors import ADOPT, Fix
from ...files.discovery import discover
from ...files.migration import MigrationFile
from ..state import out_of_order_files
from ..session.connection import SessionPolicy, acquire_lock, open_connection, sqlalchemy_connection
from .retrying import with_retries
from ..state.ledger import DatabaseState, LedgerWriter, ensure_ledger, read_state, setup_sql, version_sql
from ..state.plan import Plan, make_plan, plan_key
from ...settings import Project
from ...tool_tables import DEFAULT_TABLES, ToolTables
from ..state.result import DatabaseResult
from ..state.target import Target

if TYPE_CHECKING:
    from ..apply.journal import Journal

# The modules that apply a file (apply/, the parser behind them) are imported where a file is applied
# or checked: a status or a no-op run, one connect and two queries per database, never loads them.


class Chain:
    """The ordered migration files of one environment, read once per run and shared by every database."""

    def __init__(self, project: Project | None, env: str, folder=None, tables: ToolTables = DEFAULT_TABLES):
        self.project = project
        self.env = env
        self.folder = folder if folder is not None else project.migration_dir(env)
        self.tables = project.tool_tables(env) if project is not None else tables  # the tool's own tables
        found = discover(self.folder)
        self.files: tuple[MigrationFile, ...] = found.files
        self.warnings: tuple[str, ...] = found.warnings
        self.blocking: tuple[str, ...] = found.blocking  # near misses that writing commands refuse
        self._script = None
        self._lock = threading.Lock()
        self._plans: dict[tuple, Plan] = {}  # plan_key(state) -> its plan, for this chain's files

    @classmethod
    def from_folder(cls, folder, tables: ToolTables = DEFAULT_TABLES) -> Chain:
        """A chain read from a folder alone, without alembic.ini (the Python API)."""
        return cls(None, folder.name, folder, tables)

    @property
    def versions(self) -> list[str]:
        return [m.version for m in self.files]

    def get(self, version: str) -> MigrationFile | None:
        return next((m for m in self.files if m.version == version), None)

    def server_free(self, up_to: str | None = "", create_roles: frozenset[str] = frozenset()) -> Chain:
        """This chain (cut after ``up_to``; None: no file) for a build that only reads a schema (a scratch
        database, the template): its files leave out what acts on the whole server (see ``cluster_wide``),
        except the CREATE ROLEs of ``create_roles``, roles the server lacks."""
        from ...files.cluster_wide import ServerFreeFile  # lazy: see the note under the imports

        cut = copy.copy(self)
        cut.files = tuple(ServerFreeFile.of(m, create_roles) for m in self.files
                          if up_to == "" or (up_to is not None and m.version <= up_to))
        cut._script, cut._lock, cut._plans = None, threading.Lock(), {}
        return cut

    def plan(self, state: DatabaseState) -> Plan:
        """``make_plan`` of this chain, once per distinct state (a Plan is immutable: databases share it)."""
        key = plan_key(state)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = make_plan(self.files, state)
        return plan

    def script(self):
        """Alembic's ScriptDirectory for this environment, built once and primed before threads share it."""
        with self._lock:
            if self._script is None:
                from alembic.config import Config
                from alembic.script import ScriptDirectory

                from . import alembic_bridge  # imports Alembic: only for a database that needs it

                if self.project is None or self.project.config_file is None:  # no alembic.ini
                    script = alembic_bridge.script_for_folder(self.folder)
                else:
                    config = Config(str(self.project.config_file), ini_section=self.env)
                    script = ScriptDirectory.from_config(config)
                script.revision_map.heads  # noqa: B018 - load the map now, not concurrently later
                self._script = script
            return self._script


@dataclass(frozen=True)
class RunOptions:
    lock_key: int
    timeout_s: float = DEFAULTS.timeout
    lock_timeout_s: float = DEFAULTS.lock_timeout
    connect_timeout_s: int = 10
    retries: int = DEFAULTS.retries
    retry_window_s: float = DEFAULTS.retry_window  # how long a restarting server is waited out
    dry_run: bool = False
    out_of_order: bool = True  # apply late-merged files (out_of_order_files.APPLY); False: refuse the database
    debug: bool = False
    on_notice: object = None  # callable(database, version, message)
    on_wait: object = None  # callable(database)
    servers: object = None  # breakers.Breakers: per-server circuit breakers shared by the run
    on_retry: object = None  # callable(database, attempt, error, delay_s): a transient error, retried
    bounds: object = None  # netbounds.Bounds for the watchdog (None: from GRAPEVINE_SILENCE_TIMEOUT)
    applied_by: str = "migrate"  # the ledger's applied_by for the files this run applies
    on_warning: object = None  # callable(line): a late-merged file about to be applied out of order
    # the last version to apply (None: the chain's head), or callable(head) -> that version, resolved under
    # the lock (``alembic upgrade <target>``: the target's meaning may depend on where the database stands)
    stop_at: object = None
    on_step: object = None  # callable(database, from_version, migration): a file about to move the head
    adopt_legacy: bool = True  # False: a database with only the previous tool's ledger is refused, not adopted
    # callable(fix, target) -> str: the way in's words for an ``errors.Fix``, after the error's facts (None: none)
    word_fix: object = None


class Session:
    """One open connection to one database, bounded and (when writing) locked."""

    def __init__(self, target: Target, options: RunOptions, tables: ToolTables = DEFAULT_TABLES):
        self.target = target
        self.options = options
        self.tables = tables  # the names of the tool's version table and ledger
        self.raw = None

    def __enter__(self) -> Session:
        self.raw = open_connection(self.target.spec, connect_timeout=self.options.connect_timeout_s,
                                   bounds=self.options.bounds)
        if self.options.servers:
            self.options.servers.answered(self.target)
        self.policy = SessionPolicy.for_connection(
            self.raw, statement_timeout_s=self.options.timeout_s, lock_timeout_s=self.options.lock_timeout_s
        )
        # applied with the first state read: no round trip of their own
        self._settings = self.policy.settings()
        return self

    def __exit__(self, *exc) -> None:
        if self.raw is not None:
            self.raw.close()  # also releases the session-level advisory lock

    def read(self, *, lock: bool, refuse_moved: bool = True) -> DatabaseState:
        settings, self._settings = self._settings, ()
        with self.raw.cursor() as cursor:
            return read_state(cursor, try_lock_key=self.options.lock_key if lock else None, settings=settings,
                              tables=self.tables, refuse_moved=refuse_moved)

    def lock_and_read(self, *, refuse_moved: bool = True) -> DatabaseState:
        """Read with a try-lock in the same round trip; wait for the lock only if another run has it."""
        state = self.read(lock=True, refuse_moved=refuse_moved)
        if state.locked:
            return state
        on_wait = self.options.on_wait
        acquire_lock(
            self.raw,
            self.options.lock_key,
            timeout_s=self.options.timeout_s,
            on_wait=(lambda: on_wait(self.target.database)) if on_wait else None,
        )
        return self.read(lock=False, refuse_moved=refuse_moved)

    def journal(self) -> Journal:
        """For applying files under this run's lock: each file starts from the tool's session state."""
        from ..apply.journal import Journal, NoticeSink  # lazy: see the note under the imports

        policy = dataclasses.replace(self.policy, lock_key=self.options.lock_key)
        journal = Journal(
            database=self.target.database, on_notice=self.options.on_notice, policy=policy, tables=self.tables
        )
        self.raw.notices = NoticeSink(journal)
        return journal

    def migration_context(self, chain: Chain, fn, *, how: str = "stamp", fill_stamped: bool = True):
        """An Alembic MigrationContext of our own over this connection: no module-global proxies."""
        from alembic.runtime.migration import MigrationContext

        writer = LedgerWriter(chain.files, stamp_label=how, fill_stamped=fill_stamped, tables=chain.tables)
        connection = sqlalchemy_connection(self.raw)
        return connection, MigrationContext.configure(
            connection=connection,
            opts={"fn": fn, "transaction_per_migration": True, "on_version_apply": [writer],
                  **chain.tables.alembic_options()},
        )


def status(target: Target, chain: Chain, options: RunOptions) -> DatabaseResult:
    """Read-only: where the database stands against the files."""

    def attempt(result: DatabaseResult) -> None:
        with Session(target, options, chain.tables) as session:
            result.state = session.read(lock=False)
            result.plan = chain.plan(result.state)
            # a legacy ledger: the version its rows reach (migrate adopts it there)
            result.before = result.after = result.plan.head or result.plan.adopt_to
            if result.plan.problem:
                _fail_on_problem(result, result.plan, options)

    return with_retries(target, options, attempt)


def migrate(target: Target, chain: Chain, options: RunOptions) -> DatabaseResult:
    """Apply what is pending (and, when asked, out-of-order files) to one database."""

    def attempt(result: DatabaseResult) -> None:
        with Session(target, options, chain.tables) as session:
            state = session.read(lock=False) if options.dry_run else session.lock_and_read()
            plan = chain.plan(state)
            result.state, result.plan, result.before = state, plan, plan.head
            result.after = plan.head or plan.adopt_to
            if plan.problem:
                _fail_on_problem(result, plan, options)
                return
            if plan.adopt_to and not options.adopt_legacy:
                result.refuse(legacy_refusal(target.database, chain.tables), Fix(ADOPT), options.word_fix)
                return
            if options.stop_at is not None:
                bound = options.stop_at(plan.head or plan.adopt_to) if callable(options.stop_at) else options.stop_at
                plan = result.plan = plan.up_to(bound)
            if plan.out_of_order and not options.out_of_order:
                out_of_order_files.refuse(result, plan, options.word_fix)
                return
            if options.dry_run:
                _validate_pending(plan, options, chain)
                # the prechecks too, read-only: the databases that would fail them fail here
                from ..apply.prechecks import dry_run_prechecks  # lazy: see the note under the imports

                failure, notes = dry_run_prechecks(session.raw, target.database, _to_apply(plan, options))
                result.warnings += notes
                if failure:
                    result.fail(failure)
                return
            if plan.up_to_date:
                return
            _warn_out_of_order(plan, target, options, result)
            _apply(session, chain, state, plan, result)

    return with_retries(target, options, attempt)


def _warn_out_of_order(plan: Plan, target: Target, options: RunOptions, result: DatabaseResult) -> None:
    """One warning line per late-merged file, before it runs: applied, but never silently."""
    for migration in plan.out_of_order:
        line = out_of_order_files.warning_line(target.database, migration, plan.head or plan.adopt_to)
        result.warnings.append(line)
        if options.on_warning:
            options.on_warning(line)


def _validate_pending(plan: Plan, options: RunOptions, chain: Chain) -> None:
    """``--dry-run``: parse every file the real run would apply, so it fails exactly where migrate would."""
    from ...files.tool_table_writes import refuse_tool_table_writes  # lazy: see the note under the imports

    for migration in _to_apply(plan, options):
        migration.parse()
        refuse_tool_table_writes(migration, chain.tables, control=chain.env == "control")


def _to_apply(plan: Plan, options: RunOptions) -> tuple[MigrationFile, ...]:
    return (*(plan.out_of_order if options.out_of_order else ()), *plan.pending)


def _apply(session: Session, chain: Chain, state: DatabaseState, plan: Plan, result: DatabaseResult) -> None:
    """Apply out-of-order files (when asked) and then the pending chain, one transaction per file.

    The version table is Alembic's own and each step moves it exactly as Alembic's
    HeadMaintainer would along the linear chain (the same loader feeds Alembic's revision map;
    tests/test_alembic_bridge.py asserts the paths agree).  Each step's body, ledger row and
    version update travel together (``executor.apply_direct``): about one round trip per file
    instead of four plus SQLAlchemy's per-statement work, and no Alembic import, which on a
    small machine competes with the server for the same cores.
    """
    # lazy: see the note under the imports
    from ...files.tool_table_writes import refuse_tool_table_writes
    from ..apply import durability
    from ..apply.executor import apply_direct, refuse_unencodable

    tables = chain.tables
    for migration in (*plan.out_of_order, *plan.pending):
        migration.parse()  # a broken file fails the database before anything is written to it
        # so does one that would write the tool's tables
        refuse_tool_table_writes(migration, tables, control=chain.env == "control")
    refuse_unencodable(session.raw, (*plan.out_of_order, *plan.pending))  # and text the database cannot hold
    journal = session.journal()
    head = plan.head
    if plan.adopt_to:
        state = adopt(session, chain, plan.adopt_to, result)
        head = result.after = plan.adopt_to
    setup = ";\n".join(setup_sql(state, tables))
    writer = LedgerWriter(chain.files, tables=tables)
    how = session.options.applied_by
    steps = []  # (migration, record SQL, runs its body, the head it moves from, or False)
    below_head = [(m, "out-of-order") for m in plan.out_of_order] + [(m, how) for m in plan.rerun]
    for migration, label in sorted(below_head, key=lambda pair: pair[0].version):
        steps.append((migration, writer.insert_sql(migration, label), True, False))
    marked = {m.version for m in plan.marked_ahead}
    ahead = sorted((m for m in (*plan.pending, *plan.marked_ahead) if m not in plan.rerun), key=lambda m: m.version)
    for migration in ahead:
        if migration.version in marked:  # recorded by `mark --apply`: the head moves over it, nothing runs
            steps.append((migration, version_sql(head, migration.version, tables), False, head))
        else:
            record = writer.insert_sql(migration, how) + "\n;\n" + version_sql(head, migration.version, tables)
            steps.append((migration, record, True, head))
        head = migration.version
    try:
        on_step = session.options.on_step
        for index, (migration, record, run_body, moves_from) in enumerate(steps):
            if on_step and moves_from is not False:
                on_step(session.target.database, moves_from, migration)
            # only the last commit waits for the WAL flush, and it makes every earlier one durable
            apply_direct(session.raw, migration, record, journal, setup, run_body=run_body,
                         durable=index == len(steps) - 1)
            setup = ""
            if run_body:
                result.applied.append(migration.version)
            if moves_from is not False:
                result.after = migration.version
    except BaseException:
        if journal.applied:
            # what committed before the failure is on disk when it is reported
            durability.flush(session.raw, tables.version)
        raise


def _fail_on_problem(result: DatabaseResult, plan: Plan, options: RunOptions) -> None:
    if plan.fix is None:
        result.fail(plan.problem)
    else:
        result.refuse(plan.problem, plan.fix, options.word_fix)


def legacy_refusal(database: str, tables: ToolTables) -> str:
    """A road that does not adopt: Alembic alone would start again from base (``ADOPT``: what adopts the previous
    tool's ledger, stamping the recorded prefix and keeping applied_at, is the way in's to word)."""
    return f"{database} has the previous tool's {tables.ledger_table} and no {tables.version_table} yet"


def adopt(session: Session, chain: Chain, version: str, result: DatabaseResult) -> DatabaseState:
    """Stamp a legacy database at its last recorded version, keeping the original applied_at.

    Notes the change on ``result`` and returns the database's state after it.
    """
    from . import alembic_bridge  # imports Alembic: only for a database that needs it

    ensure_ledger(session.raw, tables=chain.tables)  # the new columns; existing rows stay
    with session.raw.cursor() as cursor:
        cursor.execute(f"UPDATE {chain.tables.ledger} SET applied_by = 'adopt' WHERE applied_by IS NULL")
    # the stamp moves alembic_version only: a gap in the legacy rows is a file that never ran
    steps = alembic_bridge.stamp_steps(chain.script(), version)
    connection, context = session.migration_context(chain, steps, fill_stamped=False)
    try:
        context.run_migrations(migration_context=context)
    finally:
        connection.close()
    session.raw.autocommit = True
    result.changes.append(f"adopted legacy schema_migrations up to {version}")
    return session.read(lock=False)
