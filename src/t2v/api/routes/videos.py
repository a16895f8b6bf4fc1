"""/v1/videos: submit, read, list, stream events, fetch content and metadata, cancel."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from t2v.api.deps import base_url, bearer_key, current_key, get_service, rate_limited
from t2v.api.downloads import send
from t2v.api.live import send_live
from t2v.api.responses import (CHANGING, EVENT_STREAM_DOC, KEYED, QUEUED, RANGE_DOC, ErrorBody, RunRecord, body_doc,
                               errors, file_responses)
from t2v.api.routes.assets import read_upload
from t2v.api.streams import StreamLease, open_stream
from t2v.api.schemas import SequenceCreate, VideoChange, VideoCreate, VideoCreateForm
from t2v.contract import Job, JobPage
from t2v.errors import InvalidRequest
from t2v.service.service import FINISHED
from t2v.models.publicnames import hide_server_paths
from t2v.service.views import FIGURES, job_to_dict

router = APIRouter(prefix="/v1/videos", tags=["videos"])
sequences = APIRouter(prefix="/v1/sequences", tags=["sequences"])

MEDIA_TYPES = {"mp4": "video/mp4", "webm": "video/webm", "gif": "image/gif"}
EVENT_POLL_S = 0.25


MULTIPART = "multipart/form-data"
FORM_FIELDS = ("request", "image")
VIDEO_BODY_DOC = body_doc(VideoCreate, VideoCreateForm)


@router.post("", status_code=202, summary="Queue a generation job (JSON; or multipart/form-data with an image)",
             openapi_extra=VIDEO_BODY_DOC, response_model=Job, responses={**QUEUED, **errors(*CHANGING, 415, 429, 503)})
async def create_video(request: Request, service=Depends(get_service), key=Depends(rate_limited)):
    """The body is JSON (``VideoCreate``), or multipart/form-data with that JSON as the ``request`` field and the
    first frame as the ``image`` file: the file is stored as an asset of the caller's key (as POST /v1/assets
    does) and the job names it. If the job is not queued, the asset goes again."""
    body, image = await read_video_body(request)
    if image is None:
        return await _submit(body, request, service, key)
    asset = await run_in_threadpool(service.assets.add_asset, *image, key, field="image")
    try:
        response = await _submit(body.model_copy(update={"image": asset["id"]}), request, service, key)
    except Exception:
        await run_in_threadpool(service.assets.delete_asset, asset["id"], key)
        raise
    if response.status_code != 202:  # an idempotent retry: the earlier job keeps the image it was given
        await run_in_threadpool(service.assets.delete_asset, asset["id"], key)
    return response


async def read_video_body(request: Request) -> tuple[VideoCreate, tuple[bytes, str | None] | None]:
    """The request's body, and the bytes and name of its image file when it came as multipart/form-data."""
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media not in (MULTIPART, "application/x-www-form-urlencoded"):  # a form without a file: the JSON alone
        if media and media != "application/json" and not media.endswith("+json"):
            raise HTTPException(415, f"send the body as application/json, or as {MULTIPART} with the JSON as the "
                                     "`request` field and the image file as `image`")
        return parse_video_body(await request.body(), ("body",)), None
    form = await request.form(max_files=1, max_fields=len(FORM_FIELDS))
    try:
        for name in form:
            if name not in FORM_FIELDS:
                raise InvalidRequest(f"{name}: unknown form field; send `request` (the JSON body) and `image` "
                                     "(the file)", field=name)
        text, upload = form.get("request"), form.get("image")
        if not isinstance(text, str):
            raise InvalidRequest("request: send the JSON body as the `request` form field", field="request")
        body = parse_video_body(text, ("body", "request"))
        if upload is None:
            return body, None
        if not isinstance(upload, UploadFile):
            raise InvalidRequest("image: send the image as a file part (or its asset id in the request)", field="image")
        if body.image is not None:
            raise InvalidRequest("image: send either an image file or an asset id in the request, not both",
                                 field="image")
        return body, (await read_upload(upload, "image"), upload.filename)
    finally:
        await form.close()


