"""The OpenAI-style Videos API at ``/openai/v1`` (what the ``openai`` SDK's ``client.videos`` speaks), mounted on
t2v's app and sharing its jobs, keys, limits, allow-lists and storage.

Bodies come as JSON or multipart/form-data (the SDK always sends ``POST /videos`` as multipart; its
``extra_body`` fields arrive as form fields, nested ones as ``name[key]``, lists as ``name[]``). Errors have
OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, with the statuses the SDK maps to its
exception classes. The shapes themselves are :mod:`t2v.service.videoapi`'s."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from t2v.api.deps import current_key, get_service, rate_limited
from t2v.api.downloads import send
from t2v.api.live import send_live
from t2v.api.openai_models import (BODIES, MEANINGS, CreateVideoBody, CreateVideoForm, ErrorResponse,
                                   ExtendVideoBody, ExtendVideoForm, RemixVideoBody, Video, VideoDeleted, VideoList,
                                   error_body)
from t2v.api.responses import RETRY_AFTER, body_doc, file_responses, with_components
from t2v.api.routes.assets import read_asset_upload, read_upload
from t2v.api.schemas import VideoCreate
from t2v.errors import Conflict, Forbidden, InvalidRequest, JobNotFound, ModelUnavailable, QuotaExceeded
from t2v.models.publicnames import public_model
from t2v.service.assets import StorageUnavailable
from t2v.service.videoapi import param_of, parse_seconds, remix_fields, request_fields, spritesheet, video_object

router = APIRouter(prefix="/videos", tags=["videos (OpenAI-style)"])
POLL_AFTER_MS = "1000"  # the SDK's poll helper waits this long between reads (openai-poll-after-ms)
BRACKETS = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
POLL_HEADER = {"openai-poll-after-ms": {"description": "Milliseconds to wait before reading the video again",
                                        "schema": {"type": "string"}}}


def error(status: int, message: str, param: str | None = None, code: str | None = None, headers=None) -> JSONResponse:
    """The Videos API's error answer (:class:`~t2v.api.openai_models.ErrorResponse`)."""
    return JSONResponse(error_body(status, message, param, code), status_code=status, headers=headers)


def errors(*codes: int) -> dict[int, dict[str, Any]]:
    """``responses=`` entries declaring ``codes`` as :class:`~t2v.api.openai_models.ErrorResponse` answers."""
    return {code: {"model": ErrorResponse, "description": MEANINGS[code],
                   **({"headers": RETRY_AFTER} if code in (429, 503) else {})} for code in codes}


#: Any route: a refused parameter or Host, a missing key, the rate limit.
READING = (400, 401, 429)
#: ... and a route that changes something: another site's page, a body too large, the artifact store.
WRITING = (*READING, 403, 413, 503)
VIDEO = {200: {"model": Video, "description": "The video", "headers": POLL_HEADER}}


def unflatten(items: list[tuple[str, Any]]) -> dict[str, Any]:
    """Form fields as the SDK writes them (``a[b]=1``, ``c[]=x``) turned back into a nested body."""
    out: dict[str, Any] = {}
    for name, value in items:
        m = BRACKETS.match(name)
        if not m:
            raise InvalidRequest(f"{name}: not a field name this API takes", field=name)
        keys = [m[1], *re.findall(r"\[([^\[\]]*)\]", m[2])]
        node = out
        for i, k in enumerate(keys):
            last = i == len(keys) - 1
            if k == "":  # a list's next item
                if not last:
                    raise InvalidRequest(f"{name}: lists of objects are not taken as form fields; send JSON",
                                         field=keys[0])
                continue
            nxt = keys[i + 1] if not last else None
            if last:
                node[k] = value
            elif nxt == "":
                node.setdefault(k, []).append(value)
                break
            else:
                node = node.setdefault(k, {})
                if not isinstance(node, dict):
                    raise InvalidRequest(f"{name}: {k} is given both as a value and as an object", field=keys[0])
    return out


