"""/v1/records: generation records of finished jobs, from the job table or from MongoDB."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool

from t2v.api.deps import get_service, rate_limited
from t2v.api.responses import KEYED, errors
from t2v.contract import RecordPage

router = APIRouter(prefix="/v1/records", tags=["records"])


@router.get("", summary="Records of finished jobs (the caller's), newest first", response_model=RecordPage,
            responses=errors(*KEYED, 429, 503))
async def list_records(source: Literal["sql", "mongodb"] = "sql",
                       q: str | None = Query(None, max_length=500, description="Words of the prompt"),
                       limit: int = Query(50, ge=1, le=500), service=Depends(get_service), key=Depends(rate_limited)):
    """``source=sql``: from the job table; ``source=mongodb``: from the record store (``T2V_RECORDS_URL``), whose
    copy may lag by a few seconds, and whose ``q`` is MongoDB's text search. 503 when MongoDB cannot be reached."""
    from t2v.service.records import public_record, search_records  # deferred: imports alembic, httpx, PIL

    items = await run_in_threadpool(search_records, service, source=source, query=q, api_key=key, limit=limit)
    items = [public_record(doc, service.settings) for doc in items]  # no server path in an answer
    return {"source": source, "items": items}
