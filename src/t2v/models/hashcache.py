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
import json
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterable

logger = logging.getLogger(__name__)

CACHE_NAME = "content-hashes.json"
_VERSION = 1
# This process: (absolute path, size, mtime_ns) -> hex digest.
_MEMO: dict[tuple[str, int, int], str] = {}
_LOCK = threading.Lock()


def default_cache_file() -> Path | None:
    """``$T2V_HOME/cache/content-hashes.json``; None when the settings cannot be read (nothing is persisted)."""
    from t2v.settings import get_settings

    try:
        return get_settings().home / "cache" / CACHE_NAME
    except Exception as e:  # invalid T2V_* values: hashing still works, only uncached
        logger.debug("no persistent hash cache: %s", e)
        return None


def file_digests(files: Iterable[Path], cache_file: Path | None = None) -> list[str]:
    """The sha256 hex digest of each file, in order, read from the caches where the file is unchanged."""
    if cache_file is None:
        cache_file = default_cache_file()
    on_disk: dict[str, dict[str, Any]] | None = None
    new: dict[str, dict[str, Any]] = {}
    digests = []
    for p in files:
        st = p.stat()  # follows symlinks, as resolve() does: hub snapshots link to their blobs
        key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
        digest = _MEMO.get(key)
        if digest is None and cache_file is not None:
            if on_disk is None:
                on_disk = read_cache(cache_file)
            entry = on_disk.get(key[0], {})
            if (entry.get("size"), entry.get("mtime_ns")) == key[1:] and _is_digest(entry.get("sha256")):
                digest = entry["sha256"]
        if digest is None:
            digest = _file_sha256(p)
            new[key[0]] = {"size": key[1], "mtime_ns": key[2], "sha256": digest}
        _MEMO[key] = digest
        digests.append(digest)
    if new and cache_file is not None:
        _write_cache(cache_file, new)
    return digests


def forget_memo() -> None:
    """Drop this process's digests (the on-disk cache stays): what a fresh process would see."""
    _MEMO.clear()


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
    try:
        data = json.loads(cache_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:  # ValueError: bad JSON or bad UTF-8
        logger.debug("ignoring the hash cache %s: %s", cache_file, e)
        return {}
    files = data.get("files") if isinstance(data, dict) and data.get("version") == _VERSION else None
    if not isinstance(files, dict):
        logger.debug("ignoring the hash cache %s: unexpected content", cache_file)
        return {}
    return {k: v for k, v in files.items() if isinstance(v, dict)}


def _write_cache(cache_file: Path, new: dict[str, dict[str, Any]]) -> None:
    """Merge ``new`` into the cache file atomically; entries of files that no longer exist are dropped.

    A cache that cannot be written (read-only home, full disk) is only logged.
    """
    with _LOCK:
        tmp = None
        try:
            files = {k: v for k, v in read_cache(cache_file).items() if os.path.exists(k)}
            files.update(new)
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=cache_file.parent, prefix=f".{cache_file.name}.", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"version": _VERSION, "files": files}, f, separators=(",", ":"))
            os.replace(tmp, cache_file)
            tmp = None
        except OSError as e:
            logger.debug("could not write the hash cache %s: %s", cache_file, e)
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
