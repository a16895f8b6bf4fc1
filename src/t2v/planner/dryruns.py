"""The planner's dry runs, cached on disk (``$T2V_HOME/cache/dry-runs.json``) per architecture and shape.

A dry run (:mod:`t2v.planner.memory`) runs the model on PyTorch's meta device to count parameters, peak
activations and FLOPs: a second or more per shape, paid by every fresh process before its first job. What it
measures depends only on the architecture (every ``config.json`` of the folder and its ``model_index.json``,
not the weights), the shape, and the code that runs it (torch and diffusers versions, and t2v's own: its version
and a hash of the planner's and the families' source, so a changed ``measure`` is measured again), so those make
the key, and a later process with the same key reads the numbers instead of measuring again."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from t2v.models.diskcache import cache_path, merge_entries, read_entries
from t2v.runtime import current
from t2v.version import __version__

logger = logging.getLogger(__name__)

CACHE_NAME = "dry-runs.json"
_VERSION = 5  # 2: operator counts (step_ops, decode_ops); 3: bf16 dry runs for half precision, DF block masks;
# 4: the parameters in repeated blocks (streamed offload); 5: a text encoder's blocks too
LIMIT = 500  # entries kept (the newest)
_LOCK = threading.Lock()


MEMO = "dry-runs"  # the runtime's cache of the runs read or made by this process


def _memo() -> dict[str, dict[str, Any]]:
    return current().cache(MEMO, lambda runtime: {})


def architecture_hash(path: Path) -> str:
    """sha256 over the folder's ``model_index.json`` and its components' ``config.json`` files (and the
    folder's ``t2v.json``), which fix the architecture the dry run measures."""
    h = hashlib.sha256()
    files = [path / "model_index.json", path / "t2v.json", *sorted(path.glob("*/config.json")),
             *sorted(path.glob("*/scheduler_config.json"))]
    for f in files:
        if f.is_file():
            h.update(f.relative_to(path).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


@lru_cache(maxsize=1)
def source_hash() -> str:
    """sha256 (16 hex digits) over the source of the code a dry run runs: the planner's and the families'."""
    root = Path(__file__).resolve().parent.parent  # the t2v package
    h = hashlib.sha256()
    for folder in ("planner", "families"):
        for f in sorted((root / folder).glob("*.py")):
            h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _code_versions() -> str:
    import diffusers
    import torch

    return f"t2v {__version__} ({source_hash()}), torch {torch.__version__}, diffusers {diffusers.__version__}"


def key(path: Path, frames: int, height: int, width: int, batch: int, chunking: bool, vae_chunk: int, half: bool,
        parts: tuple[str, ...] | None = None) -> str:
    """The cache key of a dry run (``parts``: of those parts of the model alone, a key of its own)."""
    only = [list(parts)] if parts is not None else []
    return json.dumps([architecture_hash(path), frames, height, width, batch, chunking, vae_chunk, half, *only,
                       _code_versions()])


def get(cache_key: str) -> dict[str, Any] | None:
    """The cached dry run (a fresh copy), or None."""
    with _LOCK:
        found = _memo().get(cache_key)
    if found is None:
        file = cache_path(CACHE_NAME)
        entry = read_entries(file, _VERSION, "runs").get(cache_key) if file is not None else None
        if entry is None or not isinstance(entry.get("run"), dict):
            return None
        found = entry["run"]
        with _LOCK:
            _memo()[cache_key] = found
    run = json.loads(json.dumps(found))
    run["shape"] = tuple(run["shape"])
    return run


def put(cache_key: str, run: dict[str, Any]) -> None:
    stored = json.loads(json.dumps(run))  # tuples become lists; the numbers are plain ints and strings
    with _LOCK:
        _memo()[cache_key] = stored
    file = cache_path(CACHE_NAME)
    if file is not None:
        merge_entries(file, _VERSION, "runs", {cache_key: {"run": stored}}, limit=LIMIT)


def forget_memo() -> None:
    """Drop this process's copies (the file stays): what a fresh process would see."""
    current().clear(MEMO)