async def read_body(request: Request, files: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, UploadFile]]:
    """The body as a dict, and its file parts by name (multipart only)."""
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = await request.form(max_files=len(files) or 1, max_fields=200)
        uploads = {k: v for k, v in form.multi_items() if isinstance(v, UploadFile)}
        for name in uploads:
            if name not in files:
                await form.close()
                raise InvalidRequest(f"{name}: this route takes no file named so (files: {', '.join(files) or 'none'})",
                                     field=name)
        return unflatten([(k, v) for k, v in form.multi_items() if not isinstance(v, UploadFile)]), uploads
    raw = await request.body()
    try:
        data = json.loads(raw) if raw.strip() else {}
    except (ValueError, RecursionError):
        raise InvalidRequest("body: not valid JSON", field="body") from None
    if not isinstance(data, dict):
        raise InvalidRequest("body: send a JSON object", field="body")
    return data, {}


def validated(fields: dict[str, Any]) -> VideoCreate:
    """t2v's API body from ``fields``, with t2v's checks (a refused field is named as the Videos API names it)."""
    try:
        return VideoCreate.model_validate(fields)
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        name = ".".join(str(p) for p in first["loc"]) or "body"
        what = "unknown field" if first["type"] == "extra_forbidden" else first["msg"]
        raise InvalidRequest(f"{name}: {what}", field=name) from None


async def submit(service, key, body: VideoCreate, *, remixed_from: str | None = None) -> JSONResponse:
    job, _ = await run_in_threadpool(service.submit, body.generation_fields(), api_key=key,
                                     idempotency_key=body.idempotency_key, priority=body.priority,
                                     callback_url=body.callback_url, remixed_from=remixed_from)
    return JSONResponse(await run_in_threadpool(video_object, service, job), headers={"openai-poll-after-ms": POLL_AFTER_MS})


async def with_image(service, key, fields: dict[str, Any], upload: UploadFile | None, submit_fn):
    """Store ``upload`` (the first frame) as an asset of ``key`` and name it in ``fields``; it goes again if the
    job is not queued."""
    if upload is None:
        return await submit_fn(fields)
    data = await read_upload(upload, "input_reference")
    asset = await run_in_threadpool(service.assets.add_asset, data, upload.filename, key, field="input_reference")
    try:
        return await submit_fn({**fields, "image": asset["id"]})
    except Exception:
        await run_in_threadpool(service.assets.delete_asset, asset["id"], key)
        raise


@router.post("", summary="Create a video (JSON, or multipart with `input_reference` as the first frame)",
             response_model=Video, responses={**VIDEO, **errors(*WRITING)},
             openapi_extra=body_doc(CreateVideoBody, CreateVideoForm))
async def create_video(request: Request, service=Depends(get_service), key=Depends(rate_limited)):
    body, uploads = await read_body(request, ("input_reference",))
    if "image" in body:
        raise InvalidRequest("image: send the first frame as input_reference", field="input_reference")
    fields = await run_in_threadpool(request_fields, service.settings, body)
    return await with_image(service, key, fields, uploads.get("input_reference"),
                            lambda f: submit(service, key, validated(f)))


@router.get("", summary="List videos", response_model=VideoList, responses=errors(*READING))
async def list_videos(after: str | None = Query(None), limit: int = Query(20, ge=1, le=100),
                      order: Literal["asc", "desc"] = Query("desc"), service=Depends(get_service),
                      key=Depends(rate_limited)):
    jobs = await run_in_threadpool(service.list, limit=limit + 1, cursor=after, api_key=key, order=order)
    page = jobs[:limit]
    data = [await run_in_threadpool(video_object, service, j) for j in page]
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": len(jobs) > limit}


@router.get("/{video_id}", summary="A video", response_model=Video, responses={**VIDEO, **errors(*READING, 404)})
async def get_video(video_id: str, service=Depends(get_service), key=Depends(rate_limited)):
    job = await run_in_threadpool(service.get, video_id, api_key=key)
    return JSONResponse(await run_in_threadpool(video_object, service, job),
                        headers={"openai-poll-after-ms": POLL_AFTER_MS})


