"""/v1/models, /healthz, /readyz, /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from t2v.api.deps import auth_enabled, bearer_key, get_service, rate_limited
from t2v.api.responses import METRICS_DOC, Health, Readiness, errors
from t2v.contract import ModelList
from t2v.service.catalogue import model_list

router = APIRouter()


@router.get("/v1/models", tags=["models"], summary="Registered models and the server's default", response_model=ModelList,
            responses=errors(400, 401, 429))
async def list_models(service=Depends(get_service), key=Depends(rate_limited)):
    return await run_in_threadpool(model_list, service.settings)


@router.get("/healthz", tags=["system"], summary="The process is up", response_model=Health, responses=errors(400))
async def healthz():
    return {"status": "ok"}


@router.get("/readyz", tags=["system"], summary="Workers alive (details with a valid key)", response_model=Readiness,
            responses={**errors(400), 503: {"model": Readiness, "description": "Not ready: no worker alive, the "
                                                                               "warm-up not done, or stopping"}})
async def readyz(request: Request, service=Depends(get_service)):
    """200 when ready, 503 when not, for everyone. The public answer has counts only; a caller with a valid
    key (or anyone, on a server without keys) also gets the loaded models, the warm-up state and its
    running job ids."""
    state = await run_in_threadpool(_readiness, service, request.headers.get("authorization", ""))
    return JSONResponse(state, status_code=200 if state["ready"] else 503)


def _readiness(service, authorization: str) -> dict:
    if not auth_enabled(service):
        return service.ready(detail=True)
    key = bearer_key(service, authorization)
    return service.ready(detail=key is not None, api_key=key)


@router.get("/metrics", tags=["system"], response_class=PlainTextResponse, summary="Prometheus metrics",
            responses={200: METRICS_DOC, **errors(400, json_route=False)})
async def metrics(request: Request, service=Depends(get_service)):
    """The Prometheus text format; OpenMetrics for a scraper that asks for it (``Accept``). Several processes
    behind one address: see :mod:`t2v.service.metrics` (PROMETHEUS_MULTIPROC_DIR)."""
    body, content_type = await run_in_threadpool(service.metrics.exposition, request.headers.get("accept"))
    return Response(body, media_type=content_type)
