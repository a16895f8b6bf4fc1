"""A typed Python client for the t2v REST API (``t2v serve``): :class:`Client` (sync) and :class:`AsyncClient`
(asyncio). They are :mod:`t2v_client`'s (the ``t2v-client`` distribution, which t2v ships too), raising the
exceptions of :mod:`t2v.client.errors`: each is also a :class:`t2v.errors.T2VError`. See docs/client.md."""

from __future__ import annotations

import t2v_client
from t2v_client import Asset, Event, Job, JobFile, JobPage, Model, ModelList, Progress

from t2v.client.errors import (APIError, ConnectionFailed, Conflict, Errors, InvalidRequest, NotFound, RateLimited,
                               ServerUnavailable, Unauthorized, WaitTimeout)
from t2v.errors import T2VError


class Client(t2v_client.Client):
    """:class:`t2v_client.Client`, raising t2v's errors (:mod:`t2v.client.errors`)."""

    errors = Errors


class AsyncClient(t2v_client.AsyncClient):
    """:class:`t2v_client.AsyncClient`, raising t2v's errors (:mod:`t2v.client.errors`)."""

    errors = Errors


__all__ = ["APIError", "Asset", "AsyncClient", "Client", "Conflict", "ConnectionFailed", "Event", "InvalidRequest",
           "Job", "JobFile", "JobPage", "Model", "ModelList", "NotFound", "Progress", "RateLimited",
           "ServerUnavailable", "T2VError", "Unauthorized", "WaitTimeout"]