@router.delete("/{video_id}", summary="Delete a video and its files (a queued or running one is cancelled first)",
               response_model=VideoDeleted, responses=errors(*READING, 403, 404, 409))
async def delete_video(video_id: str, service=Depends(get_service), key=Depends(rate_limited)):
    job = await run_in_threadpool(service.cancel, video_id, purge=True, api_key=key)
    for _ in range(100):  # a running job stops at its next step
        if job.status in ("succeeded", "failed", "cancelled"):
            break
        await asyncio.sleep(0.1)
        job = await run_in_threadpool(service.get, video_id, api_key=key)
    else:
        raise HTTPException(409, f"video {video_id} is being cancelled; delete it again once it has stopped")
    await run_in_threadpool(service.delete, video_id, api_key=key)
    return {"id": video_id, "object": "video.deleted", "deleted": True}


@router.get("/{video_id}/content", summary="The MP4 (Range), a thumbnail (PNG) or a spritesheet of frames (PNG)",
            response_class=Response, responses={**file_responses("video/mp4", "image/png", redirect=True, what=(
                "The file (`variant`: video is video/mp4, thumbnail and spritesheet image/png)")),
                **errors(400, 401, 404)})
async def get_content(video_id: str, variant: Literal["video", "thumbnail", "spritesheet"] = "video",
                      range_header: str | None = Header(None, alias="Range"), service=Depends(get_service),
                      key=Depends(current_key)):
    job = await run_in_threadpool(service.get, video_id, api_key=key)
    live = await run_in_threadpool(service.live_clip, job) if variant == "video" else None
    if live is not None:  # the mp4 so far, growing while the job runs (t2v.api.live)
        return send_live(service, job, live, media_type="video/mp4", range_header=range_header)
    if job.status != "succeeded":
        raise InvalidRequest(f"video {video_id} is not completed (it is {video_object(service, job)['status']}); "
                             "its content exists once it is", field="video_id")
    if variant == "thumbnail":
        found = await run_in_threadpool(service.download, job, image="poster.png")
        if found is None:
            raise HTTPException(404, f"video {video_id} has no thumbnail")
        return send(found, media_type="image/png", range_header=range_header)
    if variant == "spritesheet":
        path = await run_in_threadpool(service.local_video, job)
        if path is None:
            raise HTTPException(404, f"video {video_id} has no mp4 to make a spritesheet of")
        return Response(await run_in_threadpool(spritesheet, path), media_type="image/png")
    found = await run_in_threadpool(service.download, job, "mp4")
    if found is None:
        raise HTTPException(404, f"video {video_id} has no mp4 (formats: "
                                 f"{', '.join(f['format'] for f in job.files or []) or 'none, purged'})")
    return send(found, media_type="video/mp4", filename=f"{video_id}.mp4", range_header=range_header)


@router.post("/{video_id}/remix", summary="The same request (seed included) with a new prompt",
             response_model=Video, responses={**VIDEO, **errors(*WRITING, 404)},
             openapi_extra=body_doc(RemixVideoBody, RemixVideoBody))
async def remix_video(video_id: str, request: Request, service=Depends(get_service), key=Depends(rate_limited)):
    body, _ = await read_body(request, ())
    prompt = body.pop("prompt", None)
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidRequest("prompt: the remix's new prompt is required", field="prompt")
    source = await run_in_threadpool(service.get, video_id, api_key=key)
    model = public_model(service.settings, source.request.get("model"))
    overrides = await run_in_threadpool(request_fields, service.settings, {"model": model, **body})
    kept = {k: v for k, v in remix_fields(source, prompt).items() if k in VideoCreate.model_fields}
    return await submit(service, key, validated(public_fields(service, {**kept, **overrides})), remixed_from=source.id)


