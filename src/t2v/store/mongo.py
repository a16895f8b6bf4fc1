"""The MongoDB record store: each finished job's record (its JSON sidecar, plus the job id, the API key id and
where its files are), one document per job keyed by the job id, searchable by prompt, model and seed.

pymongo is optional (the ``mongodb`` extra). Every failure becomes :class:`RecordStoreUnavailable`,
one line naming the URL without its password."""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from t2v.errors import T2VError
from t2v.extras import install_hint

logger = logging.getLogger(__name__)

INDEXES = (("created_at", -1), ("model", 1), ("seed", 1))
MAX_DOCUMENT_BYTES = 15 * 2**20  # under MongoDB's 16 MiB, with room for the driver's envelope
KEPT_WHEN_TOO_LARGE = ("_id", "job_id", "api_key_id", "status", "error", "created_at", "finished_at", "locations",
                       "model", "seed", "t2v_version")


class RecordStoreUnavailable(T2VError):
    """The record store cannot be reached or refused an operation (the message names the URL, no password)."""


def redact(url: str) -> str:
    """``url`` without its password (``mongodb://user:***@host/...``)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class MongoRecords:
    """One collection of records. ``timeout_ms`` bounds every server selection and operation, so a MongoDB
    that is down or slow costs the caller at most that long."""

    def __init__(self, url: str, database: str = "t2v", collection: str = "records", *, timeout_ms: int = 3000):
        try:  # pymongo is optional (t2v[mongodb]): only for a records URL
            import pymongo
        except ImportError:
            raise RecordStoreUnavailable(f"MongoDB records need pymongo: {install_hint('mongodb')}") from None
        self.url, self.safe_url = url, redact(url)
        self.pymongo = pymongo
        try:
            self.client = pymongo.MongoClient(url, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms,
                                              socketTimeoutMS=timeout_ms * 4, appname="t2v", tz_aware=True)
        except (pymongo.errors.PyMongoError, ValueError) as e:  # a malformed URL, an unknown option
            raise RecordStoreUnavailable(f"MongoDB at {self.safe_url}: {self._why(e)}") from None
        self.collection = self.client[database][collection]
        self.indexed = False

    def _why(self, e: Exception) -> str:
        text = str(e).split(", Timeout:")[0].split(" (configured timeouts")[0]
        return text.replace(self.url, self.safe_url)[:300]

    def _call(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except self.pymongo.errors.PyMongoError as e:
            raise RecordStoreUnavailable(f"cannot {what} MongoDB at {self.safe_url}: {self._why(e)}") from None

    def close(self) -> None:
        self.client.close()

    def ping(self) -> None:
        self._call("reach", self.client.admin.command, "ping")

    def ensure_indexes(self) -> None:
        """Indexes on ``created_at``, ``model``, ``seed`` and a text index on ``prompt`` (once per process)."""
        if self.indexed:
            return
        for key, direction in INDEXES:
            self._call("index", self.collection.create_index, [(key, direction)], name=f"t2v_{key}")
        try:
            self.collection.create_index([("prompt", "text")], name="t2v_prompt_text")
        except self.pymongo.errors.OperationFailure:
            # MongoDB takes an identical index again as a no-op; some wire-compatible servers (nx-27017, which
            # the tests use) refuse it instead. The index is there if a text search works.
            self._call("index", self.collection.find_one, {"$text": {"$search": "t2v"}})
        except self.pymongo.errors.PyMongoError as e:
            raise RecordStoreUnavailable(f"cannot index MongoDB at {self.safe_url}: {self._why(e)}") from None
        self.indexed = True

    def upsert(self, documents: list[dict[str, Any]]) -> int:
        """Store each document under its ``_id`` (a job id): written again, it replaces itself (stored once)."""
        if not documents:
            return 0
        self.ensure_indexes()
        ops = [self.pymongo.ReplaceOne({"_id": d["_id"]}, storable(d), upsert=True) for d in documents]
        self._call("write to", self.collection.bulk_write, ops, ordered=False)
        return len(documents)

    def delete(self, job_id: str) -> None:
        self._call("delete from", self.collection.delete_one, {"_id": job_id})

    def search(self, query: str | None = None, *, api_key_id: str | None, scoped: bool, limit: int = 50,
               text: bool = True) -> list[dict[str, Any]]:
        """Records, newest first. ``scoped``: only ``api_key_id``'s (a server with keys). ``query``: MongoDB's
        text search on the prompt (``text``), else a case-insensitive substring of it."""
        flt: dict[str, Any] = {}
        if scoped:
            flt["api_key_id"] = api_key_id
        query = (query or "").strip()
        if query:
            flt.update({"$text": {"$search": query}} if text else
                       {"prompt": {"$regex": re.escape(query), "$options": "i"}})
        cursor = self._call("search", lambda: list(self.collection.find(flt).sort([("created_at", -1), ("_id", -1)])
                                                   .limit(max(1, min(int(limit), 500)))))
        return cursor


def storable(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` as MongoDB takes it, whatever a record holds. A record can carry what a client wrote: a post
    job keeps the comment embedded in the uploaded clip. Field names MongoDB refuses or misreads (a leading
    ``$``, a ``.``, a NUL) are renamed (``$x`` -> ``_x``, ``a.b`` -> ``a_b``); a document over
    :data:`MAX_DOCUMENT_BYTES` keeps only its ids, status, times, file locations, model and seed, a prompt cut
    to 1,000 characters and ``record_truncated: true``. One such record must not stop every later one."""
    import bson  # pymongo's (optional, t2v[mongodb]): only where records are sent

    clean = _clean(document)
    try:
        size = len(bson.encode(clean))
    except Exception:  # a value BSON cannot hold (an integer over 64 bits, ...): keep the safe fields
        size = MAX_DOCUMENT_BYTES + 1
    if size <= MAX_DOCUMENT_BYTES:
        return clean
    kept = {k: clean[k] for k in KEPT_WHEN_TOO_LARGE if k in clean}
    tail = {"prompt": str(clean.get("prompt", ""))[:1000], "record_truncated": True}
    try:
        bson.encode({**kept, **tail})
    except Exception:  # one of the kept fields is what BSON cannot hold: the ids, status and times only
        kept = {k: kept[k] for k in KEPT_WHEN_TOO_LARGE[:7] if k in kept}
    return {**kept, **tail}


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            key = str(key).replace("\x00", "").replace(".", "_")
            if key.startswith("$"):
                key = "_" + key[1:]
            out[key] = _clean(item)
        return out
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, str):
        return value.replace("\x00", "")
    return value
