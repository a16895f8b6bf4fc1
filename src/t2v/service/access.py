"""A part of :class:`~t2v.service.JobService` (its ``access``): API keys, rate tokens and event-stream leases; and
:func:`visible_job`, reading a job as a key may see it.

Front ends (API, web UI, CLI, desktop) call these as ``service.access.<method>`` and never the repository
(``service.repo``) itself: the service is the one door to the store (``tests/test_architecture.py`` checks it).
Everything here is shared between server processes through the database.
"""

from __future__ import annotations

from t2v.errors import JobNotFound
import t2v.service.keys as apikeys
from t2v.service.ports import JobTable, KeyTable, LimitTable


def visible_job(jobs: JobTable, job_id: str, api_key=None):
    """The job, when ``api_key`` (a key row; None: no check) may see it; else :class:`JobNotFound`. Another key's
    job reads exactly as a missing one, so ids cannot be probed."""
    job = jobs.get_job(job_id) if "\x00" not in job_id else None  # ids never hold NUL; PostgreSQL rejects it
    if job is None or (api_key is not None and job.api_key_id != api_key.id):
        raise JobNotFound(f"no job with id {job_id}")
    return job


class AccessService:
    """API keys, rate tokens and stream leases, over the store's ``keys`` and ``limits`` (and its job rows, to
    cancel a revoked key's jobs)."""

    def __init__(self, jobs: JobTable, keys: KeyTable, limits: LimitTable) -> None:
        self.jobs, self.keys, self.limits = jobs, keys, limits

    # -- API keys --------------------------------------------------------------------------------
    def has_keys(self) -> bool:
        """True when the server runs with API keys (any key, revoked ones included, as before)."""
        return bool(self.keys.list_keys())

    def list_keys(self) -> list:
        """All keys, revoked ones included, oldest first (rows without the secret)."""
        return self.keys.list_keys()

    def create_key(self, name: str, *, rate: str | None = None, max_queued: int | None = None,
                   max_cost: int | None = None, max_running: int | None = None, max_priority: int | None = None):
        """Create a key; returns ``(row, plaintext)``. The plaintext is shown once and stored nowhere
        (see :func:`t2v.service.keys.create_key` for the options)."""
        return apikeys.create_key(self.keys, name, rate=rate, max_queued=max_queued, max_cost=max_cost,
                                  max_running=max_running, max_priority=max_priority)

    def rotate_webhook_secret(self, key_id: str, overlap_s: float = 86400.0) -> str:
        """A new webhook secret for the key (returned once); the old one signs beside it for ``overlap_s``."""
        return apikeys.rotate_webhook_secret(self.keys, key_id, overlap_s)

    def revoke_key(self, key_id: str) -> bool:
        """Revoke a key; False when there is no such key or it was revoked already. The key's queued and running
        jobs are cancelled (a running one stops at its worker's next check, in whichever process): nobody can
        see them any more, so they would only spend the server's time and fire their webhooks."""
        if not self.keys.revoke_key(key_id):
            return False
        while queued := self.jobs.list_jobs(status="queued", api_key_id=key_id, limit=200):  # each one leaves the list
            for job in queued:
                self.jobs.request_cancel(job.id)
        for job in self.jobs.list_jobs(status="running", api_key_id=key_id, limit=200):  # flagged; they stay running
            self.jobs.request_cancel(job.id)
        return True

    def authenticate(self, token: str | None):
        """The active key for a bearer token, or None."""
        return apikeys.authenticate(self.keys, token)

    # -- rate limits -----------------------------------------------------------------------------
    def take_rate_token(self, api_key) -> float | None:
        """Count one request against the key's rate limit (``api_key.rate_limit``, e.g. ``30/minute``), across
        every server process. None when the request may go ahead (also for no key or no limit), else the
        seconds until the next token."""
        if api_key is None or not api_key.rate_limit:
            return None
        count, per_s = apikeys.parse_rate(api_key.rate_limit)
        return self.limits.take_rate_token(api_key.id, count, per_s)

    # -- event-stream leases (the cap on open /events streams per key) ------------------------------
    def acquire_stream(self, api_key_id: str, cap: int, lease_s: float) -> str | None:
        """Lease a slot for an open event stream of this key for ``lease_s`` seconds: the lease id, or None
        when the key already holds ``cap`` unexpired leases."""
        return self.limits.acquire_stream(api_key_id, cap, lease_s)

    def renew_stream(self, lease_id: str, lease_s: float) -> bool:
        """Extend a lease to ``lease_s`` seconds from now; False when it expired and was removed."""
        return self.limits.renew_stream(lease_id, lease_s)

    def release_stream(self, lease_id: str) -> bool:
        return self.limits.release_stream(lease_id)
