"""Webhooks: POST the final job JSON to ``callback_url``, signed in the Standard Webhooks format, retried with backoff.

Headers ``webhook-id`` (the job's id, the same on every attempt, so receivers drop repeats),
``webhook-timestamp`` (unix seconds) and ``webhook-signature`` (``v1,<base64 HMAC-SHA256 of
"<id>.<timestamp>.<body>">``, signed by the ``standardwebhooks`` library) with the secret of the job's API key:
each key has its own, so a receiver that checks it accepts only its own key's jobs; while a rotation overlaps,
the old and the new secret both sign (two space-separated signatures). A job made without a key (a keyless
server) is signed with the server's secret. With ``T2V_WEBHOOK_LEGACY_SIGNATURE`` the old
``X-T2V-Signature: t=<unix time>,v1=<hex hmac of "<t>.<body>">`` with the server's secret and
``X-T2V-Delivery: <job id>`` are sent too. Deliveries never block the
queue: a bounded pool of senders (``T2V_WEBHOOK_WORKERS`` per process, at most ``T2V_WEBHOOK_PER_KEY``
of them for one key) sends them, and a delivery with no free sender stays due in the database for the
next pass; a receiver that hangs costs one sender, not a thread per job. Every attempt's outcome is
kept on the job row.

Many server processes may share one database: a delivery is claimed in the database with a lease
(:meth:`Repository.claim_webhook`) that outlasts one attempt (``webhook_timeout_s``, a hard overall
limit, plus :data:`LEASE_MARGIN_S`) and is renewed before each attempt, so only its holder sends.
The URL is checked again before every attempt (:mod:`t2v.service.netguard`) and the connection goes
to the addresses checked. The job keeps only :data:`DELIVERY_ERROR` as the error; the details go to
the server's log.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from standardwebhooks import Webhook

from t2v.service.keys import new_webhook_secret
from t2v.service.netguard import UnsafeCallback, post_pinned, resolve_target
from t2v.service.views import job_to_dict

if TYPE_CHECKING:
    from t2v.service.service import JobService

logger = logging.getLogger(__name__)

ID_HEADER, TIMESTAMP_HEADER, STANDARD_SIGNATURE_HEADER = "webhook-id", "webhook-timestamp", "webhook-signature"
#: The old headers, sent beside the standard ones only with ``T2V_WEBHOOK_LEGACY_SIGNATURE``.
SIGNATURE_HEADER = "X-T2V-Signature"
DELIVERY_HEADER = "X-T2V-Delivery"
#: The only error text a job's webhook shows: what failed stays in the server's log.
DELIVERY_ERROR = "delivery failed (HTTP status or timeout)"
#: How much longer than one attempt's timeout a delivery lease lasts.
LEASE_MARGIN_S = 15.0


def webhook_secret(settings) -> str:
    """The server's secret (for jobs made without a key, and the legacy header): ``T2V_WEBHOOK_SECRET``, or one
    generated once (``whsec_...``) and kept in $T2V_HOME/webhook-secret."""
    if settings.webhook_secret:
        return settings.webhook_secret
    path = settings.home / "webhook-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(new_webhook_secret())
    return path.read_text().strip()


def signer(secret: str) -> Webhook:
    """The Standard Webhooks signer of a secret: a ``whsec_`` secret is its base64 bytes, any other string (an
    older server secret, a ``T2V_WEBHOOK_SECRET`` of one's own) its UTF-8 bytes."""
    return Webhook(secret if secret.startswith("whsec_") else secret.encode())


def standard_headers(msg_id: str, body: bytes, secrets_: list[str], timestamp: int) -> dict[str, str]:
    """``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` (one signature per secret)."""
    when = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    signatures = " ".join(signer(s).sign(msg_id, when, body.decode()) for s in secrets_)
    return {ID_HEADER: msg_id, TIMESTAMP_HEADER: str(timestamp), STANDARD_SIGNATURE_HEADER: signatures}


def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, body: bytes, header: str, *, tolerance_s: float = 300) -> bool:
    """Check a legacy ``X-T2V-Signature`` header as a receiver would."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        ts = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs(time.time() - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, body, ts), header)


class WebhookSender:
    """Sends the webhooks of one process; a delivery runs only while this sender holds its lease."""

    def __init__(self, service: JobService) -> None:
        self.service = service
        self.base_delay_s = service.settings.webhook_backoff_s
        self.timeout_s = service.settings.webhook_timeout_s
        self.lease_s = self.timeout_s + LEASE_MARGIN_S
        self.owner = f"{socket.gethostname()[:32]}:{os.getpid()}:{secrets.token_hex(6)}"[:64]
        self.workers, self.per_key = service.settings.webhook_workers, service.settings.webhook_per_key
        self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="t2v-webhook")
        self.lock = threading.Lock()
        self.busy: Counter[str] = Counter()  # deliveries in this process, by key ("" without keys)

    def deliver_async(self, job) -> bool:
        """Claim the job's delivery and hand it to a free sender; False when it is not due, another sender
        (thread or process) holds it, or every sender (or the key's share of them) is busy: it stays due in
        the database, and the janitor's next pass tries again."""
        key = job.api_key_id or ""
        with self.lock:
            if sum(self.busy.values()) >= self.workers or self.busy[key] >= self.per_key:
                return False
            self.busy[key] += 1
        try:
            claimed = self.service.repo.claim_webhook(job.id, self.owner, self.lease_s)
            if claimed is not None:
                self.pool.submit(self._deliver_then_free, claimed, key)
                return True
        except BaseException:
            self._free(key)
            raise
        self._free(key)
        return False

    def in_flight(self) -> int:
        """Deliveries this process is sending now."""
        with self.lock:
            return sum(self.busy.values())

    def close(self) -> None:
        """Stop taking deliveries; those running end at their next attempt (the service is stopping)."""
        self.pool.shutdown(wait=False, cancel_futures=True)

    def _free(self, key: str) -> None:
        with self.lock:
            self.busy[key] -= 1
            if self.busy[key] <= 0:
                del self.busy[key]

    def _deliver_then_free(self, job, key: str) -> None:
        try:
            self._deliver(job)
        finally:
            self._free(key)

    def retry_pending(self) -> None:
        for job in self.service.repo.pending_webhooks():
            if self.service.stopping.is_set():
                return
            self.deliver_async(job)

    def _deliver(self, job) -> None:
        svc, repo = self.service, self.service.repo
        ended = False
        try:
            body = json.dumps(job_to_dict(svc, job), sort_keys=True).encode()
            ended = self._attempts(job, body)
        except Exception:
            logger.exception("webhook for job %s failed", job.id)
        finally:
            if not ended:  # stopping, or an unexpected error: let another process resume it at once
                try:
                    repo.release_webhook(job.id, self.owner)
                except Exception:
                    logger.exception("could not release the webhook lease of job %s", job.id)

    def signing_secrets(self, job) -> list[str]:
        """The secrets that sign this job's webhook now: its key's (both while a rotation overlaps), else the
        server's (a keyless job, or a key made before keys had their own secret)."""
        key = self.service.repo.keys.get_key(job.api_key_id) if job.api_key_id else None
        return (key.signing_secrets(datetime.now(timezone.utc)) if key else []) or [webhook_secret(self.service.settings)]

    def headers(self, job, body: bytes) -> dict[str, str]:
        now = int(time.time())
        headers = {"Content-Type": "application/json", "User-Agent": "t2v-webhook/1",
                   **standard_headers(job.id, body, self.signing_secrets(job), now)}
        if self.service.settings.webhook_legacy_signature:
            headers |= {DELIVERY_HEADER: job.id, SIGNATURE_HEADER: sign(webhook_secret(self.service.settings), body, now)}
        return headers

    def _attempts(self, job, body: bytes) -> bool:
        """Attempt until delivered, failed, the lease is lost or the service stops; True unless
        the lease is still held (stopping)."""
        svc, repo = self.service, self.service.repo
        total = svc.settings.webhook_retries + 1
        attempts = job.webhook_attempts or 0
        while attempts < total:
            if svc.stopping.is_set():
                return False
            try:
                target = resolve_target(job.callback_url, svc.settings.webhook_allow)
            except UnsafeCallback as e:
                logger.warning("webhook for job %s refused at delivery: %s", job.id, e.reason)
                repo.end_webhook_attempt(job.id, self.owner, "failed", error=DELIVERY_ERROR)
                return True
            number = repo.start_webhook_attempt(job.id, self.owner, self.lease_s)
            if number is None:
                logger.info("webhook for job %s: lease lost to another process", job.id)
                return True
            attempts = number
            try:
                status = post_pinned(target, body, self.headers(job, body), timeout_s=self.timeout_s)
                outcome = f"HTTP {status}"
            except Exception as e:  # httpcore errors, OSError, ssl errors: all the same to the job
                status, outcome = None, f"{type(e).__name__}: {e}"
            if status is not None and 200 <= status < 300:
                repo.end_webhook_attempt(job.id, self.owner, "delivered")
                logger.info("webhook for job %s delivered (attempt %d, %s)", job.id, attempts, outcome)
                return True
            logger.warning("webhook for job %s: attempt %d of %d failed: %s", job.id, attempts, total, outcome)
            if attempts >= total:
                break
            delay = self.base_delay_s * 2 ** (attempts - 1)
            if not repo.end_webhook_attempt(job.id, self.owner, "pending", error=DELIVERY_ERROR,
                                            hold_s=delay + self.lease_s):
                return True
            svc.stopping.wait(delay)
        repo.end_webhook_attempt(job.id, self.owner, "failed", error=DELIVERY_ERROR)
        return True
