"""Arrows point down: front ends call the service (JobService) and never reach past it to the store.

The API, web UI, CLI, desktop app, shared front-end logic, client and the Space's app may not read
``<anything>.repo`` (the service's repository) nor import ``t2v.store``; what they need from the store is a
:class:`~t2v.service.JobService` method (:mod:`t2v.service.access` holds the keys, rate, stream and count ones).
"""

from __future__ import annotations

import ast
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
