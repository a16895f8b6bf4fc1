"""Uploaded assets (image-to-video's first frames): one row per file under the data dir.

``owner`` in every method: the API key id the asset must belong to, or None to skip the check (a
server without keys, the admin's command line), exactly as job reads work.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select

from .db import Database, utcnow
from .tables import Asset

__all__ = ["Assets", "AssetRow"]

assets = Asset.__table__
a = assets.c


@dataclass(frozen=True)
class AssetRow:
    """One row of ``assets``; ``path`` is relative to the data dir."""

    id: str
    api_key_id: str | None
    sha256: str
    filename: str
    content_type: str
    size: int
    width: int
    height: int
    path: str
    created_at: datetime


def _owned(asset_id: str, owner: str | None):
    where = [a.id == asset_id]
    if owner is not None:
        where.append(a.api_key_id == owner)
    return where


class Assets:
    """Uploaded assets: add, read, delete."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add_asset(self, *, asset_id: str, api_key_id: str | None, sha256: str, filename: str, content_type: str,
                  size: int, width: int, height: int, path: str) -> AssetRow:
        row = AssetRow(id=asset_id, api_key_id=api_key_id, sha256=sha256, filename=filename,
                       content_type=content_type, size=size, width=width, height=height, path=path,
                       created_at=utcnow())
        with self.db.write() as conn:
            conn.execute(insert(assets).values(**asdict(row)))
        return row

    def get_asset(self, asset_id: str, owner: str | None = None) -> AssetRow | None:
        with self.db.read() as conn:
            row = conn.execute(select(assets).where(*_owned(asset_id, owner))).first()
        return AssetRow(**row._mapping) if row else None

    def find_asset(self, owner: str | None, sha256: str) -> AssetRow | None:
        """The oldest asset of key ``owner`` (None: of no key) with these bytes."""
        key = a.api_key_id.is_(None) if owner is None else a.api_key_id == owner
        with self.db.read() as conn:
            row = conn.execute(select(assets).where(key, a.sha256 == sha256).order_by(a.id).limit(1)).first()
        return AssetRow(**row._mapping) if row else None

    def delete_asset(self, asset_id: str, owner: str | None = None) -> AssetRow | None:
        """Remove the row; returns it (so its file can go too), or None when there was none to remove."""
        with self.db.write() as conn:
            row = conn.execute(select(assets).where(*_owned(asset_id, owner))).first()
            if row is None:
                return None
            conn.execute(delete(assets).where(a.id == asset_id))
        return AssetRow(**row._mapping)

    def delete_key_assets(self, api_key_id: str) -> list[AssetRow]:
        """Remove every asset of a key; returns the rows removed."""
        with self.db.write() as conn:
            rows = conn.execute(select(assets).where(a.api_key_id == api_key_id).order_by(a.id)).all()
            conn.execute(delete(assets).where(a.api_key_id == api_key_id))
        return [AssetRow(**r._mapping) for r in rows]
