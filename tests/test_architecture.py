"""Arrows point down: front ends call the service (JobService) and never reach past it to the store.

The API, web UI, CLI, desktop app, shared front-end logic, client and the Space's app may not read
``<anything>.repo`` (the service's repository) nor import ``t2v.store``; what they need from the store is a
:class:`~t2v.service.JobService` method (:mod:`t2v.service.access` holds the keys, rate, stream and count ones).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FRONT_ENDS = [ROOT / "src" / "t2v" / name for name in ("api", "ui", "cli", "desktop", "frontend", "client")]
FRONT_ENDS += [ROOT / "deploy"]


def front_end_files() -> list[Path]:
    return sorted(p for root in FRONT_ENDS if root.exists() for p in root.rglob("*.py"))


def _module_of(path: Path) -> str:
    """``src/t2v/api/deps.py`` -> ``t2v.api.deps``, ``src/t2v/api/__init__.py`` -> ``t2v.api`` (for resolving
    relative imports); files outside src/: their path as dotted names."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    parts = parts[1:] if parts[0] == "src" else parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_store(module: str) -> bool:
    return module == "t2v.store" or module.startswith("t2v.store.")


def violations(source: str, module: str = "t2v.frontend.example", *, package: bool = False) -> list[str]:
    """Each use of the repository or the store in ``source``, as ``line N: what``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        where = f"line {getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Attribute) and node.attr == "repo":
            found.append(f"{where}: .repo")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "setattr")
              and len(node.args) > 1 and isinstance(node.args[1], ast.Constant) and node.args[1].value == "repo"):
            found.append(f"{where}: {node.func.id}(..., 'repo')")
        elif isinstance(node, ast.Import):
            found += [f"{where}: import {a.name}" for a in node.names if _is_store(a.name)]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                package_parts = module.split(".") if package else module.split(".")[:-1]
                anchor = package_parts[: len(package_parts) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
            if any(_is_store(n) for n in names):
                found.append(f"{where}: from {'.' * node.level}{node.module or ''} import "
                             f"{', '.join(a.name for a in node.names)}")
    return found


def test_front_ends_are_scanned():
    files = front_end_files()
    assert len(files) > 20, files  # the roots moved? then FRONT_ENDS is out of date
    assert ROOT / "src" / "t2v" / "api" / "deps.py" in files


@pytest.mark.parametrize("source", [
    "service.repo.list_keys()",
    "x = self.service.repo",
    "getattr(svc, 'repo').get_job('x')",
    "from t2v.store import Repository",
    "from t2v.store.mongo import RecordStoreUnavailable",
    "import t2v.store.keys",
    "from t2v import store",
    "from ...store import Repository",
    "def f():\n    from ...store.keys import ApiKeyRow",
])
def test_checker_catches(source):
    assert violations(source, "t2v.api.routes.videos"), source


def test_checker_resolves_relative_imports():
    assert violations("from ..store import Repository", "t2v.api.deps")
    assert violations("from . import store", "t2v", package=True)
    assert not violations("from ..store import x", "t2v.api.routes.videos")  # that is t2v.api.store


@pytest.mark.parametrize("source", [
    "service.has_keys()",
    "service.report(repository)",
    "'service.repo in a string'",
    "from t2v.service.records import RecordStoreUnavailable",
    "from ..service import JobService",
    "import t2v.storeroom",
])
def test_checker_passes(source):
    assert not violations(source, "t2v.api.routes.videos"), source


def test_front_ends_never_reach_the_store():
    """Give JobService a method instead (t2v.service.access for keys, rate limits, stream leases, counts)."""
    bad = []
    for path in front_end_files():
        found = violations(path.read_text(encoding="utf-8"), _module_of(path), package=path.name == "__init__.py")
        bad += [f"{path.relative_to(ROOT)} {v}" for v in found]
    assert not bad, "front ends must call the service, not its repository or t2v.store:\n" + "\n".join(bad)


def private_imports(source: str) -> list[str]:
    """Each ``from t2v.x import _name`` in ``source`` (a private name taken from another module), as ``line N``;
    ``import ... as _alias`` is the importer's own private name, not another module's."""
    return [f"line {node.lineno}: from {node.module} import {a.name}" for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "t2v" and not node.level
            for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]


def test_no_private_names_cross_modules():
    assert private_imports("from t2v.cli.app import _run, print_summary\nfrom t2v.x import y as _y\n") == [
        "line 1: from t2v.cli.app import _run"]
    bad = [f"{p.relative_to(ROOT)} {v}" for p in sorted((ROOT / "src" / "t2v").rglob("*.py"))
           for v in private_imports(p.read_text(encoding="utf-8"))]
    assert not bad, "make the name public in its module (DESIGN.md: no private names cross modules):\n" + "\n".join(bad)


# -- the whole import graph: layers that only point down, and no cycle -------------------------------------------

SRC = ROOT / "src"
# Lowest first. A module may import its own layer and the layers below it, counting imports inside functions
# (``if TYPE_CHECKING:`` blocks aside). The longest prefix decides a module's layer.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("contract", ("t2v.errors", "t2v.version", "t2v.requests", "t2v.settings", "t2v.runtime", "t2v.extras")),
    ("models", ("t2v.models", "t2v.planner", "t2v.sampling", "t2v.export", "t2v.inputs", "t2v.control", "t2v.record", "t2v.progress",
                "t2v.post", "t2v.extend.plan")),
    ("families", ("t2v.families", "t2v.extend")),
    ("runner", ("t2v.runner", "t2v.image")),
    ("service", ("t2v.service", "t2v.store")),
    ("front ends", ("t2v", "t2v.library", "t2v.api", "t2v.ui", "t2v.cli", "t2v.desktop", "t2v.frontend", "t2v.client",
                    "t2v.train", "t2v.bench", "t2v.__main__")),
]


def layer_of(module: str) -> int:
    best, found = -1, None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, found = len(prefix), index
    if found is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in tests/test_architecture.py")
    return found


@functools.lru_cache(maxsize=None)
def _parsed(path: Path, mtime_ns: int) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def parse_file(path: Path) -> ast.Module:
    """``path`` parsed, once per version of the file: the graph tests walk the same 300 modules many times."""
    return _parsed(path, path.stat().st_mtime_ns)


def memo_by_modules(fn):
    """``fn(modules)`` computed once per set of modules and versions of their files (the result is not to be
    changed by its callers)."""
    cache: dict = {}

    @functools.wraps(fn)
    def inner(modules: dict[str, tuple[Path, bool]]):
        key = tuple((name, path, package, path.stat().st_mtime_ns) for name, (path, package) in sorted(modules.items()))
        if key not in cache:
            cache[key] = fn(modules)
        return cache[key]
    return inner


def source_modules() -> dict[str, tuple[Path, bool]]:
    """Every module under src/t2v: dotted name -> (file, is a package)."""
    out = {}
    for path in sorted((SRC / "t2v").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if package else parts)] = (path, package)
    return out


def type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skip


@memo_by_modules
def import_edges(modules: dict[str, tuple[Path, bool]]) -> dict[str, dict[str, list[tuple[int, bool]]]]:
    """module -> {imported t2v module: [(line, inside a function), ...]}, resolving relative imports and
    ``from package import submodule``."""

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[str, dict[str, list[tuple[int, bool]]]] = {}
    for name, (path, package) in modules.items():
        tree = parse_file(path)
        skip = type_checking_nodes(tree)
        inner = {id(n) for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
                 for n in ast.walk(fn)}
        out = edges.setdefault(name, {})
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = (name.split(".") if package else name.split(".")[:-1])
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for target in targets:
                if target.split(".")[0] != "t2v":
                    continue
                resolved = known(target)
                if resolved and resolved != name:
                    out.setdefault(resolved, []).append((node.lineno, id(node) in inner))
    return edges


def cycles(edges: dict[str, dict[str, list]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, {}):
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
                found.append(sorted(component))

    import sys

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10000))
    try:
        for v in sorted(edges):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return found


def test_the_graph_checker_finds_cycles_and_resolves_imports(tmp_path, monkeypatch):
    assert cycles({"a": {"b": []}, "b": {"c": []}, "c": {"a": []}, "d": {"a": []}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b": []}, "b": {}}) == []
    assert layer_of("t2v.requests.video") == 0 and layer_of("t2v.cli.app") == len(LAYERS) - 1
    assert layer_of("t2v.extend.plan") < layer_of("t2v.extend.run")


def test_no_import_cycles():
    """Counting imports inside functions: a function-level import defers a heavy optional dependency, it never
    hides a cycle (DESIGN.md)."""
    found = cycles(import_edges(source_modules()))
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_layers_only_point_down():
    modules = source_modules()
    bad = []
    for name, targets in import_edges(modules).items():
        for target, where in targets.items():
            if layer_of(target) > layer_of(name):
                lines = ", ".join(str(line) for line, _ in where)
                bad.append(f"{name} ({LAYERS[layer_of(name)][0]}) imports {target} ({LAYERS[layer_of(target)][0]}), "
                           f"line {lines}")
    assert not bad, "imports that point up a layer (DESIGN.md):\n" + "\n".join(sorted(bad))


def test_models_never_import_families_and_the_service_no_front_end():
    edges = import_edges(source_modules())
    bad = [f"{m} -> {t}" for m, targets in edges.items() for t in targets
           if (m.startswith(("t2v.models", "t2v.planner")) and t.startswith("t2v.families"))
           or (m.startswith(("t2v.service", "t2v.store")) and layer_of(t) == len(LAYERS) - 1)]
    assert not bad, "\n".join(sorted(bad))


def test_the_contract_depends_only_on_errors_and_pydantic():
    modules = source_modules()
    for name, (path, _) in modules.items():
        if not name.startswith("t2v.requests"):
            continue
        tree = parse_file(path)
        skip = type_checking_nodes(tree)
        nodes = [n for n in ast.walk(tree) if id(n) not in skip]
        roots = {a.name.split(".")[0] for n in nodes if isinstance(n, ast.Import) for a in n.names}
        roots |= {(n.module or "").split(".")[0] for n in nodes if isinstance(n, ast.ImportFrom) and not n.level}
        foreign = {r for r in roots if r not in ("t2v", "pydantic", "__future__") and r not in sys_stdlib()}
        assert not foreign, f"{name} imports {sorted(foreign)}"
        inside = {t for t in import_edges({name: modules[name], **{k: v for k, v in modules.items()
                                                                      if k.startswith(("t2v.requests", "t2v.errors"))}})
                  [name]}
        assert all(t.startswith(("t2v.requests", "t2v.errors")) for t in inside), (name, inside)


def sys_stdlib() -> frozenset[str]:
    import sys

    return frozenset(sys.stdlib_module_names)


# -- function-level imports: only to defer a heavy library, each saying which ----------------------------------

#: Libraries whose import costs a front end or a light command noticeable time (or that are optional extras),
#: and what importing each one imports with it (measured: ``import X`` then ``sys.modules``).
HEAVY = frozenset({"torch", "diffusers", "transformers", "accelerate", "peft", "av", "PIL", "numpy", "cv2", "gradio",
                   "fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "boto3", "botocore", "ray", "pymongo",
                   "bson", "httpx", "safetensors", "huggingface_hub", "matplotlib", "pandas", "scipy", "imageio",
                   "tkinter"})
IMPLIED = {"torch": {"numpy"}, "diffusers": {"PIL", "huggingface_hub", "numpy", "safetensors", "torch"},
           "transformers": {"PIL", "huggingface_hub", "numpy"},
           "gradio": {"PIL", "fastapi", "httpx", "huggingface_hub", "numpy", "pandas", "starlette"},
           "fastapi": {"starlette"}, "alembic": {"sqlalchemy"}, "cv2": {"numpy"}, "imageio": {"numpy"},
           "t2v_client": {"httpx"}}  # the t2v-client distribution (clients/python), under t2v.client and t2v.contract


@memo_by_modules
def top_level_imports(modules: dict[str, tuple[Path, bool]]) -> dict[str, tuple[set[str], set[str]]]:
    """module -> (t2v modules, heavy libraries) it imports outside functions (its packages' ``__init__`` too)."""
    edges = import_edges(modules)
    out: dict[str, tuple[set[str], set[str]]] = {}
    for name, (path, _) in modules.items():
        tree = parse_file(path)
        skip = type_checking_nodes(tree)
        inner = {id(n) for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
                 for n in ast.walk(fn)}
        roots: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skip or id(node) in inner:
                continue
            if isinstance(node, ast.Import):
                roots |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                roots.add(node.module.split(".")[0])
        heavy = roots & HEAVY
        for root in roots & set(IMPLIED):
            heavy |= IMPLIED[root]
        t2v = {t for t, where in edges.get(name, {}).items() if any(not inside for _, inside in where)}
        parts = name.split(".")
        t2v |= {".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) in modules}
        out[name] = (t2v, heavy)
    return out


def heavy_closure(name: str, top: dict[str, tuple[set[str], set[str]]]) -> set[str]:
    """The heavy libraries importing ``name`` imports, through its top-level imports."""
    seen, heavy, stack = set(), set(), [name]
    while stack:
        module = stack.pop()
        if module in seen:
            continue
        seen.add(module)
        t2v, libs = top.get(module, (set(), set()))
        heavy |= libs
        stack.extend(t2v)
    return heavy


def deferred_imports() -> list[tuple[str, int, list[str], str]]:
    """Each import of a t2v module inside a function: (module, line, targets, the line's text)."""
    modules = source_modules()
    found = []
    for name, targets in import_edges(modules).items():
        lines = modules[name][0].read_text(encoding="utf-8").splitlines()
        by_line: dict[int, list[str]] = {}
        for target, where in targets.items():
            for line, inside in where:
                if inside:
                    by_line.setdefault(line, []).append(target)
        found += [(name, line, sorted(ts), lines[line - 1]) for line, ts in sorted(by_line.items())]
    return found


def test_function_level_imports_only_defer_a_heavy_library_and_say_which():
    """A t2v import inside a function must defer a heavy library its module does not already import, and say
    which one in a ``# deferred: ...`` comment on its line or the line above; any other belongs at the top."""
    modules = source_modules()
    top = top_level_imports(modules)
    bad = []
    for name, line, targets, text in deferred_imports():
        mine = heavy_closure(name, top)
        gained = set().union(*(heavy_closure(t, top) for t in targets)) - mine
        above = modules[name][0].read_text(encoding="utf-8").splitlines()[line - 2] if line > 1 else ""
        said = "# deferred:" in text or above.strip().startswith("# deferred:")
        if not gained and name in ("t2v", "t2v.library") and all(layer_of(t) in (2, 3) for t in targets):
            gained = {"the runner or families"}  # `import t2v` imports neither (tests/test_library.py)
        if not gained:
            bad.append(f"{name}:{line} defers nothing heavy ({', '.join(targets)}): import it at the top")
        elif not said:
            bad.append(f"{name}:{line} defers {', '.join(sorted(gained))} without a '# deferred: ...' reason")
    assert not bad, "\n".join(bad)


def test_the_deferred_import_checker_tells_them_apart():
    modules = source_modules()
    top = top_level_imports(modules)
    assert "torch" not in heavy_closure("t2v.requests.video", top)  # the contract is light
    assert {"fastapi"} <= heavy_closure("t2v.api.app", top) | heavy_closure("t2v.api.routes.videos", top)
    found = deferred_imports()
    assert found and all(line > 0 for _, line, _, _ in found)


# -- calls go the way imports do: nothing below the families obtains a family to call -----------------------------

#: The calls that obtain a Family object (from the families' registry, or the catalogue asked for one to call).
FAMILY_LOOKUPS = frozenset({"family", "family_of_folder", "all_families", "get_family", "family_for_pipeline"})
FAMILIES_LAYER = next(i for i, (name, _) in enumerate(LAYERS) if name == "families")


def family_reach(source: str) -> list[str]:
    """Each place in ``source`` that obtains a family itself instead of being handed one, as ``line N: what``: a
    call of one of :data:`FAMILY_LOOKUPS` (a function or a method) and an import of ``t2v.families`` (inside a
    function too, or by name through importlib)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        where = f"line {getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
            if name in FAMILY_LOOKUPS:
                found.append(f"{where}: {ast.unparse(func)}()")
            elif (name in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant)
                  and str(node.args[0].value).startswith("t2v.families")):
                found.append(f"{where}: {name}({node.args[0].value!r})")
        elif isinstance(node, ast.Import):
            found += [f"{where}: import {a.name}" for a in node.names if a.name.startswith("t2v.families")]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            if any(n == "t2v.families" or n.startswith("t2v.families.") for n in names):
                found.append(f"{where}: from {node.module} import {', '.join(a.name for a in node.names)}")
    return found


@pytest.mark.parametrize("source", [
    "CATALOG.family(source.family).load(path)",
    "x = CATALOG.family_of_folder(path)",
    "family_of_folder(path).check_index(path, index)",
    "for f in all_families().values(): pass",
    "get_family('animatediff')",
    "registry.family_for_pipeline(cls)",
    "def f():\n    from t2v.families import get_family",
    "def f():\n    import t2v.families.wan",
    "from t2v import families",
    "importlib.import_module('t2v.families.wan')",
])
def test_the_family_reach_checker_catches(source):
    assert family_reach(source), source


@pytest.mark.parametrize("source", [
    "family.check_index(path, index)",  # a family handed down, called
    "CATALOG.card(name).defaults",  # the catalogue's data
    "CATALOG.card_of_folder(path).name",
    "source.family",  # a family's name
    "load_model(source, plan, family=family)",
    "from t2v.models.catalog import CATALOG",
    "'get_family(x) in a string'",
])
def test_the_family_reach_checker_passes(source):
    assert not family_reach(source), source


def test_below_the_families_nothing_looks_a_family_up():
    """The runner plans a run once (:func:`t2v.runner.plan.plan_run`) and hands the family down to loading, the
    planner and the loop; a module below the families that fetched one itself would climb back up at run time
    though its imports point down (DESIGN.md: calls go the way imports do)."""
    below = {name: path for name, (path, _) in source_modules().items() if layer_of(name) < FAMILIES_LAYER}
    assert "t2v.models.loader" in below and "t2v.planner.memory" in below and "t2v.requests" in below
    bad = [f"{path.relative_to(ROOT)} {v}" for name, path in sorted(below.items())
           for v in family_reach(path.read_text(encoding="utf-8"))]
    assert not bad, "take the family as an argument instead:\n" + "\n".join(bad)


def test_a_run_is_planned_in_one_place():
    """The device plan and the precision fitted to the model are made by :mod:`t2v.runner.plan` alone (its
    ``plan_model`` and ``plan_run``): the CLI's ``plan``, the runner, admission and warming a model all call it."""
    calls = {}
    for name, (path, _) in source_modules().items():
        if name.startswith("t2v.models."):
            continue  # where the device plan is defined
        tree = parse_file(path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in (
                    "plan_device", "fit_to_model"):
                calls.setdefault(name, []).append(node.lineno)
    assert set(calls) == {"t2v.runner.plan"}, f"plan through t2v.runner.plan.plan_model / plan_run: {calls}"
