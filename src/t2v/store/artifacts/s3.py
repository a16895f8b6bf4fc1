"""The object-storage artifact store: a bucket and prefix on any S3-compatible service through boto3
(``T2V_STORAGE_URL=s3://bucket/prefix``, ``T2V_S3_ENDPOINT_URL`` for MinIO and friends, path-style addressing,
credentials from the standard AWS variables); downloads stream by byte range, and :meth:`S3Artifacts.presign`
gives a time-limited URL."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

from t2v.errors import InvalidRequest
from t2v.extras import install_hint
from t2v.store.artifacts.base import CHUNK, StorageUnavailable, check_key

logger = logging.getLogger(__name__)


class S3Artifacts:
    """Artifacts as objects ``<prefix>/<key>`` in an S3 bucket (boto3; any S3-compatible endpoint)."""

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None, region: str | None = None,
                 client=None) -> None:
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.endpoint_url = endpoint_url
        if client is None:
            try:  # boto3 is optional (t2v[s3]) and slow to import: only for s3:// storage
                import boto3
                from botocore.config import Config
            except ImportError:
                raise StorageUnavailable(f"T2V_STORAGE_URL: s3:// storage needs boto3: {install_hint('s3')}") from None
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
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise InvalidRequest(f"T2V_STORAGE_URL must look like s3://bucket/prefix, got {url!r}", field="storage_url")
    return parsed.netloc, parsed.path.strip("/")


def open_s3(settings, url: str) -> S3Artifacts:
    """The bucket ``url`` names (a malformed URL: InvalidRequest, exit 2, not an outage)."""
    bucket, prefix = parse_storage_url(url)
    return S3Artifacts(bucket, prefix, endpoint_url=getattr(settings, "s3_endpoint_url", None))
