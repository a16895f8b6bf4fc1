"""Uploaded assets of :class:`~t2v.service.JobService`: images a key stores for image-to-video.

An asset is a checked image file (:mod:`t2v.inputs`) under ``$T2V_HOME/assets/<id>.<ext>`` plus a row
naming its owner. A key reads, uses and deletes only its own assets: another key's asset reads exactly as
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

from t2v.errors import InvalidRequest, JobNotFound

logger = logging.getLogger(__name__)

#: Asset ids are the store's ids (t2v.store.ids): 26 Crockford base32 characters.
ASSET_ID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")
ASSETS_DIR = "assets"
MAX_FILENAME = 200


class AssetNotFound(JobNotFound):
    """No asset with that id for this key (the API answers 404, as for a missing job)."""


def owner_id(api_key) -> str | None:
    """The key id an asset must belong to: ``api_key`` is a key row, a key id, or None (no check)."""
    return api_key if isinstance(api_key, str) or api_key is None else api_key.id


def is_asset_id(value: str) -> bool:
    return ASSET_ID.fullmatch(value) is not None


def clean_filename(name: str | None, extension: str) -> str:
    """The uploaded file's name as shown back to its owner: its last path part, printable, at most
    ``MAX_FILENAME`` characters; ``image.<extension>`` when nothing is left."""
    name = unicodedata.normalize("NFC", name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable() and not unicodedata.category(ch).startswith("C"))
    name = name.strip().lstrip(".")[:MAX_FILENAME].strip()
    return name or f"image.{extension}"


def asset_to_dict(row) -> dict[str, Any]:
    """The public JSON of an asset (its path on the server is not shown)."""
    return {"id": row.id, "sha256": row.sha256, "width": row.width, "height": row.height,
            "content_type": row.content_type, "size": row.size, "filename": row.filename,
            "created_at": row.created_at.isoformat()}


class AssetService:
    """Mixin of :class:`~t2v.service.JobService` (which provides ``settings`` and ``repo``)."""

    @property
    def assets_dir(self) -> Path:
        return self.settings.home / ASSETS_DIR

    def add_asset(self, data: bytes, filename: str | None = None, api_key=None, *, reuse: bool = False,
                  field: str = "file") -> dict[str, Any]:
        """Check ``data`` as an image (``InvalidRequest`` naming ``field`` otherwise) and store it as an asset
        of ``api_key``. With ``reuse``, an asset of the same key with the same bytes is returned instead
        of a new copy (the web page sends the same picture with every Generate)."""
        from t2v.export import atomic_path
        from t2v.inputs import check_image_bytes
        from t2v.store.ids import new_id

        shown = repr(clean_filename(filename, "png")) if filename else "the upload"
        info = check_image_bytes(data, name=shown, field=field)
        owner = owner_id(api_key)
        if reuse and (same := self.repo.find_asset(owner, info.sha256)) is not None and self._file(same) is not None:
            return asset_to_dict(same)
        asset_id = new_id()
        relative = f"{ASSETS_DIR}/{asset_id}.{info.extension}"
        path = self.settings.home / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
        try:
            row = self.repo.add_asset(asset_id=asset_id, api_key_id=owner, sha256=info.sha256,
                                      filename=clean_filename(filename, info.extension),
                                      content_type=info.content_type, size=info.size, width=info.width,
                                      height=info.height, path=relative)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return asset_to_dict(row)

    def get_asset(self, asset_id: str, api_key=None) -> dict[str, Any]:
        """An asset's metadata; :class:`AssetNotFound` when it is missing or another key's."""
        return asset_to_dict(self._row(asset_id, api_key))

    def asset_path(self, asset_id: str, api_key=None) -> Path:
        """The asset's file on this server; :class:`AssetNotFound` when it is missing or another key's."""
        path = self._file(self._row(asset_id, api_key))
        if path is None:
            raise AssetNotFound(f"no asset with id {asset_id}")
        return path

    def delete_asset(self, asset_id: str, api_key=None) -> None:
        """Remove an asset and its file (jobs that used it keep their records)."""
        self._row(asset_id, api_key)  # 404 wording for a malformed id too
        row = self.repo.delete_asset(asset_id, owner_id(api_key))
        if row is None:  # removed meanwhile
            raise AssetNotFound(f"no asset with id {asset_id}")
        self._unlink(row)

    def purge_key_assets(self, api_key) -> int:
        """Remove every asset of a key (rows and files), e.g. when the key is revoked; returns how many."""
        rows = self.repo.delete_key_assets(owner_id(api_key))
        for row in rows:
            self._unlink(row)
        return len(rows)

    def check_image_ref(self, ref: str, api_key=None) -> None:
        """At submit: ``ref`` (a request's ``image``) must name an asset of ``api_key``; 422 naming ``image``."""
        if not is_asset_id(ref):
            raise InvalidRequest("image: give an uploaded asset id (POST /v1/assets, or send the file as `image` in "
                                 "a multipart POST /v1/videos); file paths and URLs are not taken", field="image")
        try:
            self.asset_path(ref, api_key)
        except AssetNotFound:
            raise InvalidRequest(f"image: no uploaded asset with id {ref} (upload the image with POST /v1/assets)",
                                 field="image") from None

    def image_resolver(self, api_key_id: str | None):
        """For the worker: ``request.image`` (an asset id of the job's key) -> its file."""
        def resolve(ref: str) -> Path:
            try:
                return self.asset_path(ref, api_key_id)
            except AssetNotFound:
                raise InvalidRequest(f"image: the uploaded asset {ref} was deleted before the job ran",
                                     field="image") from None
        return resolve

    # -- helpers ---------------------------------------------------------------------------------
    def _row(self, asset_id: str, api_key):
        row = self.repo.get_asset(asset_id, owner_id(api_key)) if is_asset_id(asset_id) else None
        if row is None:
            raise AssetNotFound(f"no asset with id {asset_id}")
        return row

    def _file(self, row) -> Path | None:
        """The row's file, if it is there and inside the assets folder."""
        root = self.assets_dir.resolve()
        path = (self.settings.home / row.path).resolve()
        return path if root in path.parents and path.is_file() else None

    def _unlink(self, row) -> None:
        path = self._file(row)
        if path is not None:
            try:
                path.unlink(missing_ok=True)
            except OSError:
                logger.warning("could not remove asset file %s", path, exc_info=True)
