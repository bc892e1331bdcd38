"""The package's shape: no import cycles between files, and no layer importing a higher one.

Every `import` of a tessera_mpi module counts, at module level or inside a function, except
those under `if TYPE_CHECKING:` (they never run). The layers and what each may import are
described in docs/architecture.md; this table is that page's rule, checked.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "tessera_mpi"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "_version", "util", "hardware"),
    ("runtime",),
    ("comm",),
    ("fault",),
    ("reduction",),
    ("dist",),
    ("fabric",),
    ("op", "profile"),
    ("parallel",),
    ("results",),
    ("reports",),
    ("suite",),
    ("testing",),
    ("",),
)
"""Lowest first. A module may import its own layer and the layers before it, nothing above."""


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int:
    inner = module.split(".", 1)[1] if "." in module else ""
    top = inner.split(".", 1)[0]
    for index, names in enumerate(LAYERS):
        if top in names:
            return index
    raise AssertionError(f"{module} is in no layer of LAYERS; add its folder to the table and the docs")


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _known(name: str, modules: set[str]) -> str | None:
    """Return the package module `name` refers to (a module, or the package defining a name)."""
    while name:
        if name in modules:
            return name
        name = name.rsplit(".", 1)[0] if "." in name else ""
    return None


def import_graph() -> dict[str, set[str]]:
    """Return {module: the package modules it imports}."""
    files = {_module(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(files)
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text())
        skip = _type_checking_lines(tree)
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        found: set[str] = set()
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in skip:
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            else:
                continue
            for target in targets:
                hit = _known(target, modules)
                if hit is not None and hit != module:
                    found.add(hit)
        # "from .x import y" names module x; the bare package entry adds only its __init__.
        graph[module] = found
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if _is_parent_package(nxt, node):
                continue
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if state.get(nxt) is None and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if state.get(node) is None and (found := visit(node)) is not None:
            return found
    return None


def _is_parent_package(candidate: str, module: str) -> bool:
    """Importing a name from one's own package's __init__ (re-exports) is not a file dependency
    of the submodule on its siblings; Python resolves it to the submodule already loading."""
    return module.startswith(candidate + ".")


def test_no_import_cycles_between_files():
    cycle = _cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_layer_imports_a_higher_one():
    wrong = []
    for module, imports in sorted(import_graph().items()):
        for target in sorted(imports):
            if _layer(target) > _layer(module) and not _is_parent_package(target, module):
                wrong.append(f"{module} imports {target}")
    assert not wrong, "lower layers importing higher ones:\n" + "\n".join(wrong)


def test_runtime_imports_nothing_outside_itself_but_the_leaves():
    graph = import_graph()
    outside = sorted(f"{m} imports {t}" for m, ts in graph.items() if m.startswith("tessera_mpi.runtime")
                     for t in ts if not t.startswith(("tessera_mpi.runtime", "tessera_mpi.errors", "tessera_mpi.util",
                                                         "tessera_mpi.hardware")))
    assert not outside, "\n".join(outside)


@pytest.mark.parametrize("planted, expected", [
    ({"tessera_mpi.runtime.x": {"tessera_mpi.suite.runner"}}, "runtime.x imports tessera_mpi.suite.runner"),
])
def test_the_layer_rule_catches_a_planted_upward_import(planted, expected):
    module, imports = next(iter(planted.items()))
    assert _layer(next(iter(imports))) > _layer(module), expected


def test_the_cycle_finder_catches_a_planted_cycle():
    assert _cycle({"a.x": {"a.y"}, "a.y": {"a.z"}, "a.z": {"a.x"}}) == ["a.x", "a.y", "a.z", "a.x"]
    assert _cycle({"a.x": {"a.y"}, "a.y": set()}) is None
