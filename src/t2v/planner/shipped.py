"""Dry runs that ship with t2v: the reference measurements of the models it ships (``shipped-dry-runs.json``).

The planner's estimates scale one dry run per model at a small reference shape (:mod:`t2v.planner.memory`). On a
fresh home that dry run costs seconds before the first run starts; for the shipped t2v-shapes model its numbers
are in the package, keyed like the on-disk cache (:mod:`t2v.planner.dryruns`) by the architecture's hash and the
shape, without the code versions: the shipped numbers are the ones this code measures (the tests compare them with a
fresh dry run, and ``scripts/ship_dry_runs.py`` writes them again after a change to a family's ``measure``).
Any folder with the same architecture (a copy of the shipped model) reads them too.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from t2v.planner.dryruns import architecture_hash

FILE = Path(__file__).with_name("shipped-dry-runs.json")
VERSION = 1
# The reference dry runs shipped per model: without and with classifier-free guidance (batch 1, 2), without and
# with forward chunking (the CPU's plans, a GPU's balanced and low), in fp32 and in bf16 (half precision).
VARIANTS = [(batch, chunking, half) for batch in (1, 2) for chunking in (False, True) for half in (False, True)]


def key(path: Path, frames: int, height: int, width: int, batch: int, chunking: bool, vae_chunk: int,
        half: bool, parts: tuple[str, ...] | None = None) -> str:
    only = [list(parts)] if parts is not None else []
    return json.dumps([architecture_hash(path), frames, height, width, batch, chunking, vae_chunk, half, *only])


@lru_cache(maxsize=1)
def _entries() -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    runs = data.get("runs") if isinstance(data, dict) and data.get("version") == VERSION else None
    return runs if isinstance(runs, dict) else {}


def get(cache_key: str) -> dict[str, Any] | None:
    """The shipped dry run under ``cache_key`` (:func:`key`; a fresh copy), or None."""
    found = _entries().get(cache_key)
    if not isinstance(found, dict):
        return None
    run = json.loads(json.dumps(found))
    run["shape"] = tuple(run["shape"])
    return run
