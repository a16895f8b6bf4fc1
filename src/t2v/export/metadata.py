"""Embedded and sidecar run records, and content hashes."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from t2v.errors import ExportError
from t2v.export.files import atomic_path

logger = logging.getLogger(__name__)

EMBED_TAG = "comment"
PNG_KEY = "t2v"

_CHUNK = 1 << 20


def sha256_files(paths: Iterable[Path]) -> tuple[str, int]:
    """Hex sha256 over several files' bytes in order, and their total size."""
    digest = hashlib.sha256()
    total = 0
    for path in paths:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(_CHUNK), b""):
                digest.update(chunk)
                total += len(chunk)
    return digest.hexdigest(), total


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    return sha256_files([path])[0]


def frames_sha256(frames: np.ndarray) -> str:
    """Hex sha256 over a uint8 frame array's shape and contiguous bytes."""
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8:
        raise ExportError("frames_sha256 needs a uint8 numpy array")
    digest = hashlib.sha256()
    digest.update(repr(tuple(int(d) for d in frames.shape)).encode("ascii"))
    digest.update(np.ascontiguousarray(frames).data)
    return digest.hexdigest()


def _parse(raw: str | bytes | None, path: Path) -> dict[str, Any]:
    if raw is None:
        raise ExportError(f"{path} has no embedded t2v record")
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    try:
        record = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ExportError(f"{path} has an embedded comment that is not a t2v record: {e}") from e
    if not isinstance(record, dict):
        raise ExportError(f"{path} has an embedded comment that is not a t2v record")
    return record


def _read_png(path: Path) -> str | bytes | None:
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        text = getattr(im, "text", None) or {}
        return text.get(PNG_KEY, im.info.get(PNG_KEY))


def _read_gif(path: Path) -> str | bytes | None:
    from PIL import Image

    with Image.open(path) as im:
        return im.info.get("comment")


def _read_av(path: Path) -> str | None:
    import av

    with av.open(str(path)) as container:
        tags = dict(container.metadata)
        for stream in container.streams:
            for k, v in stream.metadata.items():
                tags.setdefault(k, v)
    for key, value in tags.items():
        if key.lower() == EMBED_TAG:
            return value
    return None


def read_embedded(path: Path) -> dict[str, Any]:
    """Read the t2v JSON record embedded in an mp4/webm/gif/png or png frames directory."""
    path = Path(path)
    if not path.exists():
        raise ExportError(f"cannot read record from {path}: no such file or directory")
    try:
        if path.is_dir():
            frames = sorted(path.glob("frame_*.png")) or sorted(path.glob("*.png"))
            if not frames:
                raise ExportError(f"{path} holds no PNG frames")
            raw = _read_png(frames[0])
        elif path.suffix.lower() == ".png":
            raw = _read_png(path)
        elif path.suffix.lower() == ".gif":
            raw = _read_gif(path)
        else:
            raw = _read_av(path)
    except ExportError:
        raise
    except Exception as e:
        raise ExportError(f"cannot open {path}: {e}") from e
    return _parse(raw, path)


def write_sidecar(record: dict, path: Path) -> Path:
    """Write ``record`` as pretty UTF-8 JSON to ``path`` atomically; return the path."""
    path = Path(path)
    text = json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    try:
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    except OSError as e:
        raise ExportError(f"writing {path.name} failed: {e}") from e
    logger.debug("wrote sidecar %s", path)
    return path
