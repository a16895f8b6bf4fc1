"""A typed Python client for the t2v REST API (``t2v serve``): :class:`Client` (sync) and :class:`AsyncClient`
(asyncio), over httpx, with typed answers (pydantic) and the job's Server-Sent Events (httpx-sse). It needs
neither torch nor t2v itself."""

from __future__ import annotations

from t2v_client.aio import AsyncClient
from t2v_client.errors import (APIError, ClientError, ConnectionFailed, Conflict, Errors, InvalidRequest, NotFound,
                               RateLimited, ServerUnavailable, Unauthorized, WaitTimeout)
from t2v_client.models import (Asset, Event, Job, JobFile, JobPage, JobResult, Limits, Model, ModelList, ModelRules,
                               Progress, RecordPage)
from t2v_client.sync import Client
from t2v_client.version import __version__

__all__ = ["APIError", "Asset", "AsyncClient", "Client", "ClientError", "Conflict", "ConnectionFailed", "Errors",
           "Event", "InvalidRequest", "Job", "JobFile", "JobPage", "JobResult", "Limits", "Model", "ModelList",
           "ModelRules", "NotFound", "Progress", "RateLimited", "RecordPage", "ServerUnavailable", "Unauthorized",
           "WaitTimeout", "__version__"]
