"""JobService: the one place front ends submit, read and cancel jobs; it owns the workers."""

from __future__ import annotations

import logging
import shutil
import threading
from dataclasses import dataclass, field
from typing import Any

from t2v.errors import Forbidden, InvalidRequest, JobNotFound, QuotaExceeded
from t2v.settings import Settings, get_settings

logger = logging.getLogger(__name__)

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED = ("succeeded", "failed", "cancelled")


@dataclass
class Metrics:
    """Counters for /metrics that live in the process (job counts come from the database)."""

    jobs_done: int = 0
    generation_seconds_sum: float = 0.0
    steps_done: int = 0
    step_seconds_sum: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def observe_job(self, seconds: float, record: dict[str, Any]) -> None:
        with self.lock:
            self.jobs_done += 1
            self.generation_seconds_sum += seconds
            steps = int(record.get("num_inference_steps") or 0) - int(record.get("resumed_from_step") or 0)
            if steps > 0:
                self.steps_done += steps
                self.step_seconds_sum += float(record.get("timings", {}).get("denoise_s", 0.0))


class JobService:
    """Submit/get/list/cancel over the job table; ``start()`` runs worker threads that execute jobs."""

    def __init__(self, settings: Settings | None = None, *, workers: int = 1, database_url: str | None = None) -> None:
        from t2v.store import Repository, default_database_url, open_database

        self.settings = settings or get_settings()
        self.settings.home.mkdir(parents=True, exist_ok=True)
        self.engine = open_database(database_url or default_database_url(self.settings))
        self.repo = Repository(self.engine)
        self.n_workers = workers
        self.workers: list = []
        self.stopping = threading.Event()
        self.wakeup = threading.Event()
        self.cancel_requested: set[str] = set()
        self.purge_requested: set[str] = set()
        self.metrics = Metrics()
        self._janitor: threading.Thread | None = None
        self.warm_state: dict[str, Any] = {"model": None, "done": True, "error": None}

    # -- lifecycle -------------------------------------------------------------------------------
    def warm(self, model: str) -> None:
        """Load ``model`` in the background so the first job does not wait for it."""
        from t2v import load_pipeline

        self.warm_state = {"model": model, "done": False, "error": None}

        def run() -> None:
            try:
                load_pipeline(model, device=self.settings.device, dtype=self.settings.dtype, settings=self.settings)
            except Exception as e:  # jobs will report it with a clear message; the server stays up
                self.warm_state["error"] = str(e)
                logger.warning("could not warm %s: %s", model, e)
            finally:
                self.warm_state["done"] = True

        threading.Thread(target=run, name="t2v-warm", daemon=True).start()

    def start(self) -> JobService:
        from t2v.service.webhooks import WebhookSender
        from t2v.service.worker import Worker

        requeued = self.repo.requeue_stale(self.settings.stale_after_s)
        if requeued:
            logger.info("requeued %d job(s) left running by a stopped process", len(requeued))
        self.webhooks = WebhookSender(self)
        self.workers = [Worker(self, i) for i in range(self.n_workers)]
        for w in self.workers:
            w.start()
        self._janitor = threading.Thread(target=self._janitor_loop, name="t2v-janitor", daemon=True)
        self._janitor.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop workers; a running job saves a checkpoint and goes back to the queue."""
        self.stopping.set()
        self.wakeup.set()
        for w in self.workers:
            w.join(timeout)
        if self._janitor:
            self._janitor.join(timeout)
        self.engine.dispose()

    def _janitor_loop(self) -> None:
        interval = max(0.5, self.settings.stale_after_s / 2)
        while not self.stopping.wait(interval):
            try:
                if self.repo.requeue_stale(self.settings.stale_after_s):
                    self.wakeup.set()
                self.webhooks.retry_pending()
            except Exception:
                logger.exception("janitor pass failed")

    def ready(self) -> dict[str, Any]:
        import time

        alive = [w for w in self.workers if w.is_alive()]
        from t2v.models import loader

        return {
            "workers": len(self.workers),
            "workers_alive": len(alive),
            "models_loaded": loader.loaded_models(),
            "warm": dict(self.warm_state),
            "ready": bool(alive) and self.warm_state["done"] and not self.stopping.is_set(),
            "busy": [w.current for w in alive if w.current],
            "checked_at": time.time(),
        }

    # -- jobs ------------------------------------------------------------------------------------
    def submit(self, fields: dict[str, Any], *, api_key=None, idempotency_key: str | None = None, priority: int = 0,
               callback_url: str | None = None):
        """Validate and queue a job. Returns ``(job, created)``; the same idempotency key returns the same job."""
        from t2v.generation import resolve
        from t2v.sequence.request import request_from_fields
        from t2v.models.loader import check_available

        for name, value in (*fields.items(), ("idempotency_key", idempotency_key), ("callback_url", callback_url)):
            _check_no_nul(name, value)
        request = request_from_fields(fields)
        key_id = api_key.id if api_key else None
        if idempotency_key and (earlier := self.repo.find_idempotent(key_id, idempotency_key)):
            return earlier, False  # a retried request: the same job, even when the key is now at its quota
        resolved = resolve(request, self.settings)  # fixes model, defaults and the seed now: restarts reproduce
        check_available(resolved.model, self.settings)
        if api_key and api_key.max_queued is not None:
            queued = self.repo.count_jobs(status="queued", api_key_id=key_id)
            if queued >= api_key.max_queued:
                raise QuotaExceeded(f"this key already has {queued} queued jobs (limit {api_key.max_queued})", retry_after=5)
        job, created = self.repo.create_job(resolved.model_dump(mode="json"), priority=priority, api_key_id=key_id,
                                            idempotency_key=idempotency_key, callback_url=callback_url)
        if created:
            self.wakeup.set()
        return job, created

    def get(self, job_id: str, *, api_key=None):
        job = self.repo.get_job(job_id) if "\x00" not in job_id else None  # ids never hold NUL; PostgreSQL rejects it
        if job is None:
            raise JobNotFound(f"no job with id {job_id}")
        if api_key is not None and job.api_key_id != api_key.id:
            raise Forbidden(f"job {job_id} belongs to another API key")
        return job

    def list(self, *, status: str | None = None, limit: int = 20, cursor: str | None = None, api_key=None,
             query: str | None = None):
        if status is not None and status not in STATUSES:
            raise InvalidRequest(f"status: must be one of {', '.join(STATUSES)}", field="status")
        if not 1 <= limit <= 200:
            raise InvalidRequest("limit: must be between 1 and 200", field="limit")
        _check_no_nul("cursor", cursor)
        if query and "\x00" in query:  # no stored prompt holds NUL (submit refuses it)
            return []
        return self.repo.list_jobs(status=status, api_key_id=api_key.id if api_key else None, limit=limit,
                                   cursor=cursor, query=query)

    def queue_position(self, job_id: str) -> int | None:
        return self.repo.queue_position(job_id)

    def cancel(self, job_id: str, *, purge: bool = False, api_key=None):
        self.get(job_id, api_key=api_key)
        job = self.repo.request_cancel(job_id)
        if job.status == "running":
            self.cancel_requested.add(job_id)
            if purge:
                self.purge_requested.add(job_id)
        elif purge:
            self.purge_files(job_id)
            job = self.repo.get_job(job_id)
        return job

    def delete(self, job_id: str, *, api_key=None) -> None:
        """Remove a finished job: its files and its row. A queued or running job is cancelled instead."""
        job = self.get(job_id, api_key=api_key)
        if job.status not in FINISHED:
            self.cancel(job_id, purge=True, api_key=api_key)
            return
        shutil.rmtree(self.settings.videos_dir / job_id, ignore_errors=True)
        self.repo.delete_job(job_id)

    def purge_files(self, job_id: str) -> None:
        shutil.rmtree(self.settings.videos_dir / job_id, ignore_errors=True)
        self.repo.clear_files(job_id)

    def file_path(self, job, fmt: str):
        """Absolute path of a finished job's file in ``fmt`` (or None)."""
        for f in job.files or []:
            if f.get("format") == fmt:
                path = (self.settings.videos_dir / f["path"]).resolve()
                if self.settings.videos_dir.resolve() in path.parents and path.is_file():
                    return path
        return None

    def image_path(self, job_id: str, name: str):
        """The live preview (``preview.png``) or the finished clip's middle frame (``poster.png``), if written."""
        path = self.settings.videos_dir / job_id / name
        return path if path.is_file() else None

    def after_finish(self, job_id: str) -> None:
        self.cancel_requested.discard(job_id)
        job = self.repo.get_job(job_id)
        if job is not None and job.callback_url:
            self.webhooks.deliver_async(job)


def _check_no_nul(name: str, value: Any) -> None:
    """Text with NUL characters cannot be stored (PostgreSQL refuses it): a 422 naming the field."""
    if isinstance(value, str) and "\x00" in value:
        raise InvalidRequest(f"{name}: must not contain NUL (\\x00) characters", field=name)
