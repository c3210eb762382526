"""The house rules of ARCHITECTURE.md, read from the package's own imports with ``ast``.

Every import counts, function-local ones included: an import hidden in a function still ties the
two modules together for anyone who changes one of them.  No database, no subprocess.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "grapevine_alembic"

# Root modules below every sub-package: the one error family, the configuration and migrate's defaults.
FOUNDATION = {"errors", "settings", "placement", "masking", "tool_tables", "defaults"}
# Root modules above everything: the ways in (the Python API, the Alembic road, python -m).
ENTRY = {"api", "alembic_env", "alembic_plugin", "service", "__main__"}
LAYERS = ("files", "database", "schema", "fleet", "lint", "local", "overview", "cli")

# What each layer may not import (ARCHITECTURE.md, "Code map").
MAY_NOT = {
    "foundation": set(LAYERS) | {"entry"},
    "files": {"database", "schema", "fleet", "lint", "local", "overview", "cli", "entry"},
    "database": {"schema", "fleet", "lint", "local", "overview", "cli", "entry"},
    "schema": {"fleet", "lint", "local", "overview", "cli", "entry"},
    "fleet": {"schema", "lint", "local", "overview", "cli", "entry"},
    "lint": {"database", "schema", "fleet", "local", "overview", "cli", "entry"},
    "local": {"schema", "fleet", "lint", "overview", "cli", "entry"},
    "overview": {"fleet", "lint", "local", "cli", "entry"},
    "cli": {"entry"},
    "entry": set(),
}


# Rooms inside a layer, in the order their imports run: a room may import the rooms before it only.
ROOMS = {"database": ("session", "state", "apply", "jobs")}
# Only the entry point of cli/ imports the command modules (each registers itself on the group).
COMMANDS, COMMANDS_IMPORTED_BY = "cli.commands", {"cli.main"}


def modules(root: Path) -> dict[str, tuple[Path, bool]]:
    """Dotted name (without the package's own name) -> (file, is a package's __init__)."""
    found = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        found[".".join(parts)] = (path, is_package)
    return found


def imports(root: Path) -> dict[str, set[str]]:
    """module -> the package's modules it imports, at any depth of its code."""
    mods = modules(root)
    name = root.name
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for module, (path, is_package) in mods.items():
        here = module.split(".") if module else []
        if not is_package:
            here = here[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == name or alias.name.startswith(name + "."):
                        graph[module].add(_known(alias.name[len(name) + 1:], mods))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here[: len(here) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                elif node.module and (node.module == name or node.module.startswith(name + ".")):
                    target = node.module[len(name) + 1:]
                else:
                    continue
                for alias in node.names:
                    submodule = f"{target}.{alias.name}" if target else alias.name
                    graph[module].add(submodule if submodule in mods else _known(target, mods))
        graph[module].discard(module)
    return graph


def _known(module: str, mods) -> str:
    assert module in mods, f"import of a module that does not exist: {module!r}"
    return module


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def layer_of(module: str) -> str | None:
    head = module.split(".")[0]
    if head in LAYERS:
        return head
    if head in FOUNDATION:
        return "foundation"
    if head in ENTRY:
        return "entry"
    return None  # the package's own __init__


def forbidden(graph: dict[str, set[str]]) -> list[str]:
    wrong = []
    for module, targets in sorted(graph.items()):
        layer = layer_of(module)
        for target in sorted(targets):
            if layer and layer_of(target) in MAY_NOT[layer]:
                wrong.append(f"{module} ({layer}) imports {target} ({layer_of(target)})")
    return wrong


def against_room_order(graph: dict[str, set[str]]) -> list[str]:
    """Imports that run backwards between the rooms of one layer, or into cli's commands from elsewhere."""
    wrong = []

    def room(module: str) -> tuple[str, int] | None:
        parts = module.split(".")
        order = ROOMS.get(parts[0])
        return (parts[0], order.index(parts[1])) if order and len(parts) > 2 and parts[1] in order else None

    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            here, there = room(module), room(target)
            if here and there and here[0] == there[0] and there[1] > here[1]:
                wrong.append(f"{module} imports {target}, a later room")
            if target.startswith(COMMANDS + ".") and not module.startswith(COMMANDS) and module not in COMMANDS_IMPORTED_BY:
                wrong.append(f"{module} imports the command module {target}")
    return wrong


def test_the_package_has_no_import_cycle():
    assert cycles(imports(PACKAGE)) == []


def test_no_layer_imports_one_it_may_not():
    assert forbidden(imports(PACKAGE)) == []


def test_rooms_import_one_way():
    assert against_room_order(imports(PACKAGE)) == []


def test_every_room_is_named_in_the_rules():
    for layer, rooms in ROOMS.items():
        found = {p.name for p in (PACKAGE / layer).iterdir() if (p / "__init__.py").exists()}
        assert found == set(rooms)
        assert not [p for p in (PACKAGE / layer).glob("*.py") if p.name != "__init__.py"], f"{layer}/ holds only rooms"


def test_a_backward_import_between_rooms_is_seen(tmp_path):
    root = _package(tmp_path, {
        "database/session/connection.py": "def later():\n    from ..jobs import runner\n",
        "database/jobs/runner.py": "from ..session.connection import later\n",
        "cli/views.py": "from .commands import migrate_command\n",
        "cli/commands/migrate_command.py": "",
    })
    assert against_room_order(imports(root)) == [
        "cli.views imports the command module cli.commands.migrate_command",
        "database.session.connection imports database.jobs.runner, a later room",
    ]


def test_every_root_module_and_sub_package_has_a_place_in_the_rules():
    mods = modules(PACKAGE)
    unplaced = sorted(m for m in mods if m and layer_of(m) is None)
    assert unplaced == []
    assert {m for m in mods if "." not in m and m and m not in LAYERS} == FOUNDATION | ENTRY


def test_architecture_md_names_every_sub_package():
    text = (PACKAGE.parent / "ARCHITECTURE.md").read_text()
    for layer in LAYERS:
        assert f"`{layer}/`" in text


# The checker itself, on small packages written for the purpose: it must see what it is for.


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "grapevine_alembic"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for folder in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()
    return root


def test_a_cycle_through_a_function_local_import_is_seen(tmp_path):
    root = _package(tmp_path, {
        "database/runner.py": "from . import ledger\n",
        "database/ledger.py": "def later():\n    from .runner import run\n",
    })
    assert cycles(imports(root)) == [["database.ledger", "database.runner"]]


@pytest.mark.parametrize(("files", "expected"), [
    ({"database/connection.py": "def say():\n    from ..cli import report\n", "cli/report.py": ""},
     ["database.connection (database) imports cli.report (cli)"]),
    ({"files/sqlfile.py": "import grapevine_alembic.database.executor\n", "database/executor.py": ""},
     ["files.sqlfile (files) imports database.executor (database)"]),
    ({"errors.py": "from .fleet import targets\n", "fleet/targets.py": ""},
     ["errors (foundation) imports fleet.targets (fleet)"]),
    ({"cli/app.py": "from ..alembic_env import notice_line\n", "alembic_env.py": ""},
     ["cli.app (cli) imports alembic_env (entry)"]),
])
def test_an_import_against_the_rules_is_seen(tmp_path, files, expected):
    assert forbidden(imports(_package(tmp_path, files))) == expected


# Text for a person (a command to paste, "run X to fix it", the flag that raises a timeout) is worded by cli/
# from the values the layers below return (errors.Fix); the alembic entry point words its own, the API names its
# arguments.  Below them, the program's name is a value.
PERSON_TEXT = ("grapevine-migrations", " mark --", "--timeout", "--lock-timeout", "-x timeout", "-x lock_timeout")
WORDED_BY = ("cli", "alembic_env")
NAME_AS_VALUE = {
    ("database.session.connection", "grapevine-migrations"),  # application_name, as pg_stat_activity shows it
    ("database.session.watchdog", "grapevine-migrations watchdog"),  # the watchdog's application_name
    ("local.devserver", "grapevine-migrations dev psql"),  # PGAPPNAME of `dev psql`
    ("files.scaffold", '  run = "grapevine-migrations"'),  # the executable the scaffolded hook runs
    ("overview.page", "<header><h1>grapevine-migrations "),  # the report page's title: the command it reports
    ("schema.render", None),  # schema.sql's header names the command that wrote the file
}


def strings(path: Path) -> list[str]:
    """The string constants of a module, docstrings left out (they speak to maintainers)."""
    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def person_text_below_cli(root: Path) -> list[str]:
    found = []
    for module, (path, _) in sorted(modules(root).items()):
        if module.split(".")[0] in WORDED_BY:
            continue
        for text in strings(path):
            if any(marker in text for marker in PERSON_TEXT) and (module, text) not in NAME_AS_VALUE \
                    and (module, None) not in NAME_AS_VALUE:
                found.append(f"{module}: {text.strip()[:80]!r}")
    return found


def test_commands_to_paste_are_worded_only_by_the_ways_in():
    assert person_text_below_cli(PACKAGE) == []


def test_a_command_to_paste_below_cli_is_seen(tmp_path):
    root = _package(tmp_path, {
        "database/state/plan.py": 'def fix(v):\n    """Says `grapevine-migrations mark --unapply`."""\n'
                                  '    return f"with: grapevine-migrations mark --unapply {v}"\n',
        "fleet/targets.py": 'HINT = "or run: tool mark --apply V"\n',
        "database/apply/pgerror.py": 'def hint():\n    """Not --lock-timeout: each way in names its knob."""\n'
                                     '    return "raise --lock-timeout (or -x lock_timeout=S with alembic)"\n',
        "cli/fixes.py": 'PROGRAM = "grapevine-migrations"\n',
        "alembic_env.py": 'ADOPT = "run `grapevine-migrations migrate` first"\n',
        "database/session/connection.py": 'APPLICATION_NAME = "grapevine-migrations"\n',
    })
    assert person_text_below_cli(root) == [
        "database.apply.pgerror: 'raise --lock-timeout (or -x lock_timeout=S with alembic)'",
        "database.state.plan: 'with: grapevine-migrations mark --unapply'",
        "fleet.targets: 'or run: tool mark --apply V'",
    ]
