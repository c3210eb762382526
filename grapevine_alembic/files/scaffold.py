"""``grapevine-migrations init``: the files plain ``alembic -c`` needs, written into an existing repository.

The CLI itself needs none of them (``./migrations`` is enough); ``alembic.ini`` also holds the
settings (tenants query, server logins). A file that exists is never overwritten: it is named
and left as it is. The templates ship in the wheel (``grapevine_alembic/files/templates``; the
env files as ``env.py.tmpl``, so that nothing takes them for modules of the package).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .authoring import TENANTS_TABLE, create_migration
from .discovery import discover

TEMPLATES = ("alembic.ini", "alembic_control/env.py", "alembic_tenant/env.py")
FOLDERS = ("migrations/control", "migrations/tenant")  # what alembic.ini's version_locations name
IGNORED = ".grapevine/"  # the embedded server's data and state


@dataclass(frozen=True)
class Step:
    path: str  # relative to the repository
    done: bool  # written (or the line added); False: it was there already


def template_text(name: str) -> str:
    stored = name + ".tmpl" if name.endswith(".py") else name
    return resources.files(__package__).joinpath("templates", *stored.split("/")).read_text(encoding="utf-8")


def scaffold(root: Path) -> list[Step]:
    """Write each template that is missing and add ``.grapevine/`` to ``.gitignore``; never overwrite."""
    steps = []
    for name in TEMPLATES:
        target = root / name
        if target.exists():
            steps.append(Step(name, False))
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("x", encoding="utf-8") as handle:  # "x": a file that appeared meanwhile is kept
            handle.write(template_text(name))
        steps.append(Step(name, True))
    steps.append(Step(".gitignore", _ignore_local_data(root / ".gitignore")))
    return steps


def migration_folders(root: Path) -> list[Step]:
    """Create the two chains' folders that are missing, so ``create`` works right after ``init``."""
    steps = []
    for name in FOLDERS:
        exists = (root / name).is_dir()
        (root / name).mkdir(parents=True, exist_ok=True)
        steps.append(Step(name + "/", not exists))
    return steps


def tenants_table(control: Path) -> Path | None:
    """A first control file creating ``tenants``; None (nothing written) when the chain has a file already."""
    if discover(control).files:
        return None
    return create_migration(control, "create tenants", body=TENANTS_TABLE)


def _ignore_local_data(gitignore: Path) -> bool:
    """Append the ``.grapevine/`` line unless the file already ignores that folder."""
    text = gitignore.read_text(encoding="utf-8") if gitignore.exists() else ""
    if {line.strip() for line in text.splitlines()} & {".grapevine", ".grapevine/", "/.grapevine", "/.grapevine/"}:
        return False
    with gitignore.open("a", encoding="utf-8") as handle:
        handle.write(("" if not text or text.endswith("\n") else "\n") + IGNORED + "\n")
    return True


def next_steps(version: str) -> list[str]:
    """What ``init`` prints after the files: the mise task and the Dockerfile lines."""
    return [
        "mise: the task in .mise.toml (every argument passes through, as before):",
        "  [tasks.migrations]",
        '  run = "grapevine-migrations"',
        "Dockerfile: install the tool where the previous one was installed; migrations/ stays as it is copied:",
        f"  RUN pip install --no-cache-dir grapevine-alembic=={version}",
        "  COPY alembic.ini ./    (only if you change its settings: the CLI needs nothing but migrations/)",
        "  COPY alembic_control ./alembic_control",
        "  COPY alembic_tenant ./alembic_tenant    (these two only for plain `alembic -c` in the image)",
    ]
