"""Small JSON caches under ``$T2V_HOME/cache`` shared by processes: read whole, merged and replaced atomically
(temp file + rename; processes that write at once merge what they read, the last writer wins). A missing,
unreadable or corrupt file reads as empty; one that cannot be written is only logged: a cache is never needed."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

from t2v.runtime import current

logger = logging.getLogger(__name__)

_LOCK = threading.Lock()


def cache_path(name: str) -> Path | None:
    """``$T2V_HOME/cache/NAME``; None when the settings cannot be read (nothing is persisted)."""
    try:
        return current().settings.home / "cache" / name
    except Exception as e:  # invalid T2V_* values: the work is done again, only uncached
        logger.debug("no persistent cache %s: %s", name, e)
        return None


def read_entries(path: Path, version: int, section: str) -> dict[str, dict[str, Any]]:
    """The file's ``section`` entries (each a dict); {} when it is missing, unreadable or another version."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:  # ValueError: bad JSON or bad UTF-8
        logger.debug("ignoring the cache %s: %s", path, e)
        return {}
    entries = data.get(section) if isinstance(data, dict) and data.get("version") == version else None
    if not isinstance(entries, dict):
        logger.debug("ignoring the cache %s: unexpected content", path)
        return {}
    return {k: v for k, v in entries.items() if isinstance(v, dict)}


def merge_entries(path: Path, version: int, section: str, new: dict[str, dict[str, Any]], *,
                  keep: Callable[[str], bool] = lambda key: True, limit: int | None = None) -> None:
    """Merge ``new`` into the file atomically, dropping entries ``keep`` refuses (and the oldest beyond ``limit``)."""
    with _LOCK:
        tmp = None
        try:
            entries = {k: v for k, v in read_entries(path, version, section).items() if keep(k) and k not in new}
            entries.update(new)
            if limit is not None and len(entries) > limit:
                entries = dict(list(entries.items())[-limit:])
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"version": version, section: entries}, f, separators=(",", ":"))
            os.replace(tmp, path)
            tmp = None
        except OSError as e:
            logger.debug("could not write the cache %s: %s", path, e)
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
