"""/v1/models, /healthz, /readyz, /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse

from t2v.api.deps import auth_enabled, bearer_key, get_service, rate_limited
from t2v.contract import ModelList
from t2v.service.service import STATUSES
from t2v.service.catalogue import model_list

router = APIRouter()


@router.get("/v1/models", tags=["models"], summary="Registered models and the server's default", response_model=ModelList)
async def list_models(service=Depends(get_service), key=Depends(rate_limited)):
    return await run_in_threadpool(model_list, service.settings)


@router.get("/healthz", tags=["system"], summary="The process is up")
async def healthz():
    return {"status": "ok"}


@router.get("/readyz", tags=["system"], summary="Workers alive (details with a valid key)")
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


@router.get("/metrics", tags=["system"], response_class=PlainTextResponse, summary="Prometheus metrics")
async def metrics(service=Depends(get_service)):
    counts = await run_in_threadpool(service.counts_by_status)
    m = service.metrics
    lines = ["# HELP t2v_jobs Jobs by status.", "# TYPE t2v_jobs gauge"]
    lines += [f't2v_jobs{{status="{s}"}} {counts.get(s, 0)}' for s in STATUSES]
    lines += ["# HELP t2v_queue_depth Queued jobs.", "# TYPE t2v_queue_depth gauge", f"t2v_queue_depth {counts.get('queued', 0)}"]
    with m.lock:
        lines += [
            "# HELP t2v_step_seconds Denoising step time.", "# TYPE t2v_step_seconds summary",
            f"t2v_step_seconds_sum {m.step_seconds_sum:.6f}", f"t2v_step_seconds_count {m.steps_done}",
            "# HELP t2v_generation_seconds Job run time, start to files written.", "# TYPE t2v_generation_seconds summary",
            f"t2v_generation_seconds_sum {m.generation_seconds_sum:.6f}", f"t2v_generation_seconds_count {m.jobs_done}",
        ]
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")