@router.post("/extensions", summary="Continue a video (a t2v video id as video[id], or an uploaded clip) by seconds",
             response_model=Video, responses={**VIDEO, **errors(*WRITING, 404)},
             openapi_extra=body_doc(ExtendVideoBody, ExtendVideoForm))
async def extend_video(request: Request, service=Depends(get_service), key=Depends(rate_limited)):
    body, uploads = await read_body(request, ("video",))
    video, seconds = body.pop("video", None), body.pop("seconds", None)
    if seconds is None:
        raise InvalidRequest("seconds: the seconds to add are required (e.g. \"4\")", field="seconds")
    fields: dict[str, Any] = {**body, "seconds": parse_seconds(seconds)}
    upload = uploads.get("video")
    if upload is not None:
        data, name = await read_asset_upload(upload, service), upload.filename
    elif isinstance(video, dict) and isinstance(video.get("id"), str):
        source = await run_in_threadpool(service.get, video["id"], api_key=key)
        if source.status != "succeeded":
            raise InvalidRequest(f"video: {source.id} is not completed; extend it once it is", field="video")
        path = await run_in_threadpool(service.local_video, source)
        if path is None:
            raise InvalidRequest(f"video: {source.id} has no mp4 to continue", field="video")
        data, name = path.read_bytes(), f"{source.id}.mp4"
        same = ("model", "width", "height", "fps", "num_frames", "num_inference_steps", "guidance_scale")
        fields = {**{k: source.request[k] for k in same if source.request.get(k) is not None}, **fields}
    else:
        raise InvalidRequest("video: send the clip to continue as a file, or a video's id as video[id]",
                             field="video")
    asset = await run_in_threadpool(service.assets.add_asset, data, name, key, field="video")
    try:
        return await submit(service, key, validated(public_fields(service, {**fields, "extend": asset["id"]})))
    except Exception:
        await run_in_threadpool(service.assets.delete_asset, asset["id"], key)
        raise


def public_fields(service, fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` with the model by its public name (a job's request holds the server's folder)."""
    return {**fields, "model": public_model(service.settings, fields["model"])} if fields.get("model") else fields


def create_openai_app(service) -> FastAPI:
    """The sub-application mounted at ``/openai/v1`` (its own OpenAPI document at ``/openai/v1/openapi.json``)."""
    app = FastAPI(title="t2v (OpenAI-style Videos API)", description=__doc__)
    app.state.service = service
    app.include_router(router)
    with_components(app, BODIES, drop=("HTTPValidationError", "ValidationError"))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: HTTPException):
        return error(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        name = str(first["loc"][-1]) if first["loc"] else None
        return error(400, f"{name}: {first['msg']}" if name else first["msg"], param_of(name))

    @app.exception_handler(InvalidRequest)
    async def _invalid(request: Request, exc: InvalidRequest):
        param = param_of(exc.field)
        message = str(exc)
        if exc.field and param != exc.field and message.startswith(f"{exc.field}:"):
            message = f"{param} ({exc.field}):{message[len(exc.field) + 1:]}"
        return error(400, message, param)

    @app.exception_handler(ModelUnavailable)
    async def _unavailable(request: Request, exc: ModelUnavailable):
        return error(400, str(exc), "model", "model_not_available")

    @app.exception_handler(JobNotFound)
    async def _not_found(request: Request, exc: JobNotFound):
        return error(404, str(exc).replace("no job with id", "no video with id"), code="video_not_found")

    @app.exception_handler(Conflict)
    async def _conflict(request: Request, exc: Conflict):
        return error(409, str(exc), exc.field)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden):
        return error(403, str(exc))

    @app.exception_handler(QuotaExceeded)
    async def _quota(request: Request, exc: QuotaExceeded):
        return error(429, str(exc), headers={"Retry-After": str(int(exc.retry_after or 1))})

    @app.exception_handler(StorageUnavailable)
    async def _storage_down(request: Request, exc: StorageUnavailable):
        return error(503, str(exc), headers={"Retry-After": "5"})

    return app
