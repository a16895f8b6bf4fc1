"""Batches from any front end: many requests checked one by one as a submit checks them, then queued in one
transaction under one id (none when any is invalid, or, with ``partial``, the valid ones with the others listed);
the batch's counts; cancel, pause or resume it as a whole."""

from __future__ import annotations

from typing import Any, Callable

from t2v.errors import InvalidRequest, JobNotFound, ModelUnavailable, QuotaExceeded
from t2v.service.limits import check_priority
from t2v.service.ports import BatchTable, ControlTable, JobTable
from t2v.settings import Settings
from t2v.store.controls import NotChangeable
from t2v.store.limits import QueueFull

MAX_BATCH = 1000


class BatchInvalid(InvalidRequest):
    """Some of a batch's requests are invalid (``problems``: each one's line, field and message); nothing queued."""

    def __init__(self, problems: list[dict[str, Any]]) -> None:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"line {first['line']}: {first['message']}{more}; nothing was queued (partial=true "
                         "queues the valid lines)", field="requests")
        self.problems = problems


class BatchService:
    """Batches over the store's ``batches`` (queued in one transaction) and ``controls`` (pause, resume), each
    request checked by ``prepare`` and each job cancelled by ``cancel`` as the service does it for one job."""

    def __init__(self, settings: Settings, jobs: JobTable, batches: BatchTable, controls: ControlTable,
                 prepare: Callable[..., Any], cancel: Callable[..., Any], wakeup) -> None:
        self.settings, self.jobs, self.batches, self.controls = settings, jobs, batches, controls
        self.prepare, self.cancel, self.wakeup = prepare, cancel, wakeup

    def submit_batch(self, items: list[dict[str, Any]], *, api_key=None, priority: int = 0,
                     idempotency_key: str | None = None, partial: bool = False) -> dict[str, Any]:
        """Queue ``items`` (request fields) as one batch: ``{batch, created, invalid}`` (``batch`` as
        :meth:`get_batch` shows it; ``invalid`` lists the lines left out with ``partial``)."""
        if not items:
            raise InvalidRequest("requests: give at least one request", field="requests")
        if len(items) > MAX_BATCH:
            raise InvalidRequest(f"requests: {len(items)} requests; a batch holds at most {MAX_BATCH}",
                                 field="requests")
        check_priority(priority, self.settings, api_key)
        admitted, problems = self.check_batch(items, api_key=api_key)
        if problems and (not partial or not admitted):
            raise BatchInvalid(problems)
        key_id = api_key.id if api_key else None
        rows = [a.row() for a in admitted]
        try:
            batch_id, created = self.batches.create_batch([r["request"] for r in rows], plans=[r["plan"] for r in rows],
                                                          priority=priority, api_key_id=key_id,
                                                          idempotency_key=idempotency_key,
                                                          max_queued=api_key.max_queued if api_key else None)
        except QueueFull as e:
            raise QuotaExceeded(str(e), retry_after=5) from None
        if created:
            self.wakeup.set()
        return {"batch": self.get_batch(batch_id, api_key=api_key), "created": created, "invalid": problems}

    def check_batch(self, items: list[Any], *, api_key=None) -> tuple[list[Any], list[dict[str, Any]]]:
        """Each item checked as a submit checks it: (the valid ones admitted, as ``prepare`` gives them; the
        problems: line, field, message)."""
        admitted, problems = [], []
        for line, fields in enumerate(items, 1):
            try:
                if not isinstance(fields, dict):
                    raise InvalidRequest("not a JSON object of request fields", field="request")
                admitted.append(self.prepare(fields, api_key=api_key))
            except (InvalidRequest, ModelUnavailable) as e:
                problems.append({"line": line, "field": getattr(e, "field", None) or "model", "message": str(e)})
        return admitted, problems

    def get_batch(self, batch_id: str, *, api_key=None) -> dict[str, Any]:
        """The batch and its counts; JobNotFound for another key's (they read alike)."""
        batch = self.batches.get_batch(batch_id) if "\x00" not in batch_id else None
        if batch is None or (api_key is not None and batch["api_key_id"] != api_key.id):
            raise JobNotFound(f"no batch with id {batch_id}")
        return batch

    def control_batch(self, batch_id: str, action: str, *, api_key=None) -> dict[str, Any]:
        """Cancel, pause or resume every job of the batch that is in a state to take it (the others are left as
        they are); the batch after, with ``changed``: how many jobs took it."""
        batch = self.get_batch(batch_id, api_key=api_key)
        if action not in ("cancel", "pause", "resume"):
            raise InvalidRequest(f"action: {action!r}; cancel, pause or resume", field="action")
        changed = 0
        for job_id in batch["job_ids"]:
            if action == "cancel":
                before = self.jobs.get_job(job_id)
                after = self.cancel(job_id, api_key=api_key)
                changed += after.status != before.status or after.cancel_requested != before.cancel_requested
                continue
            try:
                (self.controls.pause if action == "pause" else self.controls.resume)(job_id)
                changed += 1
            except NotChangeable:  # a finished job, or one that is not paused
                pass
        if action == "resume":
            self.wakeup.set()
        return {**self.get_batch(batch_id, api_key=api_key), "changed": changed}
