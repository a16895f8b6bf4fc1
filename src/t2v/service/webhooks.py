"""Webhooks: POST the final job JSON to ``callback_url``, signed with HMAC-SHA256, retried with backoff.

Header ``X-T2V-Signature: t=<unix time>,v1=<hex hmac of "<t>.<body>">``. Deliveries run on their own
threads and never block the queue; every attempt's outcome is kept on the job row.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from t2v.service.service import JobService

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-T2V-Signature"


def webhook_secret(settings) -> str:
    """The configured secret, or one generated once and kept in $T2V_HOME/webhook-secret."""
    if settings.webhook_secret:
        return settings.webhook_secret
    path = settings.home / "webhook-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, body: bytes, header: str, *, tolerance_s: float = 300) -> bool:
    """Check a signature header as a receiver would."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        ts = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs(time.time() - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, body, ts), header)


class WebhookSender:
    def __init__(self, service: JobService) -> None:
        self.service = service
        self.base_delay_s = service.settings.webhook_backoff_s
        self._inflight: set[str] = set()
        self._lock = threading.Lock()

    def deliver_async(self, job) -> None:
        with self._lock:
            if job.id in self._inflight:
                return
            self._inflight.add(job.id)
        self.service.repo.set_webhook_status(job.id, "pending", attempts=job.webhook_attempts or 0)
        threading.Thread(target=self._deliver, args=(job.id,), name=f"t2v-webhook-{job.id}", daemon=True).start()

    def retry_pending(self) -> None:
        for job in self.service.repo.pending_webhooks():
            self.deliver_async(job)

    def _deliver(self, job_id: str) -> None:
        import httpx

        from t2v.api.schemas import job_to_dict

        svc = self.service
        try:
            job = svc.repo.get_job(job_id)
            body = json.dumps(job_to_dict(svc, job), sort_keys=True).encode()
            secret = webhook_secret(svc.settings)
            attempts = job.webhook_attempts or 0
            error = None
            while attempts <= svc.settings.webhook_retries and not svc.stopping.is_set():
                attempts += 1
                ts = int(time.time())
                headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, body, ts),
                           "User-Agent": "t2v-webhook/1"}
                try:
                    r = httpx.post(job.callback_url, content=body, headers=headers, timeout=10.0)
                    if 200 <= r.status_code < 300:
                        svc.repo.set_webhook_status(job_id, "delivered", attempts=attempts)
                        return
                    error = f"HTTP {r.status_code}"
                except httpx.HTTPError as e:
                    error = f"{type(e).__name__}: {e}"
                svc.repo.set_webhook_status(job_id, "pending", attempts=attempts, error=error)
                svc.stopping.wait(self.base_delay_s * 2 ** (attempts - 1))
            if attempts > svc.settings.webhook_retries:
                svc.repo.set_webhook_status(job_id, "failed", attempts=attempts, error=error)
        except Exception:
            logger.exception("webhook for job %s failed", job_id)
        finally:
            with self._lock:
                self._inflight.discard(job_id)
