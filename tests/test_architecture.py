"""The layout's rules hold: no import cycles, and scoring never loads the training or reporting stack.

Read statically from the source (every `import` and `from ... import`, including those inside
functions; not those under `if TYPE_CHECKING:`, which never run) and checked at run time in a fresh
interpreter, where lazy imports and package `__init__` files count too.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

SOURCE = Path(__file__).parents[1] / "src"
PACKAGE = "leadscore"
# The scoring artifact and its engines; scoring a batch must not load what only training needs.
SCORING_SIDE = ("leadscore.model", "leadscore.scoring", "leadscore.history")
TRAINING_SIDE = ("leadscore.training", "leadscore.reporting")


def module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    """Every module of the package: {dotted name: file}."""
    found = {module_name(path): path for path in sorted((SOURCE / PACKAGE).rglob("*.py"))}
    assert found, f"no modules found under {SOURCE / PACKAGE}"
    return found


def is_package(name: str) -> bool:
    return modules()[name].name == "__init__.py"


def within(name: str, prefixes: tuple[str, ...] | str) -> bool:
    """Whether `name` is one of the modules or packages in `prefixes`, or inside one."""
    prefixes = (prefixes,) if isinstance(prefixes, str) else prefixes
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _runtime_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Import statements anywhere in the module, except in `if TYPE_CHECKING:` blocks."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for statement in node.body for child in ast.walk(statement))
    return [node for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in skipped]


def imported_modules(name: str) -> set[str]:
    """The package's modules that `name` imports: each target, and the packages above a target that
    importing it runs (not the importer's own packages, which already ran before it)."""
    tree = ast.parse(modules()[name].read_text(), filename=str(modules()[name]))
    targets: set[str] = set()
    for node in _runtime_imports(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
            continue
        if node.level:  # relative: from the importer's package upwards
            package = name if is_package(name) else name.rpartition(".")[0]
            base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
            source = f"{base}.{node.module}" if node.module else base
        else:
            source = node.module or ""
        for alias in node.names:
            submodule = f"{source}.{alias.name}"
            targets.add(submodule if submodule in modules() else source)
    own = {*ancestors(name), name}
    edges = set()
    for target in targets:
        if target in modules() and target != name:
            edges.add(target)
            edges.update(a for a in ancestors(target) if a not in own and a in modules())
    return edges


@cache
def import_graph() -> dict[str, set[str]]:
    return {name: imported_modules(name) for name in modules()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path that returns to its start, or None when the graph is acyclic."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" after
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def reachable(graph: dict[str, set[str]], start: str) -> dict[str, str]:
    """Every module `start` imports directly or indirectly: {module: the module that imports it}."""
    via: dict[str, str] = {}
    stack = [start]
    while stack:
        node = stack.pop()
        for target in graph[node]:
            if target not in via and target != start:
                via[target] = node
                stack.append(target)
    return via


def chain(via: dict[str, str], start: str, end: str) -> str:
    steps = [end]
    while steps[-1] != start:
        steps.append(via[steps[-1]])
    return " -> ".join(reversed(steps))


def test_the_cycle_finder_finds_a_cycle_and_accepts_a_tree():
    # Given a graph with a cycle and one without, then only the first has one, shown as a closed path
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_static_reading_sees_imports_inside_functions_and_relative_ones():
    graph = import_graph()
    assert "leadscore.model.reasons" in graph["leadscore.config"], "config imports reasons inside a function"
    assert graph["leadscore.training.pipeline"] >= {"leadscore.training.split", "leadscore.model.scorer"}
    assert all(within(target, PACKAGE) for targets in graph.values() for target in targets)
    assert not [name for name, targets in graph.items() if name in targets], "a package importing its own modules is no edge to itself"


def test_no_import_cycles_among_the_package_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_scoring_side_imports_nothing_from_training_or_reporting():
    graph = import_graph()
    offences = []
    for name in sorted(graph):
        if not within(name, SCORING_SIDE):
            continue
        via = reachable(graph, name)
        offences += [chain(via, name, target) for target in sorted(via) if within(target, TRAINING_SIDE)]
    assert not offences, "the scoring side reaches the training stack:\n" + "\n".join(offences)


def loaded_after(statement: str) -> list[str]:
    """The package's modules in sys.modules after running `statement` in a fresh interpreter."""
    probe = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == '{PACKAGE}')))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("statement", [
    "import leadscore.scoring",
    "import leadscore.model.scorer",
    "import leadscore.scoring, leadscore.model.scorer, leadscore.scoring.pandas_engine, leadscore.scoring.job",
])
def test_loading_the_scoring_path_loads_no_training_or_reporting_module(statement):
    loaded = loaded_after(statement)
    assert any(within(m, SCORING_SIDE) for m in loaded), f"the probe loaded nothing: {loaded}"
    stray = [m for m in loaded if within(m, TRAINING_SIDE)]
    assert not stray, f"`{statement}` loads {stray}"


def test_importing_the_package_alone_loads_no_subpackage_or_module():
    assert loaded_after("import leadscore") == [PACKAGE], "`import leadscore` stays light: its API loads on first use"
