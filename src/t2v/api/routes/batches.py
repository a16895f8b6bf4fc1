"""/v1/batches: many jobs queued under one id (JSON, or JSON Lines: one request a line), their counts, and
cancel, pause or resume as a whole."""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from t2v.api.deps import base_url, get_service, rate_limited
from t2v.api.responses import CHANGING, KEYED, body_doc, errors
from t2v.api.schemas import BatchCreate, VideoCreate
from t2v.contract import Batch
from t2v.errors import InvalidRequest
from t2v.requests import JobOptions
from t2v.service.batches import BatchInvalid

router = APIRouter(prefix="/v1/batches", tags=["batches"])
JSONL = ("application/jsonl", "application/x-ndjson", "application/x-jsonlines", "text/plain")
BATCH_DOC = body_doc(BatchCreate, **{"application/x-ndjson": {"schema": {
    "type": "string", "description": "JSON Lines (also as application/jsonl): one request a line; priority, "
                                     "idempotency_key and partial as query parameters."}}})


def view(batch: dict[str, Any], base: str) -> dict[str, Any]:
    return {"id": batch["id"], "object": "batch", "created_at": batch["created_at"].isoformat(),
            "total": batch["total"], "counts": batch["counts"], "job_ids": batch["job_ids"],
            "links": {"self": f"{base}/v1/batches/{batch['id']}",
                      "jobs": [f"{base}/v1/videos/{j}" for j in batch["job_ids"]]}}


def line_fields(item: Any, line: int) -> dict[str, Any]:
    """A line's request fields, checked as POST /v1/videos checks its body (BatchInvalid-style problem text)."""
    if not isinstance(item, dict):
        raise InvalidRequest("not a JSON object", field="request")
    for name in JobOptions.names():
        if name in item:
            raise InvalidRequest(f"{name}: set it for the whole batch, not on one line", field=name)
    try:
        return VideoCreate.model_validate(item).generation_fields()
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        name = ".".join(str(p) for p in first["loc"]) or "request"
        raise InvalidRequest(f"{name}: {'unknown field' if first['type'] == 'extra_forbidden' else first['msg']}",
                             field=name) from None


@router.post("", status_code=202, summary="Queue a batch of jobs (JSON or JSON Lines); all or none unless partial",
             openapi_extra=BATCH_DOC, response_model=Batch,
             responses={200: {"model": Batch, "description": "The batch an idempotency key already made"},
                        **errors(*CHANGING, 409, 429)})
async def create_batch(request: Request, partial: bool = False, priority: int = 0,
                       idempotency_key: str | None = None, service=Depends(get_service), key=Depends(rate_limited)):
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    raw = await request.body()
    try:
        if media in JSONL:
            items = [json.loads(ln) for ln in raw.decode("utf-8").splitlines() if ln.strip()]
            options = {"partial": partial, "priority": priority, "idempotency_key": idempotency_key}
        else:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict) or not isinstance(body.get("requests"), list):
                raise InvalidRequest("requests: send {\"requests\": [...]} (or JSON Lines, one request a line)",
                                     field="requests")
            unknown = set(body) - {"requests", "partial", "priority", "idempotency_key"}
            if unknown:
                raise InvalidRequest(f"{sorted(unknown)[0]}: unknown field", field=sorted(unknown)[0])
            items, options = body["requests"], {"partial": bool(body.get("partial", False)),
                                                "priority": body.get("priority", 0),
                                                "idempotency_key": body.get("idempotency_key")}
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise InvalidRequest(f"body: not valid JSON ({type(e).__name__})", field="body") from None
    if not isinstance(options["priority"], int) or not -100 <= options["priority"] <= 100:
        raise InvalidRequest(f"priority: {options['priority']!r} is not a whole number from -100 to 100",
                             field="priority")
    fields, problems = [], []
    for line, item in enumerate(items, 1):
        try:
            fields.append(line_fields(item, line))
        except InvalidRequest as e:
            problems.append({"line": line, "field": e.field, "message": str(e)})
            fields.append(None)
    kept = [f for f in fields if f is not None]
    lines = [i for i, f in enumerate(fields, 1) if f is not None]  # the submitted line of each kept request
    if problems and not options["partial"]:  # every invalid line named, those the service refuses too
        _, more = await run_in_threadpool(service.batches.check_batch, kept, api_key=key)
        raise BatchInvalid(sorted(problems + [{**p, "line": lines[p["line"] - 1]} for p in more],
                                  key=lambda p: p["line"]))
    try:
        out = await run_in_threadpool(service.batches.submit_batch, kept, api_key=key, priority=options["priority"],
                                      idempotency_key=options["idempotency_key"], partial=options["partial"])
    except BatchInvalid as e:  # the service's own checks (model, limits): lines as the client numbered them
        raise BatchInvalid(problems + [{**p, "line": lines[p["line"] - 1]} for p in e.problems]) from None
    invalid = problems + [{**p, "line": lines[p["line"] - 1]} for p in out["invalid"]]
    data = {**view(out["batch"], base_url(request)), "invalid": sorted(invalid, key=lambda p: p["line"])}
    return JSONResponse(data, status_code=202 if out["created"] else 200,
                        headers={"Location": data["links"]["self"]})


@router.get("/{batch_id}", summary="A batch: its jobs and their counts by state", response_model=Batch,
            responses=errors(*KEYED, 404, 429))
async def get_batch(batch_id: str, request: Request, service=Depends(get_service), key=Depends(rate_limited)):
    return view(await run_in_threadpool(service.batches.get_batch, batch_id, api_key=key), base_url(request))


@router.post("/{batch_id}/{action}", summary="Cancel, pause or resume every job of the batch that can be",
             response_model=Batch, responses=errors(*KEYED, 404, 429))
async def control_batch(batch_id: str, action: Literal["cancel", "pause", "resume"], request: Request,
                        service=Depends(get_service), key=Depends(rate_limited)):
    batch = await run_in_threadpool(service.batches.control_batch, batch_id, action, api_key=key)
    return {**view(batch, base_url(request)), "changed": batch["changed"]}