def parse_video_body(raw: bytes | str, loc: tuple) -> VideoCreate:
    """Validate a JSON body as FastAPI does (its errors, located under ``loc``)."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, nesting too deep
        where = (*loc, e.pos) if isinstance(e, json.JSONDecodeError) else loc
        raise RequestValidationError([{"type": "json_invalid", "loc": where, "msg": "JSON decode error", "input": {},
                                       "ctx": {"error": getattr(e, "msg", type(e).__name__)}}]) from None
    try:
        return VideoCreate.model_validate(data)
    except ValidationError as e:
        raise RequestValidationError([{**err, "loc": (*loc, *err["loc"])} for err in e.errors(include_url=False)]) \
            from None


@sequences.post("", status_code=202, summary="Queue an image-sequence job (keyframe prompts, text-to-image model)",
                response_model=Job, responses={**QUEUED, **errors(*CHANGING, 429)})
async def create_sequence(body: SequenceCreate, request: Request, service=Depends(get_service), key=Depends(rate_limited)):
    """The job lives under /v1/videos/{id} like any other: same status, events, content and metadata."""
    return await _submit(body, request, service, key)


async def _submit(body, request: Request, service, key):
    job, created = await run_in_threadpool(
        service.submit, body.generation_fields(), api_key=key, idempotency_key=body.idempotency_key,
        priority=body.priority, callback_url=body.callback_url,
    )
    data = await run_in_threadpool(job_to_dict, service, job, base_url=base_url(request))
    return JSONResponse(data, status_code=202 if created else 200, headers={"Location": data["links"]["self"]})


@router.get("", summary="List jobs, newest first", response_model=JobPage, responses=errors(*KEYED, 429))
async def list_videos(
    request: Request,
    status: str | None = Query(None, description="queued, running, succeeded, failed or cancelled"),
    limit: int = Query(20, ge=1, le=200),
    cursor: str | None = Query(None, description="next_cursor from the previous page"),
    q: str | None = Query(None, description="Substring of the prompt"),
    service=Depends(get_service),
    key=Depends(rate_limited),
):
    try:
        jobs = await run_in_threadpool(service.list, status=status, limit=limit, cursor=cursor, api_key=key, query=q)
    except InvalidRequest as e:  # these are query parameters, not body fields
        return JSONResponse({"detail": [{"loc": ["query", e.field], "msg": str(e), "type": "value_error"}]}, status_code=422)
    items = [job_to_dict(service, j, base_url=base_url(request)) for j in jobs]
    return {"items": items, "next_cursor": jobs[-1].id if len(jobs) == limit else None}


@router.get("/{job_id}", summary="A job: status, progress, request, result, error", response_model=Job,
            responses=errors(*KEYED, 404, 429))
async def get_video(job_id: str, request: Request, service=Depends(get_service), key=Depends(rate_limited)):
    job = await run_in_threadpool(service.get, job_id, api_key=key)
    return job_to_dict(service, job, base_url=base_url(request))


@router.get("/{job_id}/content", summary="The video file (supports HTTP Range; with T2V_STORAGE_PRESIGN=1 a "
                                          "307 redirect to a presigned object-storage URL); while the job runs, "
                                          "the mp4 so far, growing", response_class=Response,
            responses={**file_responses(*MEDIA_TYPES.values(), what="The video file (`format`: mp4 is video/mp4, "
                                        "webm video/webm, gif image/gif)", redirect=True), **errors(*KEYED, 404, 409)})
async def get_content(job_id: str, format: Literal["mp4", "webm", "gif"] = "mp4",
                      range_header: str | None = Header(None, alias="Range", description=RANGE_DOC),
                      service=Depends(get_service), key=Depends(current_key)):
    """While the job runs, the mp4 it streams as it is made (from its first finished part: a long video's
    segment, a diffusion-forcing window, else the whole clip): without Range the response follows the file
    until the job ends; a Range gets the bytes there are (``Content-Range: bytes a-b/*``). Once the job has
    succeeded, the finished file."""
    live = await run_in_threadpool(_live_clip, service, job_id, key) if format == "mp4" else None
    if live is not None:
        return send_live(service, live[0], live[1], media_type=MEDIA_TYPES["mp4"], range_header=range_header)
    job, found = await _finished_file(service, job_id, key, format, "content exists")
    if found is None:
        raise HTTPException(404, f"job {job_id} has no {format} file (formats: "
                                 f"{', '.join(f['format'] for f in job.files or []) or 'none, purged'})")
    return send(found, media_type=MEDIA_TYPES[format], filename=found.key.rsplit("/", 1)[-1], range_header=range_header)


def _live_clip(service, job_id: str, key):
    """(job, the clip it streams) while it runs and has streamed a part, else None (404 for another key's job)."""
    job = service.get(job_id, api_key=key)
    live = service.live_clip(job)
    return None if live is None else (job, live)


async def _finished_file(service, job_id: str, key, fmt: str, what: str):
    """(job, how to send its ``fmt`` file, or None); 409 naming ``what`` until the job has succeeded."""
    job = await run_in_threadpool(service.get, job_id, api_key=key)
    if job.status != "succeeded":
        raise HTTPException(409, f"job {job_id} is {job.status}; {what} once it has succeeded")
    return job, await run_in_threadpool(service.download, job, fmt)


@router.get("/{job_id}/figures/{name}", summary="A sequence job's contact sheet or denoise grid (PNG)",
            response_class=Response, responses={**file_responses("image/png", what="The figure", redirect=True),
                                                **errors(*KEYED, 404, 409)})
async def get_figure(job_id: str, name: Literal["contact_sheet", "denoise_grid"],
                     range_header: str | None = Header(None, alias="Range", description=RANGE_DOC),
                     service=Depends(get_service), key=Depends(current_key)):
    job, found = await _finished_file(service, job_id, key, name, "figures exist")
    if found is None:
        have = [f["format"] for f in job.files or [] if f["format"] in FIGURES]
        raise HTTPException(404, f"job {job_id} has no {name} (figures: {', '.join(have) or 'none; ask for them in the request'})")
    return send(found, media_type="image/png", filename=found.key.rsplit("/", 1)[-1], range_header=range_header)


IMAGE_RESPONSES = {**file_responses("image/png", what="The PNG image", redirect=True), **errors(*KEYED, 404)}


@router.get("/{job_id}/preview", summary="The live preview of a running job (PNG; the latest step's latents)",
            response_class=Response, responses=IMAGE_RESPONSES)
async def get_preview(job_id: str, range_header: str | None = Header(None, alias="Range", description=RANGE_DOC),
                      service=Depends(get_service), key=Depends(current_key)):
    """Changes every step: never cached. 404 until the first step has written one (and after a purge)."""
    return await _image(service, job_id, key, "preview.png", "no-store", range_header)


@router.get("/{job_id}/poster", summary="The finished clip's middle frame (PNG)", response_class=Response,
            responses=IMAGE_RESPONSES)
async def get_poster(job_id: str, range_header: str | None = Header(None, alias="Range", description=RANGE_DOC),
                     service=Depends(get_service), key=Depends(current_key)):
    """Written once the clip is: cacheable by the key's owner (private; revalidated by ETag)."""
    return await _image(service, job_id, key, "poster.png", "private, max-age=3600", range_header)


async def _image(service, job_id: str, key, name: str, cache: str, range_header: str | None):
    job = await run_in_threadpool(service.get, job_id, api_key=key)  # 404 for another key's job
    found = await run_in_threadpool(service.download, job, image=name)
    if found is None:
        raise HTTPException(404, f"job {job_id} has no {name.removesuffix('.png')} (status: {job.status})")
    return send(found, media_type="image/png", headers={"Cache-Control": cache}, range_header=range_header)


@router.get("/{job_id}/metadata", summary="The job's reproducibility record", response_model=RunRecord,
            response_model_exclude_unset=True, responses=errors(*KEYED, 404, 409))
async def get_metadata(job_id: str, service=Depends(get_service), key=Depends(current_key)):
    job = await run_in_threadpool(service.get, job_id, api_key=key)
    if job.result is None:
        raise HTTPException(409, f"job {job_id} is {job.status}; its record exists once it has succeeded")
    return hide_server_paths(service.settings, job.result)


@router.get("/{job_id}/events", summary="Server-Sent Events: progress, then the final state",
            response_class=EventSourceResponse,
            responses={200: EVENT_STREAM_DOC, **errors(*KEYED, 404, 429, json_route=False)})
async def job_events(job_id: str, request: Request, service=Depends(get_service), key=Depends(current_key),
                     last_event_id: str | None = Header(None, alias="Last-Event-ID",
                                                        description="The last event's id: resume after it"),
                     lease: StreamLease = Depends(open_stream)) -> AsyncIterator[Job | ErrorBody]:
    """Each event has an ``id`` naming the state it reports; reconnecting with ``Last-Event-ID`` resumes after
    it (nothing is sent again until the state changes). With API keys on, one key may hold
    ``T2V_MAX_STREAMS_PER_KEY`` open streams across all server processes; one more answers 429 (before the
    stream starts, as a missing job's 404 does)."""
    base, authorization = base_url(request), request.headers.get("authorization", "")
    last, renewed = last_event_id, time.monotonic()
    while True:
        job = await run_in_threadpool(service.find_job, job_id)
        if job is None:
            yield ServerSentEvent(event="error", data={"detail": "job deleted"})
            return
        data = await run_in_threadpool(job_to_dict, service, job, base_url=base)
        event_id = _event_id(data)
        if event_id != last:
            last = event_id
            yield ServerSentEvent(event="progress" if job.status not in FINISHED else job.status, data=data,
                                  id=event_id)
        if job.status in FINISHED or await request.is_disconnected():
            return
        if time.monotonic() - renewed >= lease.RENEW_S:
            if key is not None and await run_in_threadpool(bearer_key, service, authorization) is None:
                yield ServerSentEvent(event="error", data={"detail": "the API key was revoked"})  # checked at renewals
                return
            if not await run_in_threadpool(lease.renew):
                yield ServerSentEvent(event="error", data={"detail": lease.message})
                return
            renewed = time.monotonic()
        await asyncio.sleep(EVENT_POLL_S)


def _event_id(data: dict) -> str:
    """An event's id: the state it reports (status, stage, step, queue position). A client that reconnects with
    ``Last-Event-ID`` gets the next event only once the state has moved on from the one it saw."""
    p = data["progress"]
    return f"{data['status']}.{p['stage'] or '-'}.{p['step']}.{data['queue_position'] if data['queue_position'] is not None else '-'}"


CHANGEABLE = tuple(VideoChange.model_fields)


@router.patch("/{job_id}", summary="Change a queued job: its priority, and any request field (checked as at submit)",
              response_model=Job, responses=errors(*CHANGING, 404, 409, 429), openapi_extra=body_doc(VideoChange))
async def change_video(job_id: str, request: Request, service=Depends(get_service), key=Depends(rate_limited)):
    """The body holds what changes: ``priority`` (-100 to 100; higher starts first, equal ones keep their order)
    and request fields. A request change needs the job queued (409 otherwise); a priority change too."""
    try:
        body = json.loads(await request.body() or b"{}")
    except (ValueError, RecursionError):
        raise InvalidRequest("body: not valid JSON", field="body") from None
    if not isinstance(body, dict) or not body:
        raise InvalidRequest("body: send a JSON object of what changes, e.g. {\"priority\": 10}", field="body")
    for name in body:
        if name not in CHANGEABLE:
            raise InvalidRequest(f"{name}: not a field a queued job can change (see POST /v1/videos)", field=name)
    priority = body.pop("priority", None)
    job = await run_in_threadpool(service.steering.change, job_id, body, priority=priority, api_key=key)
    return job_to_dict(service, job, base_url=base_url(request))


@router.post("/{job_id}/pause", summary="Pause a queued job (skipped until resumed) or a running one (it stops at "
             "its next step, keeps its checkpoint and frees its worker)", response_model=Job,
             responses=errors(*KEYED, 404, 409, 429))
async def pause_video(job_id: str, request: Request, service=Depends(get_service), key=Depends(rate_limited)):
    job = await run_in_threadpool(service.steering.pause, job_id, api_key=key)
    return job_to_dict(service, job, base_url=base_url(request))


@router.post("/{job_id}/resume", summary="Resume a paused job: back in the queue, from its checkpoint",
             response_model=Job, responses=errors(*KEYED, 404, 409, 429))
async def resume_video(job_id: str, request: Request, service=Depends(get_service), key=Depends(rate_limited)):
    job = await run_in_threadpool(service.steering.resume, job_id, api_key=key)
    return job_to_dict(service, job, base_url=base_url(request))


@router.delete("/{job_id}", summary="Cancel a queued or running job (?purge=true also removes its files; "
                "?remove=true also removes a finished job from the history)", response_model=Job,
                responses=errors(*KEYED, 403, 404, 429))
async def cancel_video(job_id: str, request: Request, purge: bool = False, remove: bool = False,
                       service=Depends(get_service), key=Depends(rate_limited)):
    """Without ``remove`` the job stays listed (cancelled, or as it finished). With ``remove`` a finished
    job's files and record are deleted (afterwards it is 404) and the answer is its last state; an
    unfinished one is cancelled and purged, and a second call once it has stopped removes it."""
    job = await run_in_threadpool(service.cancel, job_id, purge=purge or remove, api_key=key)
    if remove and job.status in FINISHED:
        await run_in_threadpool(service.delete, job_id, api_key=key)
    return job_to_dict(service, job, base_url=base_url(request))
