"""Steering the queue from any process: change a queued job (priority, request fields checked as at submit),
pause and resume a queued or running job. The job row is the truth (:mod:`t2v.store.controls`); a running job's
worker, wherever it runs, sees a pause at its next step and hands the job back to the queue, checkpoint kept."""

from __future__ import annotations

from typing import Any

from t2v.errors import Conflict, InvalidRequest
from t2v.service.access import visible_job
from t2v.service.ports import ControlTable, JobTable
from t2v.models.publicnames import accept_public_model
from t2v.requests.queue import PRIORITY_RANGE
from t2v.service.limits import check_priority
from t2v.store.controls import NotChangeable


class SteeringService:
    """Change, pause and resume a job the key may see (read from ``jobs``, changed through ``controls``)."""

    def __init__(self, settings, jobs: JobTable, controls: ControlTable, wakeup, prepare) -> None:
        """``prepare(fields, api_key=...)``: the submit's own checks and plan (:meth:`JobService.prepare`), which a
        changed request goes through whole: asset ownership, clip and decode checks, post source, cost, memory."""
        self.settings, self.jobs, self.controls, self.wakeup = settings, jobs, controls, wakeup
        self.prepare = prepare

    def change(self, job_id: str, fields: dict[str, Any], *, priority: int | None = None, api_key=None):
        """A queued job with ``fields`` changed in its request (checked and planned as at submit: the job keeps
        the new plan) and/or a new ``priority``."""
        job = visible_job(self.jobs, job_id, api_key)
        if priority is not None:
            lo, hi = PRIORITY_RANGE
            if not isinstance(priority, int) or isinstance(priority, bool) or not lo <= priority <= hi:
                raise InvalidRequest(f"priority: {priority!r} is not a whole number from {lo} to {hi}; nearest "
                                     f"valid: {min(hi, max(lo, int(priority))) if isinstance(priority, (int, float)) else 0}",
                                     field="priority")
            check_priority(priority, self.settings, api_key)
        row: dict[str, Any] = {}
        if fields:
            if job.status != "queued":
                raise Conflict(f"job {job_id} is {job.status}; only a queued job's request can be changed",
                               field=sorted(fields)[0])
            if "model" in fields:
                fields = {**fields, "model": accept_public_model(self.settings, fields["model"])}
            merged = {**{k: v for k, v in job.request.items() if v is not None}, **fields}
            row = self.prepare(merged, api_key=api_key).row()  # checked as at submit, and planned again
        try:
            changed = self.controls.change_queued(job_id, priority=priority, **row)
        except NotChangeable as e:
            raise Conflict(str(e), field="priority" if priority is not None else sorted(fields)[0]) from None
        self.wakeup.set()
        return changed

    def pause(self, job_id: str, *, api_key=None):
        visible_job(self.jobs, job_id, api_key)
        try:
            return self.controls.pause(job_id)
        except NotChangeable as e:
            raise Conflict(str(e), field="status") from None

    def resume(self, job_id: str, *, api_key=None):
        visible_job(self.jobs, job_id, api_key)
        try:
            job = self.controls.resume(job_id)
        except NotChangeable as e:
            raise Conflict(str(e), field="status") from None
        self.wakeup.set()
        return job
