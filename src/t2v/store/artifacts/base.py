"""What an artifact store is: the interface the service needs, the check every key passes, and the error an
unreachable store raises."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator, Protocol

from t2v.errors import T2VError

CHUNK = 1 << 20  # bytes per streamed piece
_KEY = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


class StorageUnavailable(T2VError):
    """The artifact store named by the settings cannot be used (bucket missing, endpoint unreachable, no
    credentials, no boto3)."""


def check_key(key: str) -> str:
    """``key`` if it is a plain relative name, else ValueError: no absolute names, ``..``, empty parts,
    backslashes or characters outside ``A-Za-z0-9._-``."""
    if not isinstance(key, str) or not _KEY.match(key) or any(part in (".", "..") for part in key.split("/")):
        raise ValueError(f"not a valid artifact key: {key!r}")
    return key


class ArtifactStore(Protocol):
    """What the service needs from a file store."""

    def put_file(self, key: str, path: Path) -> None: ...
    def put_bytes(self, key: str, data: bytes) -> None: ...
    def get_bytes(self, key: str) -> bytes | None: ...
    def download(self, key: str, path: Path) -> bool: ...
    def size(self, key: str) -> int | None: ...
    def iter_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]: ...
    def keys(self, prefix: str) -> list[str]: ...
    def delete(self, key: str) -> None: ...
    def delete_prefix(self, prefix: str) -> int: ...
    def presign(self, key: str, expires_s: int = 300) -> str | None: ...
    def local_path(self, key: str) -> Path | None: ...
    def local_dir(self, prefix: str) -> Path | None: ...
