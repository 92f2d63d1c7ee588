"""Import direction of the core: the contract at the bottom, the machinery rooms above it, plugins beside.

Why the rule exists:

* The contract (every top-level module of ``esper_core``) is what plugin authors import. It must stay small
  and stable, so it depends on none of the machinery: a change inside a room can never break a plugin.
* The machinery depends downward only (config, growth, rl, run, cli; the plugin registry beside them), so
  each room can be read and tested alone, with nothing above it loaded.
* Plugins (the built-in packages under ``plugins/`` and the example plugin) see only the contract and the RL
  toolkit, and never one another, so a built-in plugin works exactly as a third party's would.

The checker parses every file with ``ast`` and imports nothing. Function-level and ``if TYPE_CHECKING:``
imports count like module-level ones; the one exception (``esper_core/testing.py`` may import
``esper_core.plugins`` lazily, inside a function) is named in ``LAZY_EXCEPTIONS``. Run this file as a script,
``python tests/unit/test_layers.py ROOT``, to check another tree (a copy of the repo, a branch checkout).
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping

import pytest

REPO = Path(__file__).resolve().parents[2]
CORE = "esper_core"
CONTRACT = "contract"
PLUGIN_PACKAGE = "plugin package"  # a built-in package under plugins/, or the example plugin

# The rule table: what each layer may import besides itself and anything outside esper_core.
# Rooms are the subpackages of esper_core; a new folder there must be added here before it can ship.
ALLOWED: Mapping[str, frozenset[str]] = {
    CONTRACT: frozenset(),
    "config": frozenset({CONTRACT}),
    "growth": frozenset({CONTRACT, "config"}),
    "rl": frozenset({CONTRACT, "config", "growth"}),
    "plugins": frozenset({CONTRACT}),
    "run": frozenset({CONTRACT, "config", "growth", "rl", "plugins"}),
    "cli": frozenset({CONTRACT, "config", "growth", "rl", "plugins", "run"}),
    PLUGIN_PACKAGE: frozenset({CONTRACT, "rl"}),  # and only its own package among plugin packages
}
LAYER_ORDER = (CONTRACT, "config", "growth", "rl", "plugins", "run", "cli", PLUGIN_PACKAGE)
ROOMS = frozenset(ALLOWED) - {CONTRACT, PLUGIN_PACKAGE}
MAX_CONTRACT_MODULES = 15
# A contract module that may import one room, but only inside a function (never at module level).
LAZY_EXCEPTIONS: Mapping[str, str] = {"esper_core/testing.py": "plugins", "esper_core/specs.py": "config"}
BUILTIN_PLUGINS = frozenset(
    {"esper_hosts", "esper_blueprints", "esper_blends", "esper_rewards", "esper_policies", "esper_tasks", "esper_sinks"}
)
EXAMPLE_PLUGIN = "esper_blueprint_demo"


@dataclass(frozen=True)
class Place:
    """Where a file or an imported module sits: its layer, and for plugin packages which package."""

    layer: str
    package: str = ""

    def __str__(self) -> str:
        return f"{PLUGIN_PACKAGE} {self.package}" if self.layer == PLUGIN_PACKAGE and self.package else self.layer


@dataclass(frozen=True)
class Source:
    path: Path
    rel: str  # posix path relative to the checked root, for messages
    module: str  # dotted name, e.g. esper_core.rl.masks
    is_package: bool  # an __init__.py
    place: Place


@dataclass(frozen=True)
class Import:
    line: int
    names: tuple[str, ...]  # candidate modules, most general first: `from a.b import c` gives a.b, a.b.c
    lazy: bool  # inside a function body
    type_checking: bool  # under `if TYPE_CHECKING:`


@dataclass(frozen=True)
class Violation:
    rel: str
    line: int
    imported: str
    reason: str
    lazy: bool = False
    type_checking: bool = False

    def __str__(self) -> str:
        flags = (("inside a function", self.lazy), ("under TYPE_CHECKING", self.type_checking))
        tags = [tag for tag, on in flags if on]
        suffix = f" [{', '.join(tags)}]" if tags else ""
        return f"{self.rel}:{self.line} imports {self.imported} ({self.reason}){suffix}"


@dataclass
class Scan:
    violations: list[Violation] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # unparsable files, relative imports past the top
    files: dict[str, int] = field(default_factory=dict)  # files checked per place


# --- finding the code -------------------------------------------------------------------------------------


def _has_python(folder: Path) -> bool:
    return any(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def core_folders(root: Path) -> list[str]:
    """Every folder directly under esper_core/ that holds Python code (each one must be a known room)."""
    core = root / CORE
    if not core.is_dir():
        return []
    return sorted(
        d.name for d in core.iterdir() if d.is_dir() and not d.name.startswith((".", "_")) and _has_python(d)
    )


def unknown_rooms(root: Path) -> list[str]:
    return [
        f"{CORE}/{name}/ is not a known room: add it to ALLOWED in tests/unit/test_layers.py "
        "with the layers it may import (and the layers that may import it)"
        for name in core_folders(root)
        if name not in ROOMS
    ]


def contract_modules(root: Path) -> list[str]:
    return sorted(p.stem for p in (root / CORE).glob("*.py"))


def plugin_packages(root: Path) -> dict[str, Path]:
    """Every package under plugins/, and every package of an example project (examples/<project>/<pkg>/)."""
    found: dict[str, Path] = {}
    plugins = root / "plugins"
    if plugins.is_dir():
        for d in sorted(plugins.iterdir()):
            if d.is_dir() and not d.name.startswith((".", "_")) and _has_python(d):
                found[d.name] = d
    for init in sorted(root.glob("examples/*/*/__init__.py")):
        if init.parent.name != "tests":
            found[init.parent.name] = init.parent
    return found


def _modules(base: Path, import_root: Path, root: Path) -> Iterator[tuple[Path, str, str, bool]]:
    for path in sorted(base.rglob("*.py")):
        if "__pycache__" in path.parts or any(p.startswith(".") for p in path.relative_to(base).parts):
            continue
        parts = path.relative_to(import_root).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        yield path, path.relative_to(root).as_posix(), ".".join(parts[:-1] if is_package else parts), is_package


def sources(root: Path) -> Iterator[Source]:
    core = root / CORE
    if core.is_dir():
        for path, rel, module, is_package in _modules(core, root, root):
            inner = path.relative_to(core).parts
            layer = CONTRACT if len(inner) == 1 else inner[0]
            if layer in ALLOWED:  # files of an unknown room are reported by unknown_rooms()
                yield Source(path, rel, module, is_package, Place(layer))
    for name, folder in plugin_packages(root).items():
        for path, rel, module, is_package in _modules(folder, folder.parent, root):
            yield Source(path, rel, module, is_package, Place(PLUGIN_PACKAGE, name))


# --- reading the imports ----------------------------------------------------------------------------------


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(node: ast.ImportFrom, source: Source) -> str | None:
    """The absolute module of ``from <...> import``; None for a relative import past the top-level package."""
    if node.level == 0:
        return node.module or ""
    package = source.module.split(".") if source.is_package else source.module.split(".")[:-1]
    if node.level > len(package):
        return None
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


STATEMENT_NODES = (ast.stmt, ast.excepthandler, ast.match_case)


def imports_of(tree: ast.Module, source: Source, errors: list[str]) -> list[Import]:
    found: list[Import] = []

    def visit(node: ast.AST, lazy: bool, type_checking: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend(Import(node.lineno, (alias.name,), lazy, type_checking) for alias in node.names)
            return
        if isinstance(node, ast.ImportFrom):
            base = _resolve(node, source)
            if base is None:
                errors.append(f"{source.rel}:{node.lineno}: relative import goes past the top-level package")
                return
            subs = tuple(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
            found.append(Import(node.lineno, (base, *subs), lazy, type_checking))
            return
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lazy = True
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, lazy, True)
            for child in node.orelse:
                visit(child, lazy, type_checking)
            return
        for child in ast.iter_child_nodes(node):
            if isinstance(child, STATEMENT_NODES):  # an import is a statement: expressions hold none
                visit(child, lazy, type_checking)

    visit(tree, False, False)
    return found


# --- judging them -----------------------------------------------------------------------------------------


def classify(name: str, folders: frozenset[str], packages: frozenset[str]) -> Place | None:
    """The place of an imported module; None when the rule does not govern it (stdlib, torch, ...)."""
    parts = name.split(".")
    if parts[0] == CORE:
        if len(parts) == 1:
            return Place(CONTRACT)
        if parts[1] in ROOMS:
            return Place(parts[1])
        if parts[1] in folders:  # an unknown room: reported once, by unknown_rooms()
            return None
        return Place(CONTRACT)  # a top-level module, or a name re-exported by esper_core/__init__.py
    if parts[0] in packages:
        return Place(PLUGIN_PACKAGE, parts[0])
    return None


def _reaches(start: str, goal: str, graph: Mapping[str, frozenset[str]]) -> bool:
    seen: set[str] = set()
    todo = [start]
    while todo:
        layer = todo.pop()
        for nxt in graph.get(layer, frozenset()):
            if nxt == goal:
                return True
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return False


def _may_import(layer: str) -> str:
    allowed = [other for other in LAYER_ORDER if other in ALLOWED[layer]]
    if layer == CONTRACT:
        return "contract may import nothing of the rooms"
    if layer == PLUGIN_PACKAGE:
        return f"a plugin package may import {', '.join(allowed)} and no other plugin package"
    return f"{layer} may import {', '.join(allowed)}"


def judge(source: Source, target: Place, imp: Import) -> str | None:
    """Why this import breaks the rule, or None when it is allowed."""
    here = source.place
    if target.layer == here.layer:
        if here.layer != PLUGIN_PACKAGE or target.package == here.package:
            return None
        return f"{here} -> {target} is sideways; {_may_import(here.layer)}"
    if target.layer in ALLOWED[here.layer]:
        return None
    direction = "upward" if _reaches(target.layer, here.layer, ALLOWED) else "sideways"
    reason = f"{here} -> {target} is {direction}"
    if LAZY_EXCEPTIONS.get(source.rel) == target.layer:
        if imp.lazy:
            return None
        return f"{reason}; {source.rel} may import {CORE}.{target.layer} only inside a function, never at module level"
    return f"{reason}; {_may_import(here.layer)}"


def scan(root: Path) -> Scan:
    """Check every import of the core, the built-in plugins and the example plugin under ``root``."""
    result = Scan()
    folders = frozenset(core_folders(root))
    packages = frozenset(plugin_packages(root))
    for source in sources(root):
        key = source.place.layer if source.place.layer != PLUGIN_PACKAGE else f"{PLUGIN_PACKAGE} {source.place.package}"
        result.files[key] = result.files.get(key, 0) + 1
        try:
            tree = ast.parse(source.path.read_text(encoding="utf-8"), filename=str(source.path))
        except SyntaxError as exc:
            result.errors.append(f"{source.rel}:{exc.lineno}: cannot parse ({exc.msg})")
            continue
        for imp in imports_of(tree, source, result.errors):
            reported: set[Place] = set()
            for name in imp.names:
                target = classify(name, folders, packages)
                if target is None or target in reported:
                    continue
                reason = judge(source, target, imp)
                if reason is not None:
                    reported.add(target)
                    result.violations.append(
                        Violation(source.rel, imp.line, name, reason, imp.lazy, imp.type_checking)
                    )
    return result


def check_layers(root: Path) -> list[str]:
    """Every way the tree under ``root`` breaks the layer rule, one readable line each (empty: all good)."""
    problems = [*layer_table_problems(ALLOWED), *unknown_rooms(root)]
    modules = contract_modules(root)
    if len(modules) > MAX_CONTRACT_MODULES:
        problems.append(
            f"the contract has {len(modules)} top-level modules in {CORE}/ (at most {MAX_CONTRACT_MODULES}): "
            f"{', '.join(modules)}"
        )
    result = scan(root)
    return [*problems, *result.errors, *map(str, result.violations)]


def layer_table_problems(table: Mapping[str, frozenset[str]]) -> list[str]:
    problems = [
        f"layer {layer!r} may import unknown layer {other!r}"
        for layer, allowed in table.items()
        for other in sorted(allowed)
        if other not in table
    ]
    problems += [f"layer {layer!r} lists itself" for layer, allowed in table.items() if layer in allowed]
    problems += [
        f"the allowed graph has a cycle through {layer!r}" for layer in table if _reaches(layer, layer, table)
    ]
    return problems


# --- the real repo ----------------------------------------------------------------------------------------


def _fail_on(title: str, lines: list[str]) -> None:
    """Fail with every problem on its own line (no assertion introspection repeating the list)."""
    if lines:
        header = f"{title} ({len(lines)}; the rule is ALLOWED in tests/unit/test_layers.py):"
        pytest.fail("\n  ".join([header, *lines]), pytrace=False)


def test_rule_table_is_sane() -> None:
    _fail_on("problems in the layer table", layer_table_problems(ALLOWED))
    assert set(LAYER_ORDER) == set(ALLOWED)
    assert ALLOWED["cli"] == ROOMS - {"cli"} | {CONTRACT}, "cli may import every other layer of the core"
    assert ALLOWED[CONTRACT] == frozenset(), "the contract imports nothing of the rooms"
    assert set(LAZY_EXCEPTIONS.values()) <= ROOMS


def test_every_core_folder_is_a_known_room() -> None:
    _fail_on("unclassified folders in esper_core/", unknown_rooms(REPO))


def test_contract_stays_small() -> None:
    modules = contract_modules(REPO)
    assert len(modules) <= MAX_CONTRACT_MODULES, (
        f"the contract has {len(modules)} top-level modules (at most {MAX_CONTRACT_MODULES}): {', '.join(modules)}"
    )


@pytest.fixture(scope="module")
def repo_scan() -> Scan:
    return scan(REPO)


def test_the_checker_sees_every_layer(repo_scan: Scan) -> None:
    files = repo_scan.files
    assert all(files.get(layer, 0) > 0 for layer in ROOMS | {CONTRACT}), files
    found = set(plugin_packages(REPO))
    assert BUILTIN_PLUGINS | {EXAMPLE_PLUGIN} <= found, found
    assert all(files.get(f"{PLUGIN_PACKAGE} {name}", 0) > 0 for name in found), files


def test_imports_point_downward(repo_scan: Scan) -> None:
    _fail_on("files the checker could not read", repo_scan.errors)
    _fail_on("imports that break the layer rule", [str(v) for v in repo_scan.violations])


# --- the checker catches what it should (a planted tree) --------------------------------------------------

PLANTED = {
    "esper_core/__init__.py": "",
    "esper_core/specs.py": "from esper_core.growth.model import Model\n",
    "esper_core/records.py": "from esper_core import specs, run\n",
    "esper_core/testing.py": (
        "from esper_core.plugins.registry import Registry\n"
        "\n"
        "def fixture() -> None:\n"
        "    from esper_core.plugins.loader import load\n"
    ),
    "esper_core/config/__init__.py": "from ..growth import slot\nfrom esper_core.specs import X\n",
    "esper_core/growth/__init__.py": (
        "from esper_core.config import sections\nfrom .. import specs\nfrom . import slot\n"
    ),
    "esper_core/rl/__init__.py": "",
    "esper_core/rl/x.py": "from esper_core.run.env import X\n",
    "esper_core/rl/y.py": (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from ..run import env\n"
        "\n"
        "def f() -> None:\n"
        "    import esper_core.cli\n"
    ),
    "esper_core/rl/bad.py": "from .... import nowhere\n",
    "esper_core/plugins/__init__.py": "from esper_core.specs import X\nfrom esper_core.growth import model\n",
    "esper_core/run/__init__.py": "from esper_core.plugins import loader\nfrom esper_core.rl import masks\n",
    "esper_core/cli/__init__.py": "import esper_core.run.runner\nimport esper_hosts\n",
    "esper_core/newroom/__init__.py": "",
    "plugins/esper_hosts/__init__.py": (
        "import esper_core.growth\nfrom esper_core.rl import masks\nfrom esper_core import hookspecs\n"
    ),
    "plugins/esper_policies/__init__.py": "",
    "plugins/esper_policies/policy.py": (
        "from esper_hosts.blocks import B\nfrom . import helpers\nfrom esper_policies.helpers import h\n"
    ),
    "examples/demo/demo_plugin/__init__.py": "from esper_core import run\nimport torch\n",
    "examples/demo/tests/__init__.py": "",
    "examples/demo/tests/test_demo.py": "from esper_core.run import env\n",
}


def _plant(root: Path, files: Mapping[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_checker_reports_every_planted_violation(tmp_path: Path) -> None:
    result = scan(_plant(tmp_path, PLANTED))
    assert {(v.rel, v.line, v.imported) for v in result.violations} == {
        ("esper_core/specs.py", 1, "esper_core.growth.model"),  # contract -> room
        ("esper_core/records.py", 1, "esper_core.run"),  # `from esper_core import run` imports a room
        ("esper_core/testing.py", 1, "esper_core.plugins.registry"),  # the exception is function-level only
        ("esper_core/config/__init__.py", 1, "esper_core.growth"),  # relative import, resolved
        ("esper_core/rl/x.py", 1, "esper_core.run.env"),
        ("esper_core/rl/y.py", 3, "esper_core.run"),  # under TYPE_CHECKING
        ("esper_core/rl/y.py", 6, "esper_core.cli"),  # inside a function
        ("esper_core/plugins/__init__.py", 2, "esper_core.growth"),
        ("esper_core/cli/__init__.py", 2, "esper_hosts"),  # the core never imports a plugin package
        ("plugins/esper_hosts/__init__.py", 1, "esper_core.growth"),
        ("plugins/esper_policies/policy.py", 1, "esper_hosts.blocks"),  # plugin -> another plugin
        ("examples/demo/demo_plugin/__init__.py", 1, "esper_core.run"),
    }
    assert result.errors == ["esper_core/rl/bad.py:1: relative import goes past the top-level package"]
    messages = {str(v) for v in result.violations}
    assert (
        "esper_core/rl/x.py:1 imports esper_core.run.env (rl -> run is upward; rl may import contract, config, growth)"
        in messages
    )
    assert (
        "esper_core/rl/y.py:3 imports esper_core.run (rl -> run is upward; "
        "rl may import contract, config, growth) [under TYPE_CHECKING]" in messages
    )
    assert (
        "esper_core/specs.py:1 imports esper_core.growth.model "
        "(contract -> growth is upward; contract may import nothing of the rooms)" in messages
    )
    assert (
        "esper_core/testing.py:1 imports esper_core.plugins.registry (contract -> plugins is upward; "
        "esper_core/testing.py may import esper_core.plugins only inside a function, never at module level)"
        in messages
    )
    assert (
        "plugins/esper_hosts/__init__.py:1 imports esper_core.growth (plugin package esper_hosts -> growth is "
        "sideways; a plugin package may import contract, rl and no other plugin package)" in messages
    )
    assert (
        "plugins/esper_policies/policy.py:1 imports esper_hosts.blocks (plugin package esper_policies -> "
        "plugin package esper_hosts is sideways; a plugin package may import contract, rl and no other plugin "
        "package)" in messages
    )


def test_checker_reports_unknown_rooms_and_a_large_contract(tmp_path: Path) -> None:
    files = {"esper_core/__init__.py": "", "esper_core/newroom/thing.py": "import esper_core\n"}
    files |= {f"esper_core/module_{i}.py": "" for i in range(MAX_CONTRACT_MODULES)}
    problems = check_layers(_plant(tmp_path, files))
    assert problems == [
        "esper_core/newroom/ is not a known room: add it to ALLOWED in tests/unit/test_layers.py "
        "with the layers it may import (and the layers that may import it)",
        f"the contract has {MAX_CONTRACT_MODULES + 1} top-level modules in esper_core/ "
        f"(at most {MAX_CONTRACT_MODULES}): " + ", ".join(sorted(["__init__", *(f"module_{i}" for i in range(15))])),
    ]


def test_checker_reports_a_cycle_in_the_table() -> None:
    cyclic = {**ALLOWED, "config": frozenset({CONTRACT, "run"})}
    assert "the allowed graph has a cycle through 'config'" in layer_table_problems(cyclic)
    assert "layer 'rl' may import unknown layer 'nowhere'" in layer_table_problems(
        {**ALLOWED, "rl": frozenset({"nowhere"})}
    )


@pytest.mark.parametrize("name", ["esper_core", "esper_core.events", "esper_core.api", "esper_core.PLUGIN_API"])
def test_contract_names_classify_as_contract(name: str) -> None:
    assert classify(name, frozenset(ROOMS), frozenset()) == Place(CONTRACT)


if __name__ == "__main__":
    root = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else REPO
    found = check_layers(root)
    print("\n".join(found) if found else f"{root}: the layer rule holds")
    sys.exit(1 if found else 0)
