"""The only module that touches Alembic's script internals.

Alembic has no public hook for revision files: ``ScriptDirectory`` finds ``*.py``
files and imports them.  We need each ``migrations/<env>/*.sql`` file to be a
revision, for plain ``alembic -c alembic.ini -n control history`` as much as for
our CLI.  So, for an environment whose ini section says ``sql_revisions = true``
(and only then, leaving every other Alembic project untouched):

* ``ScriptDirectory.from_config`` is wrapped: the directory it builds becomes a
  ``SqlScriptDirectory``, which overrides the private ``_load_revisions``
  generator that ``RevisionMap`` consumes;
* each file becomes a ``Script`` built from a small synthetic module exposing
  ``revision``, ``down_revision``, ``upgrade`` and ``downgrade``, the attributes
  Alembic reads from a ``.py`` revision;
* ``mark`` and legacy adoption stamp through the private ``_stamp_revs``, the step
  generator ``alembic stamp`` uses; ``upgrade_path`` asks ``_upgrade_revs`` for the
  path ``alembic upgrade`` would take (tests pin ``migrate``'s path to it).

Private names used here: ``ScriptDirectory._load_revisions``,
``ScriptDirectory._upgrade_revs``, ``ScriptDirectory._stamp_revs``, ``EnvironmentContext._proxy``'s ``context_opts``, the ``_per_migration`` flag of
``MigrationContext.begin_transaction`` and the ``Script(module, rev_id, path)``
constructor.  ``tests/test_alembic_bridge.py``
asserts each of them, so an Alembic release that changes one fails loudly; the
supported range is pinned in pyproject.toml.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Iterator

from alembic import util
from alembic.script import Script, ScriptDirectory

from ..apply.offline import emit_offline
from ...files.authoring import create_migration
from ...files.discovery import discover
from ...files.migration import MigrationFile
from ...files.tool_table_writes import refuse_tool_table_writes
from ...errors import GrapevineError, UsageError
from ...settings import load_dotenv_file, migrations_dir_override
from ...tool_tables import ToolTables

OPT_IN = "sql_revisions"
FORWARD_ONLY = ("migrations are forward-only: write a new migration that reverses the change"
                " (or use `alembic stamp` to change only the recorded version)")
_installed = False


class SqlScriptDirectory(ScriptDirectory):
    """A ScriptDirectory whose revisions are the ``.sql`` files of one folder."""

    fixed_folder: Path | None = None  # the API names its folder itself: no overrides apply

    def migration_folder(self) -> Path:
        if self.fixed_folder is not None:
            return self.fixed_folder
        locations = self.version_locations or []
        if len(locations) != 1:
            raise util.CommandError(f"{OPT_IN} needs exactly one version_locations folder, got {len(locations)}")
        root = Path(self.dir).parent  # script_location sits next to alembic.ini
        load_dotenv_file(root)  # MIGRATIONS_DIR may come from .env, as for the CLI
        return migrations_dir_override(Path(locations[0]), root)

    def migration_files(self) -> tuple[MigrationFile, ...]:
        """The folder's migrations, ordered by version; near misses are warned about once."""
        try:
            found = discover(self.migration_folder())
        except GrapevineError as err:
            raise util.CommandError(str(err)) from err
        for warning in found.warnings:
            if self.fixed_folder is not None:  # the Python API's: it prints nothing, it logs
                import logging

                logging.getLogger("grapevine_alembic").warning("warning: %s", warning)
            else:
                print(f"warning: {warning}", file=sys.stderr)
        return found.files

    def _load_revisions(self) -> Iterator[Script]:
        previous = None
        for migration in self.migration_files():
            yield Script(revision_module(migration, previous), migration.version, migration.path)
            previous = migration.version

    def generate_revision(self, revid, message, *args, **kw) -> Script:
        """``alembic revision -m "..."``: the next ``<UTC now>_<slug>.sql`` from ``create``'s template
        (Alembic's own ``revid`` is ignored: the timestamp is the version)."""
        folder = self.migration_folder()
        try:
            path = create_migration(folder, message or "")
        except GrapevineError as err:
            raise util.CommandError(str(err)) from err
        print(f"wrote {path}: write its SQL between BEGIN and COMMIT")
        files = self.migration_files()
        previous = [m.version for m in files if m.version < path.name[:14]]
        [migration] = [m for m in files if m.path == path]
        return Script(revision_module(migration, previous[-1] if previous else None), migration.version, path)


