"""No import cycles anywhere in src/t2v, inside a package as well as between packages.

The graph is read from the source (AST), counting imports inside functions too (a deferred import defers a heavy
library, it never hides a cycle); ``if TYPE_CHECKING:`` blocks are left out (they never run). ``import a.b`` points at ``a.b``;
``from pkg import name`` reads ``name`` from the package's namespace, so it points at ``pkg`` (its ``__init__``),
and at ``pkg.name`` too when that is a submodule; relative imports are resolved against the importing module's
package. A module of a package that imports a sibling as ``from pkg import sibling`` while ``pkg/__init__.py``
imports that module (even inside a function) is a cycle: import the sibling from where it is defined.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

from tests.test_architecture import type_checking_nodes
from tests.test_architecture import cycles as architecture_cycles

SRC = Path(__file__).resolve().parents[1] / "src"


def modules_under(root: Path) -> dict[str, tuple[str, bool]]:
    """Every module under ``root`` (a folder holding top-level packages): dotted name -> (source, is a package)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if package else parts)] = (path.read_text(encoding="utf-8"), package)
    return out


def import_graph(modules: dict[str, tuple[str, bool]]) -> dict[str, dict[str, int]]:
    """module -> {module it imports: the first line importing it}, for imports between ``modules``."""

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, dict[str, int]] = {}
    for name, (source, package) in modules.items():
        tree = ast.parse(source)
        skip = type_checking_nodes(tree)
        out = graph.setdefault(name, {})
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".") if package else name.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules]
            else:
                continue
            for target in targets:
                resolved = known(target)
                if resolved and resolved != name:
                    out.setdefault(resolved, node.lineno)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module, sorted (the architecture test's Tarjan)."""
    return sorted(architecture_cycles(graph))


def describe(graph: dict[str, dict[str, int]], component: list[str]) -> str:
    """A cycle's modules and the imports that join them (``a -> b (line N)``)."""
    inside = set(component)
    edges = [f"  {a} -> {b} (line {line})" for a in component for b, line in sorted(graph[a].items()) if b in inside]
    return f"{len(component)} modules:\n" + "\n".join(edges)


def test_the_checker_finds_a_cycle_inside_a_package():
    modules = {
        "p": ("from p.a import A\n", True),
        "p.a": ("def f():\n    import p.b\nA = 1\n", False),  # deferred
        "p.b": ("from p import A\n", False),  # a name of the package: its __init__
        "p.c": ("from p.b import *\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from p import A\n", False),
        "q": ("import p.c\n", True),
    }
    graph = import_graph(modules)
    assert graph["p.a"] == {"p.b": 2} and graph["p.b"] == {"p": 1} and graph["p.c"] == {"p.b": 1}
    assert graph["q"] == {"p.c": 1}
    assert cycles(graph) == [["p", "p.a", "p.b"]]
    # A sibling imported through the package (relative or not) passes through its __init__: still a cycle.
    for line in ("from p import c as C\n", "from . import c\n"):
        graph = import_graph({**modules, "p.b": (line, False), "p.c": ("X = 1\n", False)})
        assert graph["p.b"] == {"p": 1, "p.c": 1}
        assert cycles(graph) == [["p", "p.a", "p.b"]], line
    assert cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {}}) == []
    assert cycles({"a": {"b": 1}, "b": {"a": 1}, "c": {"d": 1}, "d": {"c": 1}}) == [["a", "b"], ["c", "d"]]


@functools.cache
def t2v_graph() -> dict[str, dict[str, int]]:
    return import_graph(modules_under(SRC))


def test_the_checker_reads_all_of_t2v():
    graph = t2v_graph()
    assert len(graph) > 200 and "t2v.service.service" in graph["t2v.service.compose"]
    assert "t2v.ui.handlers" in graph["t2v.ui.app"] and "t2v.ui.app" in graph["t2v.ui"]  # deferred: still counted


def test_no_import_cycles_in_t2v():
    graph = t2v_graph()
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(describe(graph, c) for c in found)
