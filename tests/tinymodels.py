"""Tiny models built once per test run and shared: by every test, and by both pytest-xdist workers.

``make_tiny_model`` and ``make_tiny`` take the arguments of ``t2v.families.make_tiny_model`` and
``t2v.models.tiny.make_tiny`` and put the same folder at ``out``: a copy of one build per (family, seed,
fp16 variant), kept in a folder every worker of the run sees and built under a file lock by whichever
worker asks first. A test still gets its own folder at the path it named, so it may change or damage it.
Tests of the builders themselves call t2v's functions directly.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from filelock import FileLock

_ROOT: list[Path] = []  # the run's shared folder, set by tests/conftest.py before any test


def use_root(root: Path) -> None:
    """Keep the builds under ``root`` (the run's temporary folder, shared by its workers)."""
    root.mkdir(parents=True, exist_ok=True)
    _ROOT[:] = [root]


def root() -> Path | None:
    """The run's shared folder (every worker sees it), or None before tests/conftest.py has set it."""
    return _ROOT[0] if _ROOT else None


def built(kind: str, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """The run's one build of ``kind`` (read-only): built now if no worker has built it yet."""
    from t2v.families import make_tiny_model as build

    if not _ROOT:
        raise RuntimeError("tests.tinymodels.use_root() was not called")
    folder = _ROOT[0] / f"{kind}-seed{seed}{'-fp16' if fp16_variant else ''}"
    with FileLock(str(folder) + ".lock"):
        if not folder.is_dir():
            staging = folder.with_name(folder.name + f".{os.getpid()}.partial")
            shutil.rmtree(staging, ignore_errors=True)
            build(kind, staging, seed=seed, fp16_variant=fp16_variant)
            staging.rename(folder)  # whole or absent: a worker that dies mid-build leaves no half folder
    return folder


def make_tiny_model(kind: str, out: str | Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    """A private copy of the run's build of ``kind`` at ``out`` (as ``t2v.families.make_tiny_model`` makes it)."""
    out = Path(out)
    shutil.copytree(built(kind, seed=seed, fp16_variant=fp16_variant), out, dirs_exist_ok=True)
    return out


def make_tiny(directory: str | Path, *, family: str = "modelscope", seed: int = 0, fp16_variant: bool = True) -> Path:
    """``t2v.models.tiny.make_tiny``'s arguments, the run's build (see :func:`make_tiny_model`)."""
    return make_tiny_model(family, directory, seed=seed, fp16_variant=fp16_variant)