def revision_module(migration: MigrationFile, down_revision: str | None) -> types.ModuleType:
    """A synthetic module carrying what Alembic reads from a ``.py`` revision file."""
    module = types.ModuleType(f"grapevine_revision_{migration.version}", migration.message)
    module.revision = migration.version
    module.down_revision = down_revision
    module.branch_labels = None
    module.depends_on = None
    module.migration_file = migration

    def upgrade(migration_context=None, **_ignored) -> None:
        """Only ``alembic upgrade --sql`` writes a file through Alembic: online, the env runs ``runner.migrate``."""
        if migration_context is None:  # a caller that did not pass it: fall back to Alembic's proxy
            from alembic import context

            migration_context = context.get_context()
        if not migration_context.as_sql:
            raise util.CommandError("these revisions are applied by `alembic upgrade` through the grapevine env,"
                                    " not by calling upgrade() directly")
        opts = migration_context.opts  # our env passes the section's tables and name along (alembic_env)
        tables = opts.get("grapevine_tables") or ToolTables(migration_context.version_table,
                                                            migration_context.version_table_schema)
        # before anything of the file is written
        refuse_tool_table_writes(migration, tables, control=opts.get("grapevine_env") == "control")
        emit_offline(migration_context, migration, migration.parse())

    def downgrade(**_ignored) -> None:
        raise util.CommandError(FORWARD_ONLY)

    module.upgrade = upgrade
    module.downgrade = downgrade
    return module


def upgrade_path(script: ScriptDirectory, head: str | None) -> list[tuple[str | None, str]]:
    """(from, to) pairs Alembic would run from ``head`` to the heads: Alembic stays the authority on order."""
    steps = script._upgrade_revs("heads", (head,) if head else ())
    path = []
    for step in steps:
        sources = step.from_revisions
        path.append((sources[0] if sources else None, step.to_revisions[0]))
    return path


def upgrade_bound(script: ScriptDirectory, destination: str, head: str | None) -> str | None:
    """The last version ``alembic upgrade <destination>`` would reach from ``head``, read from Alembic's own
    revision map (``head``, a version or its prefix, ``+1``, ``base``...); ``head`` itself when nothing is to run."""
    try:
        steps = script._upgrade_revs(destination, (head,) if head else ())
    except util.CommandError as err:  # an unknown or unreachable target: one line
        raise UsageError(str(err)) from err
    return max((step.to_revisions[0] for step in steps), default=head)


def running_command(context) -> str:
    """The Alembic command this env runs, from the ``fn`` it handed its ``EnvironmentContext`` (a
    command called from Python has no ``cmd_opts``): "upgrade", "downgrade", "do_stamp", ..."""
    return getattr(context._proxy.context_opts.get("fn"), "__name__", "")


def purging(context) -> bool:
    """Whether this is ``alembic stamp --purge`` (Alembic empties the version table before stamping)."""
    return bool(context._proxy.context_opts.get("purge"))


def stamp_steps(script: ScriptDirectory, destination: str | None):
    """The ``fn`` for ``MigrationContext``: the same step generator ``alembic stamp`` uses."""

    def steps(heads, _context):
        return script._stamp_revs(destination or "base", heads)

    return steps


def migration_transaction(context):
    """The per-migration transaction Alembic opens around each step, for a file applied outside the step loop."""
    return context.begin_transaction(_per_migration=True)


def script_for_folder(folder: Path) -> SqlScriptDirectory:
    """A revision map over one folder of ``.sql`` files, without an ini file (the Python API)."""
    directory = SqlScriptDirectory(str(folder), version_locations=[str(folder)])
    directory.fixed_folder = Path(folder)
    return directory


def _wants_sql_revisions(config) -> bool:
    value = config.get_alembic_option(OPT_IN)
    return str(value).strip().lower() in {"true", "1", "yes", "on"} if value is not None else False


def install() -> None:
    """Wrap ``ScriptDirectory.from_config`` once per process (called from the plugin at import)."""
    global _installed
    if _installed:
        return
    original = ScriptDirectory.from_config.__func__

    def from_config(cls, config):
        directory = original(cls, config)
        if _wants_sql_revisions(config) and not isinstance(directory, SqlScriptDirectory):
            directory.__class__ = SqlScriptDirectory
            # __init__ bound the revision map to the base class's loader; rebind it.
            directory.revision_map = type(directory.revision_map)(directory._load_revisions)
        return directory

    from_config.__doc__ = original.__doc__
    ScriptDirectory.from_config = classmethod(from_config)
    _installed = True


# Imported directly (before Alembic ran its plugins), the bridge still has to be in place.
install()
