"""The local artifact store: a folder (the default, ``$T2V_HOME``); writes are atomic (a temporary name, then a
rename), and :meth:`LocalArtifacts.local_path` lets a server send a file without copying it."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from t2v.store.artifacts.base import CHUNK, check_key

logger = logging.getLogger(__name__)


class LocalArtifacts:
    """Artifacts as files under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser()
        self.root.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalArtifacts({str(self.root)!r})"

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _write(self, key: str, write) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put_file(self, key: str, path: Path) -> None:
        if Path(path).resolve() == self.path(key).resolve():
            return  # already in place (a worker that wrote straight into the store's folder)

        def copy(f) -> None:
            with open(path, "rb") as src:
                while chunk := src.read(CHUNK):
                    f.write(chunk)

        self._write(key, copy)

    def put_bytes(self, key: str, data: bytes) -> None:
        self._write(key, lambda f: f.write(data))

    def get_bytes(self, key: str) -> bytes | None:
        p = self.path(key)
        return p.read_bytes() if p.is_file() else None

    def download(self, key: str, path: Path) -> bool:
        src = self.path(key)
        if not src.is_file():
            return False
        if src.resolve() != Path(path).resolve():
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_bytes(src.read_bytes())
        return True

    def size(self, key: str) -> int | None:
        p = self.path(key)
        return p.stat().st_size if p.is_file() else None

    def iter_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes ``start`` .. ``end`` (inclusive; None: to the end)."""
        with open(self.path(key), "rb") as f:
            f.seek(start)
            left = None if end is None else end - start + 1
            while left is None or left > 0:
                chunk = f.read(CHUNK if left is None else min(CHUNK, left))
                if not chunk:
                    return
                if left is not None:
                    left -= len(chunk)
                yield chunk

    def keys(self, prefix: str) -> list[str]:
        base = self.root / check_key(prefix.rstrip("/")) if prefix.strip("/") else self.root
        if base.is_file():
            return [prefix.rstrip("/")]
        if not base.is_dir():
            return []
        return sorted(str(p.relative_to(self.root)).replace(os.sep, "/") for p in _files(base)
                      if not p.name.startswith("."))

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> int:
        target = self.path(prefix.rstrip("/"))
        if target.is_dir():
            n = sum(1 for _ in _files(target))
            shutil.rmtree(target, ignore_errors=True)
            return n
        if target.is_file():
            target.unlink(missing_ok=True)
            return 1
        return 0

    def presign(self, key: str, expires_s: int = 300) -> str | None:
        return None  # files are served by the API itself

    def local_path(self, key: str) -> Path | None:
        p = self.path(key)
        return p if p.is_file() else None

    def local_dir(self, prefix: str) -> Path | None:
        """The folder that holds ``prefix``'s files: a writer may make them there, in place."""
        return self.path(prefix)


def _files(base: Path) -> Iterator[Path]:
    """The files under ``base``, read while another thread or process may remove parts of it (a cancel's purge
    beside the janitor's pass over pending purges): a folder gone between listing and reading is skipped, where
    ``Path.rglob`` would raise."""
    for folder, _dirs, names in os.walk(base):
        for name in names:
            yield Path(folder, name)
