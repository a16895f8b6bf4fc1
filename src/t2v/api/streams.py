"""The cap on open ``/events`` streams per API key, shared by every server process through the database.
(The request rate is shared the same way: :meth:`t2v.service.access.AccessService.take_rate_token`.)"""

from __future__ import annotations

import anyio
from fastapi import Depends, HTTPException
from fastapi.concurrency import run_in_threadpool

from t2v.api.deps import current_key, get_service


class StreamLease:
    """The slot an open ``/events`` stream holds among its key's ``cap`` (none without API keys).

    The slot is a row in ``event_streams`` leased for ``LEASE_S`` seconds and renewed every ``RENEW_S``
    while the stream stays open, so the cap holds across server processes and a crashed process's
    streams stop counting once their lease runs out. ``service`` holds the leases
    (:meth:`~t2v.service.access.AccessService.acquire_stream`, ``renew_stream``, ``release_stream``).
    """

    LEASE_S = 30.0
    RENEW_S = 10.0

    def __init__(self, service, key, cap: int) -> None:
        self.service, self.key, self.cap = service, key, cap
        self.id: str | None = None

    @property
    def message(self) -> str:
        return (f"too many open event streams for this API key (limit {self.cap}, T2V_MAX_STREAMS_PER_KEY); "
                "close one and retry")

    def acquire(self) -> bool:
        """Take a slot; False when the key has ``cap`` open streams."""
        if self.key is None:
            return True
        self.id = self.service.access.acquire_stream(self.key.id, self.cap, self.LEASE_S)
        return self.id is not None

    def renew(self) -> bool:
        """Extend the lease; a lease that ran out (a stalled process) is taken again if a slot is free."""
        if self.id is None or self.service.access.renew_stream(self.id, self.LEASE_S):
            return True
        return self.acquire()

    def release(self) -> None:
        if self.id is not None:
            lease_id, self.id = self.id, None
            self.service.access.release_stream(lease_id)


async def open_stream(job_id: str, service=Depends(get_service), key=Depends(current_key)):
    """A FastAPI dependency of ``GET /v1/videos/{job_id}/events``: before the stream starts, 404 unless the job is
    the caller's and 429 when the key has no free slot; then the stream's :class:`StreamLease`, released once the
    stream has ended (also when the client went away)."""
    await run_in_threadpool(service.get, job_id, api_key=key)
    lease = StreamLease(service, key, service.settings.max_streams_per_key)
    if not await run_in_threadpool(lease.acquire):
        raise HTTPException(429, lease.message, headers={"Retry-After": str(int(lease.RENEW_S))})
    try:
        yield lease
    finally:  # shielded: a cancelled request still frees its slot
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(lease.release)
