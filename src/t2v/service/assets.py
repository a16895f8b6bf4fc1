"""Uploaded assets, a part of :class:`~t2v.service.JobService` (its ``assets``): images a key stores for image-to-video, and videos
(mp4, webm, gif) for video-to-video (``video``) and post-processing jobs (``POST /v1/post`` with ``asset``).

An asset is a checked image or video file (:mod:`t2v.inputs`; a video is decoded in full at upload) stored in
the service's artifact store (:mod:`t2v.store.artifacts`) under the key ``assets/<id>.<ext>`` (with the local store, the default, the file
``$T2V_HOME/assets/<id>.<ext>``; with ``T2V_STORAGE_URL`` an object in the bucket, so a worker on another
machine reads it, through a copy cached under ``$T2V_HOME/cache/artifacts``) plus a row naming its owner
(``path``: the key). A key reads, uses and deletes only its own assets: another key's asset reads exactly as
a missing one (404), so ids cannot be probed. A video request names its first frame by asset id
(``image``); at submit the id must name an asset of the same key, and the worker resolves it to the file.
Deleting a job keeps its asset; ``delete_asset`` (``DELETE /v1/assets/{id}``) or ``purge_key_assets``
removes it.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from pathlib import Path
from typing import Any

from t2v.errors import InvalidRequest, JobNotFound, T2VError
from t2v.inputs import (VIDEO_TYPES, check_clip_shape, check_decode_fits, check_image_bytes, check_video_bytes, probe_video,
                        video_extension)
from t2v.planner.fit import memory_budget
from t2v.service.files import Download, JobFiles
from t2v.service.ports import AssetTable
from t2v.settings import Settings
from t2v.store.artifacts import StorageUnavailable, check_key  # StorageUnavailable: also for the front ends
from t2v.store.ids import new_id

logger = logging.getLogger(__name__)

#: Asset ids are the store's ids (t2v.store.ids): 26 Crockford base32 characters.
ASSET_ID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")
ASSETS_DIR = "assets"
MAX_FILENAME = 200
#: What a file's name may end in to be checked as a video when its first bytes name no container we know.
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".webm", ".mkv", ".gif", ".avi")


class AssetNotFound(JobNotFound):
    """No asset with that id for this key (the API answers 404, as for a missing job)."""


def owner_id(api_key) -> str | None:
    """The key id an asset must belong to: ``api_key`` is a key row, a key id, or None (no check)."""
    return api_key if isinstance(api_key, str) or api_key is None else api_key.id


def is_asset_id(value: str) -> bool:
    return ASSET_ID.fullmatch(value) is not None


def field_holding(request, ref: str) -> str | None:
    """The name of the field of ``request`` (a request model, or None) that names ``ref``, for messages."""
    for name, value in request if request is not None else ():
        if value == ref or (isinstance(value, tuple) and ref in value):
            return name
    return None


def clean_filename(name: str | None, extension: str, stem: str = "image") -> str:
    """The uploaded file's name as shown back to its owner: its last path part, printable, at most
    ``MAX_FILENAME`` characters; ``<stem>.<extension>`` when nothing is left."""
    name = unicodedata.normalize("NFC", name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable() and not unicodedata.category(ch).startswith("C"))
    name = name.strip().lstrip(".")[:MAX_FILENAME].strip()
    return name or f"{stem}.{extension}"


def asset_to_dict(row) -> dict[str, Any]:
    """The public JSON of an asset (its path on the server is not shown)."""
    return {"id": row.id, "sha256": row.sha256, "width": row.width, "height": row.height,
            "content_type": row.content_type, "size": row.size, "filename": row.filename,
            "kind": asset_kind(row), "created_at": row.created_at.isoformat()}


def asset_kind(row) -> str:
    """``video`` (mp4, webm, gif) or ``image``."""
    return "video" if row.content_type in VIDEO_TYPES.values() else "image"


def is_video_upload(data: bytes, filename: str | None) -> bool:
    """Whether an upload is checked as a video: its first bytes name a video container, or its name ends like
    one (so a damaged video is refused as a video)."""
    return video_extension(data) is not None or (filename or "").lower().endswith(VIDEO_SUFFIXES)


class AssetService:
    """Uploaded images and videos over the job store's asset rows and the service's
    :class:`~t2v.service.files.JobFiles` (its artifact store)."""

    def __init__(self, settings: Settings, rows: AssetTable, files: JobFiles) -> None:
        self.settings, self.rows, self.files = settings, rows, files

    @property
    def assets_dir(self) -> Path:
        """The assets' folder with the local store (where nothing is kept with object storage)."""
        return self.files.store.local_dir(ASSETS_DIR) or self.settings.home / ASSETS_DIR

    def add_asset(self, data: bytes, filename: str | None = None, api_key=None, *, reuse: bool = False,
                  field: str = "file") -> dict[str, Any]:
        """Check ``data`` as an image (``InvalidRequest`` naming ``field`` otherwise) and store it as an asset
        of ``api_key``. With ``reuse``, an asset of the same key with the same bytes is returned instead
        of a new copy (the web page sends the same picture with every Generate). A store that cannot take
        the file raises :class:`~t2v.store.artifacts.StorageUnavailable` (the API answers 503)."""
        shown = repr(clean_filename(filename, "png")) if filename else "the upload"
        stem = "video" if is_video_upload(data, filename) else "image"
        if stem == "video":
            info = check_video_bytes(data, name=shown, field=field, max_frames=self.settings.max_frames,
                                     max_side=self.settings.max_side, max_cpu_s=self.settings.upload_decode_s)
        else:
            info = check_image_bytes(data, name=shown, field=field)
        owner = owner_id(api_key)
        if reuse and (same := self.rows.find_asset(owner, info.sha256)) is not None and self._exists(same):
            return asset_to_dict(same)
        asset_id = new_id()
        key = f"{ASSETS_DIR}/{asset_id}.{info.extension}"
        self._storage(f"could not store the {stem}", lambda: self.files.store.put_bytes(key, data))
        try:
            row = self.rows.add_asset(asset_id=asset_id, api_key_id=owner, sha256=info.sha256,
                                      filename=clean_filename(filename, info.extension, stem),
                                      content_type=info.content_type, size=info.size, width=info.width,
                                      height=info.height, path=key)
        except BaseException:
            self._remove(key)
            raise
        return asset_to_dict(row)

    def get_asset(self, asset_id: str, api_key=None) -> dict[str, Any]:
        """An asset's metadata; :class:`AssetNotFound` when it is missing or another key's."""
        return asset_to_dict(self._row(asset_id, api_key))

    def asset_path(self, asset_id: str, api_key=None) -> Path:
        """The asset's file on this machine (the stored file, or with object storage a cached copy);
        :class:`AssetNotFound` when it is missing or another key's, StorageUnavailable when the store fails."""
        path = self._file(self._row(asset_id, api_key))
        if path is None:
            raise AssetNotFound(f"no asset with id {asset_id}")
        return path

    def asset_download(self, asset_id: str, api_key=None) -> tuple[Download, dict[str, Any]]:
        """How to send the asset's bytes as uploaded, and its metadata; :class:`AssetNotFound` when it is missing
        or another key's."""
        path = self.asset_path(asset_id, api_key)
        return Download(key=path.name, size=path.stat().st_size, path=path), self.get_asset(asset_id, api_key)

    def delete_asset(self, asset_id: str, api_key=None) -> None:
        """Remove an asset and its file (jobs that used it keep their records)."""
        self._row(asset_id, api_key)  # 404 wording for a malformed id too
        row = self.rows.delete_asset(asset_id, owner_id(api_key))
        if row is None:  # removed meanwhile
            raise AssetNotFound(f"no asset with id {asset_id}")
        self._unlink(row)

    def purge_key_assets(self, api_key) -> int:
        """Remove every asset of a key (rows and files), e.g. when the key is revoked; returns how many."""
        rows = self.rows.delete_key_assets(owner_id(api_key))
        for row in rows:
            self._unlink(row)
        return len(rows)

    def check_ref(self, ref: str, api_key=None, *, kind: str, field: str) -> None:
        """At submit: ``ref`` must name an uploaded asset of ``api_key`` of the ``kind`` of file its request field
        declares (``knob(file=...)``: ``"image"`` or ``"video"``); 422 naming ``field``."""
        checks = {"image": self.check_image_ref, "video": self.check_video_ref}
        checks[kind](ref, api_key, field=field)

    def check_image_ref(self, ref: str, api_key=None, field: str = "image") -> None:
        """At submit: ``ref`` (a request's ``image`` or ``last_image``) must name an image asset of ``api_key``;
        422 naming ``field``. (Its file must be in the store; it is not fetched here.)"""
        if not is_asset_id(ref):
            also = ", or send the file as `image` in a multipart POST /v1/videos" if field == "image" else ""
            raise InvalidRequest(f"{field}: give an uploaded image's asset id (POST /v1/assets with a PNG, JPEG or "
                                 f"WebP file{also}); file paths and URLs are not taken", field=field)
        try:
            row = self._row(ref, api_key)
            found = self._exists(row)
        except AssetNotFound:
            found = False
        if not found:
            raise InvalidRequest(f"{field}: no uploaded asset with id {ref} (upload the image with POST /v1/assets)",
                                 field=field)
        if asset_kind(row) != "image":
            instead = ", or the video as `video` (video-to-video)" if field == "image" else ""
            raise InvalidRequest(f"{field}: the asset {ref} is a video; give an image asset (PNG, JPEG or WebP) as "
                                 f"`{field}`{instead}", field=field)

    def video_asset(self, ref: str, api_key=None, *, field: str = "asset"):
        """At submit: the video asset ``ref`` of ``api_key`` (its row). :class:`AssetNotFound` (404) when it is
        missing or another key's; InvalidRequest naming ``field`` when it is an image or its file is gone."""
        row = self._row(ref, api_key)
        if asset_kind(row) != "video":
            raise InvalidRequest(f"{field}: the asset {ref} is an image ({row.content_type}); upload a video (mp4, "
                                 "webm or gif) with POST /v1/assets", field=field)
        if not self._exists(row):
            raise InvalidRequest(f"{field}: the uploaded video {ref} is no longer stored; upload it again",
                                 field=field)
        return row

    def video_shape(self, ref: str, api_key=None, *, field: str = "asset") -> tuple[int, int, int, float]:
        """(frames, width, height, fps) of the video asset ``ref``, read from its container without decoding
        a frame (:func:`t2v.inputs.probe_video`)."""
        return probe_video(self.asset_path(ref, api_key), field=field)

    def decode_budget(self) -> int:
        """Bytes of decoded frames a job may hold: the memory budget jobs run under (T2V_MEMORY_BUDGET_GB, else
        90% of the free memory)."""
        return memory_budget("cpu", self.settings.memory_budget_gb)

    def check_decode(self, ref: str, api_key=None, *, field: str = "video", frames: int | None = None) -> None:
        """At submit: refuse (422 naming ``field``) a job whose decoding of the video asset ``ref`` (its first
        ``frames`` frames, else all of them) would not fit in :meth:`decode_budget`; nothing is decoded here."""
        count, width, height, _ = self.video_shape(ref, api_key, field=field)
        check_decode_fits(field, min(count, frames) if frames else count, width, height, self.decode_budget())

    def check_clip_fits(self, ref: str, api_key=None, *, field: str, width: int, height: int, frames: int) -> None:
        """At submit: refuse (422 naming ``field``) a clip that is not ``frames`` frames of ``width`` x ``height``
        (a control input without fit), read from its container."""
        count, w, h, _ = self.video_shape(ref, api_key, field=field)
        check_clip_shape((count, h, w), self._row(ref, api_key).filename or ref, field, width=width, height=height,
                         num_frames=frames, counted=True)

    def check_video_ref(self, ref: str, api_key=None, field: str = "video") -> None:
        """At submit: ``ref`` (a video request's ``video``, or the clip it ``extend`` s) must name a video asset of
        ``api_key``: never a path or a URL (a server reads no file a caller names); 422 naming ``field``."""
        if not is_asset_id(ref):
            raise InvalidRequest(f"{field}: give an uploaded video's asset id (POST /v1/assets with an mp4, webm or "
                                 "gif file); file paths and URLs are not taken", field=field)
        try:
            self.video_asset(ref, api_key, field=field)
        except AssetNotFound:
            raise InvalidRequest(f"{field}: no uploaded asset with id {ref} (upload the video with POST /v1/assets)",
                                 field=field) from None

    def image_resolver(self, api_key_id: str | None, request=None):
        """For the worker: an image asset id of the job's key (``request.image``, ``last_image``, ...) -> its file
        on this machine. A store that fails raises OSError, so the job is tried again later (it is not the
        request's fault); a deleted asset is the request's, named by the field of ``request`` that holds it."""
        return self._resolver(api_key_id, request, "image", "asset")

    def video_resolver(self, api_key_id: str | None, request=None):
        """For the worker: a video asset id of the job's key (``request.video``, the clip it ``extend`` s, a post
        job's ``asset``, ...) -> its file on this machine; as :meth:`image_resolver` for failures."""
        return self._resolver(api_key_id, request, "video", "video")

    def _resolver(self, api_key_id: str | None, request, default: str, what: str):
        def resolve(ref: str) -> Path:
            field = field_holding(request, ref) or default
            try:
                return self.asset_path(ref, api_key_id)
            except AssetNotFound:
                raise InvalidRequest(f"{field}: the uploaded {what} {ref} was deleted before the job ran",
                                     field=field) from None
            except StorageUnavailable as e:
                raise OSError(f"{field}: could not read the uploaded {what} {ref}: {e}") from e
        return resolve

    # -- helpers ---------------------------------------------------------------------------------
    def _row(self, asset_id: str, api_key):
        row = self.rows.get_asset(asset_id, owner_id(api_key)) if is_asset_id(asset_id) else None
        if row is None:
            raise AssetNotFound(f"no asset with id {asset_id}")
        return row

    @staticmethod
    def _key(row) -> str | None:
        """The row's key in the artifact store, when it is a plain key right under ``assets/`` (a row naming
        anything else is never read nor removed)."""
        try:
            key = check_key(row.path)
        except ValueError:
            return None
        folder, _, name = key.partition("/")
        return key if folder == ASSETS_DIR and name and "/" not in name else None

    def _file(self, row) -> Path | None:
        """The row's file on this machine, if it is stored under ``assets/``: the local store's own file
        (which must resolve inside the assets folder), or a copy of the object cached from object storage."""
        key = self._key(row)
        if key is None:
            return None
        path = self._storage("could not read the image", lambda: self.files.local_file(key))
        if path is None or not self.files.in_place:
            return path
        root, path = self.assets_dir.resolve(), path.resolve()
        return path if root in path.parents and path.is_file() else None

    def _exists(self, row) -> bool:
        """Whether the row's file is stored (object storage is asked, nothing is downloaded)."""
        if self.files.in_place:
            return self._file(row) is not None
        key = self._key(row)
        return key is not None and self._storage("could not read the image",
                                                 lambda: self.files.store.size(key)) is not None

    def _storage(self, doing: str, call):
        """``call()``, a failure of the store raised as StorageUnavailable saying what could not be done where."""
        try:
            return call()
        except T2VError:
            raise
        except Exception as e:  # botocore's ClientError, EndpointConnectionError, ...; OSError of a local disk
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
            raise StorageUnavailable(f"{doing}: the artifact store {self.files.store} cannot be used now "
                                     f"({reason}); try again later") from e

    def _unlink(self, row) -> None:
        key = self._key(row)
        if key is not None:
            self._remove(key)

    def _remove(self, key: str) -> None:
        try:
            self.files.remove_object(key)
        except Exception:
            logger.warning("could not remove asset %s from %s", key, self.files.store, exc_info=True)
