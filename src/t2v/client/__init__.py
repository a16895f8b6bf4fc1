"""A typed Python client for the t2v REST API (``t2v serve``): :class:`Client` (sync) and
:class:`AsyncClient` (asyncio), over httpx. See docs/client.md."""

from __future__ import annotations

from t2v.client.aio import AsyncClient
from t2v.client.errors import (APIError, ConnectionFailed, Conflict, InvalidRequest, NotFound, RateLimited,
                               ServerUnavailable, Unauthorized, WaitTimeout)
from t2v.client.models import Asset, Event, Job, JobFile, JobPage, Model, ModelList, Progress
from t2v.client.sync import Client
from t2v.errors import T2VError

__all__ = ["APIError", "Asset", "AsyncClient", "Client", "Conflict", "ConnectionFailed", "Event", "InvalidRequest",
           "Job", "JobFile", "JobPage", "Model", "ModelList", "NotFound", "Progress", "RateLimited",
           "ServerUnavailable", "T2VError", "Unauthorized", "WaitTimeout"]
