"""The docs hooks (scripts/docs/) loaded as MkDocs loads them: each file as a module, its folder on sys.path."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HOOKS = ROOT / "scripts" / "docs"


def load_hook(name: str):
    sys.path.insert(0, str(HOOKS))
    try:
        spec = importlib.util.spec_from_file_location(f"t2v_docs_{name}", HOOKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(HOOKS))


@pytest.fixture(scope="session")
def hooks():
    return {name: load_hook(name) for name in ("site", "cli_reference", "rest_reference")}
