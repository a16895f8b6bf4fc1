"""The public JSON of a job (what the API returns and what webhooks send): the service's, so a webhook need not
reach up into the API to describe a job."""

from __future__ import annotations

from typing import Any

from t2v.models.publicnames import hide_server_paths


def iso(dt) -> str | None:
    return dt.isoformat() if dt else None


FIGURES = ("contact_sheet", "denoise_grid")


def file_url(base_url: str, job_id: str, fmt: str) -> str | None:
    if fmt in FIGURES:
        return f"{base_url}/v1/videos/{job_id}/figures/{fmt}"
    if fmt == "json":
        return f"{base_url}/v1/videos/{job_id}/metadata"
    if fmt == "png":
        return None  # a folder of frames on the server: not served over HTTP
    return f"{base_url}/v1/videos/{job_id}/content?format={fmt}"


def job_to_dict(service, job, *, base_url: str = "") -> dict[str, Any]:
    """The public JSON of a job."""
    position = service.queue_position(job.id) if job.status == "queued" else None
    if job.status == "queued" and position is None and not job.paused:  # claimed meanwhile: the fresher state
        job = service.find_job(job.id) or job
    fraction = job.step / job.total if job.total else (1.0 if job.status == "succeeded" else 0.0)
    files = [
        {"format": f["format"], "file": f.get("file"), "bytes": f.get("bytes"), "sha256": f.get("sha256"),
         "url": file_url(base_url, job.id, f["format"])}
        for f in (job.files or [])
    ]
    out = {
        "id": job.id,
        "status": "paused" if job.paused and job.status == "queued" else job.status,
        "priority": job.priority,
        "queue_position": position if job.status == "queued" else None,
        "progress": {"stage": job.stage, "step": job.step, "total": job.total, "fraction": round(fraction, 4),
                     "eta_s": job.eta_now()},
        "request": hide_server_paths(service.settings, job.request),
        "result": {"files": files, "metadata": hide_server_paths(service.settings, job.result)}
        if job.status == "succeeded" else None,
        "error": job.error,
        "attempts": job.attempts,
        "cancel_requested": job.cancel_requested,
        "pause_requested": job.paused and job.status == "running",
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "webhook": {"status": job.webhook_status, "attempts": job.webhook_attempts, "error": job.webhook_error}
        if job.callback_url else None,
        "links": {"self": f"{base_url}/v1/videos/{job.id}", "events": f"{base_url}/v1/videos/{job.id}/events",
                  "content": f"{base_url}/v1/videos/{job.id}/content", "metadata": f"{base_url}/v1/videos/{job.id}/metadata"},
    }
    return out
