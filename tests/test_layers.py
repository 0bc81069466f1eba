"""The package's structure, read from its own imports: no cycle, no upward import, no task branch.

The imports are read with `ast` from every module under src/recog (function-
local and TYPE_CHECKING imports included: a dependency hidden inside a
function is still a dependency), so a new module is checked the day it lands.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import recog

SRC = Path(recog.__file__).resolve().parent

#: the layers, bottom first; a module may import its own layer's modules and those below.
#: Each name is a top-level module or sub-package of recog (DESIGN.md, "Habits").
LAYERS: list[set[str]] = [
    {"errors", "names", "types", "io", "version", "console", "yaml_text", "paths"},
    {"config"},
    {"models"},
    {"metrics"},
    {"data"},
    {"recipe", "recipe_start"},
    {"tasks"},
    {"engine"},
    {"report"},
    {"explain", "robust", "deploy", "confidence", "distill"},
    {"resolve"},
    {"api"},
    {"serve", "batch", "doctor"},
    {"cli", "demo", "__main__", "__init__"},
]
LAYER_OF = {name: i for i, names in enumerate(LAYERS) for name in names}
TASK_NAMES = {"classify", "detect", "segment"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _imports(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """The recog modules `path` imports (a `from pkg import mod` names the module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "recog"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "recog":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in modules else target)
    found.discard(name)
    return {m for m in found if m in modules}


def _unit(module: str) -> str:
    """The layer unit of a module: recog.data.coco -> data; recog -> __init__."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, name, modules) for name, path in modules.items()}


def test_every_module_has_a_layer(graph):
    missing = sorted({_unit(m) for m in graph} - set(LAYER_OF))
    assert not missing, f"put these in LAYERS: {missing}"


def test_no_import_runs_up_the_layers(graph):
    upward = [
        f"{a} -> {b}"
        for a, targets in graph.items()
        for b in targets
        if LAYER_OF[_unit(b)] > LAYER_OF[_unit(a)]
    ]
    assert not upward, "imports that run up the layers:\n" + "\n".join(sorted(upward))


def test_no_import_cycle(graph):
    # Tarjan's strongly connected components: any component of two or more is a cycle
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def _names_a_task(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant) and node.value in TASK_NAMES:
        return True
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return node.value.id == "TaskName"
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return any(_names_a_task(e) for e in node.elts)
    return False


def test_only_tasks_compare_with_a_task_name():
    """What differs by task is asked of the Task: no `task == "detect"` outside tasks/."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if path.relative_to(SRC).parts[0] == "tasks":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare) and any(
                _names_a_task(n) for n in [node.left, *node.comparators]
            ):
                found.append(f"{path.relative_to(SRC)}:{node.lineno}")
    for path in sorted(SRC.rglob("*.js")):
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if any(f'"{t}"' in line or f"'{t}'" in line for t in TASK_NAMES) and (
                "==" in line or "{ classify" in line.replace('"', "").replace("'", "")
            ):
                found.append(f"{path.relative_to(SRC)}:{lineno}")
    assert not found, "task-name comparisons outside tasks/: " + ", ".join(found)


def test_the_checks_catch_what_they_are_for(tmp_path):
    """The readers see a function-local import and a task-name comparison."""
    mod = tmp_path / "m.py"
    mod.write_text("def f(cfg):\n    from recog.cli import main\n    return cfg.task == 'detect'\n")
    assert _imports(mod, "recog.m", {"recog.cli": mod, "recog.m": mod}) == {"recog.cli"}
    tree = ast.parse(mod.read_text())
    assert any(
        isinstance(n, ast.Compare) and _names_a_task(n.comparators[0]) for n in ast.walk(tree)
    )
