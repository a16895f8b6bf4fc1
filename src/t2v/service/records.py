"""Generation records outside the job table: the documents sent to MongoDB (``T2V_RECORDS_URL``), the publisher
that drains the outbox into it, the history export, and record search (``GET /v1/records``, ``t2v history
--source``).

A job that ends (succeeded, failed or cancelled) is in the outbox (:mod:`t2v.store.outbox`) from that very
transaction. :class:`RecordPublisher` sends pending records in the background: a MongoDB that is down or slow
never fails or delays a job; its records wait, and reach it once it is back (upserts keyed by the job id, so a
record sent twice is still stored once)."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from t2v.errors import InvalidRequest, T2VError
from t2v.store.mongo import MongoRecords, RecordStoreUnavailable
from t2v.store import FINISHED_STATUSES
from t2v.models.publicnames import hide_server_paths

logger = logging.getLogger(__name__)

SOURCES = ("sql", "mongodb")
BATCH = 100
MAX_DELAY_S = 30.0


def record_document(service, job) -> dict[str, Any]:
    """The stored document of a finished job: its JSON sidecar (the record written beside the video; for a job
    without one, its request), plus ``_id`` and ``job_id``, ``api_key_id``, ``status``, ``error``, the job's
    ``created_at``/``finished_at`` as dates (for sorting), and ``locations``: where each file is (the path on
    the server and the API route)."""
    doc: dict[str, Any] = {}
    sidecar = service.file_path(job, "json") if job.status == "succeeded" else None
    if sidecar is not None:
        try:
            doc = json.loads(sidecar.read_text())
        except (OSError, ValueError) as e:
            logger.warning("record of %s unreadable (%s): using the job's copy", job.id, e)
    if not doc:
        doc = dict(job.result or {}) or {"t2v_record": 1, **(job.request or {})}
    if not doc.get("prompt") and doc.get("keyframes"):  # an image sequence: its keyframe prompts, for search
        doc["prompt"] = " | ".join(str(k[1]) for k in doc["keyframes"] if len(k) > 1)
    locations = []
    for f in job.files or []:
        path = service.file_path(job, f.get("format", ""))
        locations.append({"format": f.get("format"), "path": str(path) if path else None,
                          "url": f"/v1/videos/{job.id}/content?format={f.get('format')}"
                          if f.get("format") in ("mp4", "webm", "gif") else None})
    doc.update(_id=job.id, job_id=job.id, api_key_id=job.api_key_id, status=job.status, error=job.error,
               created_at=job.created_at, finished_at=job.finished_at, locations=locations)
    return doc


def open_store(settings, url: str | None = None) -> MongoRecords:
    """The configured record store (or the one at ``url``)."""
    url = url or settings.records_url
    if not url:
        raise InvalidRequest("no record store: set T2V_RECORDS_URL=mongodb://HOST:27017 (or mongodb+srv:// for "
                             "Atlas)", field="source")
    if not url.startswith(("mongodb://", "mongodb+srv://")):
        raise InvalidRequest(f"{url.split(':', 1)[0]}: not a MongoDB URL; use mongodb://HOST:27017 or "
                             "mongodb+srv://CLUSTER", field="to")
    return MongoRecords(url, settings.records_db, settings.records_collection)


class RecordPublisher:
    """A daemon thread that sends the outbox's pending records to the record store every
    ``records_interval_s`` (backing off to 30 s while the store fails)."""

    def __init__(self, service) -> None:
        self.service = service
        self.store: MongoRecords | None = None
        self.thread: threading.Thread | None = None
        self.failing: str | None = None  # the last failure's message while the store is failing
        self.sent = 0

    def start(self) -> RecordPublisher:
        self.thread = threading.Thread(target=self.loop, name="t2v-records", daemon=True)
        self.thread.start()
        return self

    def loop(self) -> None:
        delay = self.service.settings.records_interval_s
        while not self.service.stopping.wait(delay):
            delay = self.service.settings.records_interval_s
            try:
                while self.publish_once() == BATCH:  # a backlog: keep going
                    pass
            except RecordStoreUnavailable as e:
                if self.failing is None:  # once per outage, not every retry
                    logger.warning("records wait in the outbox until MongoDB answers: %s", e)
                self.failing = str(e)
                delay = min(MAX_DELAY_S, max(delay, getattr(self, "last_delay", delay) * 2))
            except Exception:
                logger.exception("record publishing failed")
            self.last_delay = delay

    def publish_once(self) -> int:
        """Send one batch of pending records; returns how many (RecordStoreUnavailable: none were marked)."""
        repo = self.service.repo
        pending = repo.outbox.pending_records(BATCH)
        if not pending:
            return 0
        if self.store is None:
            self.store = open_store(self.service.settings)
        self.store.upsert([record_document(self.service, job) for job in pending])
        repo.outbox.mark_records_sent([job.id for job in pending])
        # A job deleted while its record was on its way (by this process or another) left nothing to forget it
        # by: its row is gone, so its record goes too.
        for job in pending:
            if repo.get_job(job.id) is None:
                self.store.delete(job.id)
        if self.failing is not None:
            logger.info("MongoDB answers again: the waiting records were sent")
            self.failing = None
        self.sent += len(pending)
        return len(pending)

    def forget(self, job_id: str) -> None:
        """Remove a deleted job's record from the store, in the background (best effort: logged if it fails)."""
        def run() -> None:
            try:
                (self.store or open_store(self.service.settings)).delete(job_id)
            except T2VError as e:
                logger.warning("the record of deleted job %s stays in MongoDB: %s", job_id, e)

        threading.Thread(target=run, name="t2v-records-forget", daemon=True).start()

    def stop(self) -> None:
        if self.store is not None:
            self.store.close()


