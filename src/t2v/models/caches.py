"""What t2v keeps under ``$T2V_HOME/cache``: each cache's size and age, and clearing them (``t2v cache list`` and
``t2v cache clear``).

Every one of them is a cache: deleting it costs time, never a result. Converted weights are converted again on
the next load, dry runs and step times measured again, model hashes read again, the server's copies of
stored files downloaded again. MagCache calibrations are the exception that costs a command: ``--cache
magcache`` then asks for ``t2v cache calibrate`` again, so they are cleared only when named.

Clearing is safe beside running processes on Linux: a process that has a converted-weights file mapped keeps
its mapping; a JSON cache is replaced atomically and rewritten by the next process that needs it. Temporary
files younger than :data:`TEMP_GRACE_S` belong to a write in progress and are left alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from t2v.errors import InvalidRequest

TEMP_GRACE_S = 3600.0


@dataclass(frozen=True)
class Cache:
    name: str
    relpath: str  # under $T2V_HOME/cache: a file or a folder
    what: str
    by_default: bool = True  # cleared by `t2v cache clear` without names


CACHES = (
    Cache("converted", "converted", "weights converted to bf16/fp16, mapped by later loads (T2V_CONVERTED_CACHE)"),
    Cache("hashes", "content-hashes.json", "SHA-256 of model files, for the records' model_hash"),
    Cache("dry-runs", "dry-runs.json", "the memory planner's dry runs per architecture and shape"),
    Cache("step-times", "step-times.json", "step and decode times measured by earlier runs (t2v plan)"),
    Cache("prompts", "prompts", "prompt embeddings by model and prompt, so a repeated prompt loads no text encoder "
          "(T2V_PROMPT_CACHE_MB)"),
    Cache("artifacts", "artifacts", "a server's local copies of files in its object store"),
    Cache("magcache", "magcache", "MagCache calibrations (t2v cache calibrate); cleared only when named",
          by_default=False),
)
NAMES = tuple(c.name for c in CACHES)


@dataclass(frozen=True)
class Usage:
    cache: Cache
    path: Path
    files: int
    bytes: int
    last_used: float | None  # newest mtime (converted entries are touched on every load)


def root(home: Path) -> Path:
    return Path(home) / "cache"


def pick(names: list[str] | tuple[str, ...] | None) -> list[Cache]:
    """The caches ``names`` name (every default one when none); InvalidRequest naming the valid names."""
    if not names:
        return [c for c in CACHES if c.by_default]
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise InvalidRequest(f"unknown cache {unknown[0]!r}; choose from: {', '.join(NAMES)}", field="cache")
    return [c for c in CACHES if c.name in names]


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else []


def usage(home: Path, cache: Cache) -> Usage:
    path = root(home) / cache.relpath
    total, newest, count = 0, None, 0
    for f in _files(path):
        try:
            st = f.stat()
        except OSError:  # deleted meanwhile
            continue
        count, total = count + 1, total + st.st_size
        newest = st.st_mtime if newest is None else max(newest, st.st_mtime)
    return Usage(cache, path, count, total, newest)


def clear(home: Path, cache: Cache, *, older_than_s: float | None = None, now: float | None = None) -> tuple[int, int]:
    """Delete the cache's files (those unused for ``older_than_s``, when given); (files deleted, bytes freed)."""
    now = time.time() if now is None else now
    path = root(home) / cache.relpath
    gone = freed = 0
    for f in _files(path):
        try:
            st = f.stat()
            age = now - st.st_mtime
            if f.name.startswith(".") and age < TEMP_GRACE_S:  # another process's write in progress
                continue
            if older_than_s is not None and age < older_than_s:
                continue
            f.unlink()
        except OSError:
            continue
        gone, freed = gone + 1, freed + st.st_size
    if path.is_dir():
        for d in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            try:
                d.rmdir()  # only empty ones
            except OSError:
                pass
    return gone, freed
