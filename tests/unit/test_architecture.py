"""The package's layers, checked on its import graph (read from the source, nothing imported).

Edges are the package modules each module names in an import statement, at any depth
(a function-level import hides no cycle here); ``from package import name`` is an edge to the
submodule when ``name`` is one, else to the package. Importing a submodule also runs its
parent packages' ``__init__``, which Python allows to be half-initialised, so parents are not
edges.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

from conftest import REPO

PACKAGE = REPO / "xstilts_jax"
ROOT = "xstilts_jax"


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str) -> list[tuple[str, str, int]]:
    """(imported module, imported name or "", line) of every package import in a module."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, "", node.lineno) for a in node.names if a.name.startswith(ROOT)]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                parent = parent[:len(parent) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            if not base.startswith(ROOT):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.append((sub, "", node.lineno) if sub in MODULES
                           else (base, alias.name, node.lineno))
    return out


GRAPH = {name: sorted({target for target, _, _ in _imports(name) if target != name})
         for name in MODULES}


def test_every_import_resolves_to_a_module():
    unknown = [(name, target) for name, targets in GRAPH.items() for target in targets
               if target not in MODULES]
    assert not unknown


def test_no_import_cycle():
    """Depth-first search for a back edge; the message shows the cycle."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(name):
        state[name] = 1
        stack.append(name)
        for target in GRAPH[name]:
            if state.get(target) == 1:
                cycle = stack[stack.index(target):] + [target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[name] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)


def test_no_private_name_imported_across_modules():
    found = [f"{MODULES[name].relative_to(PACKAGE.parent)}:{line}: {imported}.{symbol}"
             for name in MODULES for imported, symbol, line in _imports(name)
             if symbol.startswith("_") and imported != name]
    assert not found, found


@pytest.mark.parametrize("lower", ["models", "tasks", "data", "sharding", "losses", "metrics",
                                   "config"])
def test_lower_layers_do_not_import_the_trainer_or_experiments(lower):
    """models/, tasks/, data/ and the bottom modules never reach up into train/,
    experiments/, the demo or the command line."""
    upper = ("xstilts_jax.train", "xstilts_jax.experiments", "xstilts_jax.demo", "xstilts_jax.cli")
    prefix = f"{ROOT}.{lower}"
    found = [(name, target) for name, targets in GRAPH.items()
             if name == prefix or name.startswith(prefix + ".")
             for target in targets if target.startswith(upper)]
    assert not found, found


def test_the_planner_sits_above_experiments_and_below_the_command_line():
    """plan/ builds phases as cells do (experiments/) and nothing below it imports plan/; it
    never imports the command line, the demo or the report."""
    def under(name, *parts):
        return any(name == f"{ROOT}.{p}" or name.startswith(f"{ROOT}.{p}.") for p in parts)

    found = [(n, t) for n, targets in GRAPH.items() if under(n, "plan")
             for t in targets if under(t, "cli", "demo", "report")]
    found += [(n, t) for n, targets in GRAPH.items()
              if under(n, "experiments", "train", "models", "tasks", "report", "demo")
              for t in targets if under(t, "plan")]
    assert not found, found
    assert any(under(t, "experiments") for n, ts in GRAPH.items() if under(n, "plan") for t in ts)


def test_bottom_modules_import_nothing_above_them():
    """sharding, losses, config, heap and data/ are the floor: they import only each other."""
    floor = {f"{ROOT}.sharding", f"{ROOT}.losses", f"{ROOT}.config", f"{ROOT}.progress",
             f"{ROOT}.storage", f"{ROOT}.heap",
             f"{ROOT}.data", f"{ROOT}.data.batching", f"{ROOT}.data.inputs", f"{ROOT}.data.mlm"}
    found = [(name, target) for name in floor for target in GRAPH[name] if target not in floor]
    assert not found, found


def test_task_declarations_and_readers_sit_below_the_families():
    """Specs, formats, sources and the registry never import the families (which import the
    models); formats import only the bottom of tasks/."""
    declarative = [n for n in MODULES if n.startswith(f"{ROOT}.tasks.")
                   and not n.startswith(f"{ROOT}.tasks.families")]
    found = [(n, t) for n in declarative + [f"{ROOT}.tasks"] for t in GRAPH[n]
             if t.startswith((f"{ROOT}.tasks.families", f"{ROOT}.models"))]
    assert not found, found
    formats = [n for n in MODULES if n.startswith(f"{ROOT}.tasks.formats.")]
    allowed = {f"{ROOT}.tasks.io", f"{ROOT}.tasks.examples", *formats}
    found = [(n, t) for n in formats for t in GRAPH[n] if t not in allowed]
    assert not found, found


def test_the_report_sits_above_the_store_and_below_the_command_line():
    """report/ works from a sweep's store alone: it imports neither the trainer, the demo
    nor the command line; experiments/ and train/ never import report/ or the demo."""
    def under(name, *packages):
        return any(name == f"{ROOT}.{p}" or name.startswith(f"{ROOT}.{p}.") for p in packages)

    found = [(n, t) for n, targets in GRAPH.items() if under(n, "report")
             for t in targets if under(t, "train", "demo", "cli")]
    found += [(n, t) for n, targets in GRAPH.items() if under(n, "experiments", "train")
              for t in targets if under(t, "report", "demo")]
    assert not found, found
