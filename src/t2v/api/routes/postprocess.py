"""/v1/post: post-process a clip that already exists (a finished job's video, or an uploaded video asset) as a
job of its own. The job lives under /v1/videos/{id} like any other: status, events, content, metadata, cancel."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from t2v.api.deps import base_url, get_service, rate_limited
from t2v.api.responses import CHANGING, QUEUED, errors
from t2v.api.schemas import PostCreate
from t2v.contract import Job
from t2v.service.views import job_to_dict

router = APIRouter(prefix="/v1/post", tags=["post"])


@router.post("", status_code=202, response_model=Job,
             summary="Queue a post-processing job (deflicker, interpolate, upscale) of a finished job's video or an "
                     "uploaded video",
             responses={**QUEUED, **errors(*CHANGING, 404, 429, 503)})
async def create_post(body: PostCreate, request: Request, service=Depends(get_service), key=Depends(rate_limited)):
    """Exactly one source: ``job`` (a succeeded job of the caller's key; 422 while it has not succeeded) or
    ``asset`` (a video uploaded with POST /v1/assets). The output keeps the source's record and appends the steps
    (``postprocess``, ``post_history``), as ``t2v post`` does."""
    job, created = await run_in_threadpool(
        service.submit, body.generation_fields(), api_key=key, idempotency_key=body.idempotency_key,
        priority=body.priority, callback_url=body.callback_url)
    data = await run_in_threadpool(job_to_dict, service, job, base_url=base_url(request))
    return JSONResponse(data, status_code=202 if created else 200, headers={"Location": data["links"]["self"]})
