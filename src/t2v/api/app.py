"""``create_app(settings)``: the FastAPI app over a JobService."""

from __future__ import annotations

import math
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware

from t2v.version import __version__
from t2v.errors import Conflict, Forbidden, InvalidRequest, JobNotFound, ModelUnavailable, QuotaExceeded
from t2v.settings import Settings, get_settings
from t2v.api.deps import BodySizeLimit
from t2v.api.responses import with_components
from t2v.api.schemas import BatchCreate, VideoChange, VideoCreate, VideoCreateForm
from t2v.runner.runtime import import_runtime


def create_app(settings: Settings | None = None, *, service=None, workers: int = 1, start_workers: bool = True,
               loopback_hosts: bool = False) -> FastAPI:
    """Build the app over ``service`` (a new JobService by default).

    With ``start_workers`` the service's workers start with the app and stop with it. While the server has no
    API keys, cross-site changes are refused, and with ``loopback_hosts`` (a server bound to a loopback
    address) so is any ``Host`` but a loopback one (:mod:`t2v.api.origin`).
    """
    from t2v.api.origin import KeylessGuard, TrustedHosts  # deferred: imports alembic, httpx, PIL
    from t2v.api.routes import assets, batches, postprocess, records, system, videos  # deferred: imports alembic, httpx, PIL
    from t2v.service import build_services  # deferred: imports alembic, httpx, PIL

    settings = settings or get_settings()
    service = service or build_services(settings, workers=workers)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if start_workers:
            service.start()  # imports the heavy libraries first, then starts threads
        else:
            import_runtime()  # request threads (the submit-time memory check) must not race to import them
        try:
            yield
        finally:
            if start_workers:
                service.stop()

    app = FastAPI(
        title="t2v",
        version=__version__,
        description="Text-to-video generation jobs: submit, watch progress, fetch videos and their records.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.add_middleware(BodySizeLimit, limit=settings.max_body_bytes, upload_limit=settings.max_upload_bytes)
    # CORS is always configured here, so the web page's own (Gradio's, which would allow localhost origins with
    # credentials, and any origin on a public Host) stays out: only T2V_CORS_ORIGINS get CORS headers.
    app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origin_list, allow_credentials=False,
                       allow_methods=["GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"],
                       allow_headers=["Authorization", "Content-Type", "Range", "Last-Event-ID"],
                       expose_headers=["Location", "Content-Range", "Content-Disposition", "Retry-After"])
    app.add_middleware(KeylessGuard, has_keys=lambda: service.access.has_keys(), loopback_hosts=loopback_hosts)
    if settings.allowed_hosts:  # T2V_PUBLIC_URL / T2V_TRUSTED_HOSTS: any other Host is answered 400 (outermost)
        app.add_middleware(TrustedHosts, allowed_hosts=settings.allowed_hosts)
    app.include_router(videos.router)
    app.include_router(videos.sequences)
    app.include_router(assets.router)
    app.include_router(batches.router)
    app.include_router(postprocess.router)
    app.include_router(records.router)
    app.include_router(system.router)
    from t2v.api.openai import create_openai_app, error as openai_error  # deferred: imports alembic, httpx, PIL

    app.mount("/openai/v1", create_openai_app(service))
    with_components(app, (VideoCreate, VideoCreateForm, VideoChange, BatchCreate),
                    names={"Body_create_asset_v1_assets_post": "AssetUpload"})

    def _error(status: int, message: str, field: str | None = None, headers=None):
        # "post.upscaler" -> ["body", "post", "upscaler"], as FastAPI locates a nested field
        detail = [{"loc": ["body", *field.split(".")], "msg": message, "type": "value_error"}] if field else message
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        # A path under /openai/v1 the mount does not take (its pattern stops at a newline, %0A in an id) is still
        # answered in that API's error shape, as its document declares.
        if request.scope.get("path", "").startswith("/openai/v1/"):
            return openai_error(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        # FastAPI's own 422, except that the echoed input is made writable as JSON: a body may hold
        # NaN/Infinity or a lone surrogate (\ud800), which would otherwise fail to render (HTTP 500).
        return JSONResponse({"detail": _json_safe(jsonable_encoder(exc.errors()))}, status_code=422)

    from t2v.service.records import RecordStoreUnavailable  # deferred: imports alembic, httpx, PIL
    from t2v.service.batches import BatchInvalid  # deferred: imports alembic, httpx, PIL

    @app.exception_handler(InvalidRequest)
    async def _invalid(request: Request, exc: InvalidRequest):
        if isinstance(exc, BatchInvalid):  # each invalid line, located as FastAPI locates a field
            return JSONResponse({"detail": [{"loc": ["body", "requests", p["line"] - 1, *str(p["field"]).split(".")],
                                             "msg": p["message"], "type": "value_error", "line": p["line"]}
                                            for p in exc.problems]}, status_code=422)
        return _error(422, str(exc), exc.field)

    @app.exception_handler(ModelUnavailable)
    async def _unavailable(request: Request, exc: ModelUnavailable):
        return _error(422, str(exc), "model")

    @app.exception_handler(RecordStoreUnavailable)
    async def _records_down(request: Request, exc: RecordStoreUnavailable):
        return _error(503, str(exc), headers={"Retry-After": "5"})

    # deferred: imports alembic, httpx, PIL (t2v.store.artifacts's error; front ends import no t2v.store)
    from t2v.service.assets import StorageUnavailable

    @app.exception_handler(StorageUnavailable)
    async def _storage_down(request: Request, exc: StorageUnavailable):  # e.g. the bucket, on an image upload
        return _error(503, str(exc), headers={"Retry-After": "5"})

    @app.exception_handler(JobNotFound)
    async def _not_found(request: Request, exc: JobNotFound):
        return _error(404, str(exc))

    @app.exception_handler(Conflict)
    async def _conflict(request: Request, exc: Conflict):
        return _error(409, str(exc), exc.field)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden):
        return _error(403, str(exc))

    @app.exception_handler(QuotaExceeded)
    async def _quota(request: Request, exc: QuotaExceeded):
        headers = {"Retry-After": str(int(exc.retry_after or 1))}
        return _error(429, str(exc), headers=headers)

    return app


def _json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as strings and lone surrogates escaped (``\\ud800``), so strict JSON holds it."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_json_safe(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value
