"""The artifact store: where a service keeps the files jobs make (videos, previews, posters, records,
checkpoints), behind one small interface with a local and an object-storage implementation.

Keys are relative, ``/``-separated names (``videos/<job id>/video.mp4``, ``checkpoints/<job id>.ckpt``);
:func:`check_key` refuses anything else (absolute names, ``..``, backslashes, NUL), so no key a request
could influence reaches outside the store.

- :class:`LocalArtifacts`: a folder (the default, ``$T2V_HOME``); writes are atomic (temporary name, then
  rename), and :meth:`LocalArtifacts.local_path` lets a server send a file without copying it.
- :class:`S3Artifacts`: a bucket and prefix on any S3-compatible service through boto3
  (``T2V_STORAGE_URL=s3://bucket/prefix``, ``T2V_S3_ENDPOINT_URL`` for MinIO and friends, path-style
  addressing, credentials from the standard AWS variables); downloads stream by byte range, and
  :meth:`S3Artifacts.presign` gives a time-limited URL.

:func:`open_artifacts` builds the one the settings name and checks it can be reached, with a clear error
when it cannot.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator, Protocol
from urllib.parse import urlparse

from t2v.errors import T2VError

logger = logging.getLogger(__name__)

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
        return sorted(str(p.relative_to(self.root)).replace(os.sep, "/") for p in base.rglob("*")
                      if p.is_file() and not p.name.startswith("."))

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> int:
        import shutil

        target = self.path(prefix.rstrip("/"))
        if target.is_dir():
            n = sum(1 for p in target.rglob("*") if p.is_file())
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


class S3Artifacts:
    """Artifacts as objects ``<prefix>/<key>`` in an S3 bucket (boto3; any S3-compatible endpoint)."""

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None, region: str | None = None,
                 client=None) -> None:
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.endpoint_url = endpoint_url
        if client is None:
            try:
                import boto3
                from botocore.config import Config
            except ImportError:
                raise StorageUnavailable("T2V_STORAGE_URL: s3:// storage needs boto3: pip install 't2v[s3]'") from None
            client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region or os.environ.get("AWS_REGION")
                                  or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
                                  config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3, "mode": "standard"},
                                                connect_timeout=5, read_timeout=60))
        self.client = client

    def __repr__(self) -> str:
        return f"S3Artifacts(s3://{self.bucket}/{self.prefix})"

    def name(self, key: str) -> str:
        key = check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def check(self) -> None:
        """Raise StorageUnavailable saying why when the bucket cannot be reached with these credentials."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as e:  # botocore's ClientError, EndpointConnectionError, NoCredentialsError, ...
            where = f" at {self.endpoint_url}" if self.endpoint_url else ""
            raise StorageUnavailable(f"T2V_STORAGE_URL: cannot reach bucket {self.bucket!r}{where}: "
                                     f"{_first_line(e)}") from None

    def put_file(self, key: str, path: Path) -> None:
        self.client.upload_file(str(path), self.bucket, self.name(key))

    def put_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.name(key), Body=data)

    def get_bytes(self, key: str) -> bytes | None:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.name(key))["Body"].read()
        except Exception as e:
            if _missing(e):
                return None
            raise

    def download(self, key: str, path: Path) -> bool:
        if self.size(key) is None:
            return False
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=Path(path).parent, prefix=f".{Path(path).name}.", suffix=".part")
        os.close(fd)
        try:
            self.client.download_file(self.bucket, self.name(key), tmp)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return True

    def size(self, key: str) -> int | None:
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=self.name(key))["ContentLength"])
        except Exception as e:
            if _missing(e):
                return None
            raise

    def iter_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        spec = f"bytes={start}-" + ("" if end is None else str(end))
        body = self.client.get_object(Bucket=self.bucket, Key=self.name(key), Range=spec)["Body"]
        try:
            yield from body.iter_chunks(CHUNK)
        finally:
            body.close()

    def keys(self, prefix: str) -> list[str]:
        base = self.name(prefix.rstrip("/")) if prefix.strip("/") else self.prefix
        strip = len(self.prefix) + 1 if self.prefix else 0
        out: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=base):
            for obj in page.get("Contents", []):
                name = obj["Key"][strip:]
                if name == prefix.rstrip("/") or name.startswith(prefix.rstrip("/") + "/") or not prefix.strip("/"):
                    out.append(name)
        return sorted(out)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.name(key))

    def delete_prefix(self, prefix: str) -> int:
        names = [self.name(k) for k in self.keys(prefix)]
        for i in range(0, len(names), 1000):
            batch = [{"Key": n} for n in names[i:i + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        return len(names)

    def presign(self, key: str, expires_s: int = 300) -> str | None:
        return self.client.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": self.name(key)},
                                                  ExpiresIn=int(expires_s))

    def local_path(self, key: str) -> Path | None:
        return None

    def local_dir(self, prefix: str) -> Path | None:
        return None


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:300]


def _missing(e: Exception) -> bool:
    response = getattr(e, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


def parse_storage_url(url: str) -> tuple[str, str]:
    """(bucket, prefix) of ``s3://bucket/prefix``; InvalidRequest naming the problem otherwise."""
    from t2v.errors import InvalidRequest

    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise InvalidRequest(f"T2V_STORAGE_URL must look like s3://bucket/prefix, got {url!r}", field="storage_url")
    return parsed.netloc, parsed.path.strip("/")


def open_artifacts(settings, *, check: bool = True) -> ArtifactStore:
    """The store the settings name: ``T2V_STORAGE_URL`` (s3://bucket/prefix) or, by default, ``$T2V_HOME``.
    With ``check``, an unreachable bucket raises StorageUnavailable at once (a server refuses to start)."""
    url = getattr(settings, "storage_url", None)
    if not url:
        return LocalArtifacts(settings.home)
    bucket, prefix = parse_storage_url(url)  # a malformed URL: InvalidRequest (exit 2), not an outage
    store = S3Artifacts(bucket, prefix, endpoint_url=getattr(settings, "s3_endpoint_url", None))
    if check:
        store.check()
    return store