def export_records(service, url: str | None = None) -> int:
    """Send every finished job's record to the store at ``url`` (default: the configured one); returns the
    count. Safe to repeat: each job's document is replaced, not added again."""
    store = open_store(service.settings, url)
    try:
        store.ping()
        batch, total = [], 0
        for job in service.repo.outbox.iter_finished():
            batch.append(record_document(service, job))
            if len(batch) == BATCH:
                total += store.upsert(batch)
                batch = []
        total += store.upsert(batch)
        return total
    finally:
        store.close()


def public_record(doc: dict[str, Any], settings=None) -> dict[str, Any]:
    """``doc`` as a client sees it: its files' locations by API route only, and (given the server's ``settings``)
    its own model folders by their public names: no path on the server."""
    doc = hide_server_paths(settings, doc) if settings is not None else doc
    return {**doc, "locations": [{k: v for k, v in loc.items() if k != "path"}
                                 for loc in doc.get("locations") or [] if isinstance(loc, dict)]}


def search_records(service, *, source: str = "sql", query: str | None = None, api_key=None,
                   limit: int = 50) -> list[dict[str, Any]]:
    """Records of finished jobs, newest first: from the job table (``sql``) or from MongoDB (``mongodb``).
    Only ``api_key``'s when one is given (the API always gives the caller's on a server with keys). ``query``: words of the prompt (MongoDB: its text search)."""
    if source not in SOURCES:
        raise InvalidRequest(f"source: {source!r} is not one of {', '.join(SOURCES)}", field="source")
    limit = max(1, min(int(limit), 500))
    if source == "sql":
        jobs = [j for status in FINISHED_STATUSES for j in service.list(status=status, limit=limit, api_key=api_key,
                                                               query=query)]
        jobs = sorted(jobs, key=lambda j: j.id, reverse=True)[:limit]
        return [record_document(service, j) for j in jobs]
    store = open_store(service.settings)
    try:
        return store.search(query, api_key_id=getattr(api_key, "id", None), scoped=api_key is not None, limit=limit)
    finally:
        store.close()
