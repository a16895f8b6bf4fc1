"""SHA-256 digests of model files, cached by (absolute path, size, mtime_ns) in this process and on disk.

Naming a model by its content (``model_hash`` in every record) means reading all of its weights: about
7 GB for the full-size ModelScope model. The digests are therefore kept in a small JSON file,
``$T2V_HOME/cache/content-hashes.json`` by default, so only the first process to see a file pays for it.
A file whose size or mtime changed is hashed again. The cache file is written atomically (temp file +
rename); processes that write it at the same time merge what they read, and the last writer wins.
A missing, unreadable or corrupt cache file only means hashing again.

It is not inside the hub cache (``Settings.cache_dir``): a stray file there is reported as a corrupted
repo by ``hf cache scan``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any, Iterable

from t2v.models.diskcache import cache_path, merge_entries, read_entries
from t2v.runtime import current

logger = logging.getLogger(__name__)

CACHE_NAME = "content-hashes.json"
_VERSION = 1
MEMO = "content-hashes"  # the runtime's cache: (absolute path, size, mtime_ns) -> hex digest


def _memo() -> dict[tuple[str, int, int], str]:
    return current().cache(MEMO, lambda runtime: {})


def default_cache_file() -> Path | None:
    """``$T2V_HOME/cache/content-hashes.json``; None when the settings cannot be read (nothing is persisted)."""
    return cache_path(CACHE_NAME)


def file_digests(files: Iterable[Path], cache_file: Path | None = None) -> list[str]:
    """The sha256 hex digest of each file, in order, read from the caches where the file is unchanged."""
    if cache_file is None:
        cache_file = default_cache_file()
    on_disk: dict[str, dict[str, Any]] | None = None
    new: dict[str, dict[str, Any]] = {}
    memo = _memo()
    digests = []
    for p in files:
        st = p.stat()  # follows symlinks, as resolve() does: hub snapshots link to their blobs
        key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
        digest = memo.get(key)
        if digest is None and cache_file is not None:
            if on_disk is None:
                on_disk = read_cache(cache_file)
            entry = on_disk.get(key[0], {})
            if (entry.get("size"), entry.get("mtime_ns")) == key[1:] and _is_digest(entry.get("sha256")):
                digest = entry["sha256"]
        if digest is None:
            digest = _file_sha256(p)
            new[key[0]] = {"size": key[1], "mtime_ns": key[2], "sha256": digest}
        memo[key] = digest
        digests.append(digest)
    if new and cache_file is not None:
        _write_cache(cache_file, new)
    return digests


def forget_memo() -> None:
    """Drop this process's digests (the on-disk cache stays): what a fresh process would see."""
    current().clear(MEMO)


def _is_digest(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _file_sha256(p: Path) -> str:
    h = hashlib.sha256()
    with p.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_cache(cache_file: Path) -> dict[str, dict[str, Any]]:
    """The cache's entries by absolute path; {} when it is missing, unreadable or not what t2v writes."""
    return read_entries(cache_file, _VERSION, "files")


def _write_cache(cache_file: Path, new: dict[str, dict[str, Any]]) -> None:
    """Merge ``new`` into the cache file atomically; entries of files that no longer exist are dropped."""
    merge_entries(cache_file, _VERSION, "files", new, keep=os.path.exists)
