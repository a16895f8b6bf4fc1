"""The artifact store: where a service keeps the files jobs make (videos, previews, posters, records,
checkpoints), behind one small interface (:mod:`.base`) with a local (:mod:`.local`) and an object-storage (:mod:`.s3`)
implementation, registered by URL scheme in :data:`STORES`.

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

from typing import Callable

from t2v.errors import InvalidRequest
from t2v.store.artifacts.base import CHUNK, ArtifactStore, StorageUnavailable, check_key
from t2v.store.artifacts.local import LocalArtifacts
from t2v.store.artifacts.s3 import S3Artifacts, open_s3, parse_storage_url

__all__ = ["CHUNK", "STORES", "ArtifactStore", "LocalArtifacts", "S3Artifacts", "StorageUnavailable", "check_key",
           "open_artifacts", "parse_storage_url"]

# T2V_STORAGE_URL's scheme -> the store it opens (settings, url). No URL: the folders under $T2V_HOME.
STORES: dict[str, Callable[..., ArtifactStore]] = {"s3": open_s3}


def open_artifacts(settings, *, check: bool = True) -> ArtifactStore:
    """The store the settings name: ``T2V_STORAGE_URL`` (s3://bucket/prefix) or, by default, ``$T2V_HOME``.
    With ``check``, an unreachable store raises StorageUnavailable at once (a server refuses to start)."""
    url = getattr(settings, "storage_url", None)
    if not url:
        return LocalArtifacts(settings.home)
    scheme = url.partition("://")[0] if "://" in url else ""
    opener = STORES.get(scheme)
    if opener is None:
        raise InvalidRequest(f"T2V_STORAGE_URL must look like s3://bucket/prefix, got {url!r}", field="storage_url")
    store = opener(settings, url)
    if check:
        store.check()
    return store
