"""API keys: random tokens shown once, stored as sha256 hashes, with optional rate and queue limits, and
each with its own webhook signing secret (Standard Webhooks ``whsec_``), shown once and rotatable."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from datetime import timedelta

from t2v.errors import InvalidRequest
from t2v.requests.queue import PRIORITY_RANGE
from t2v.service.ports import KeyTable
from t2v.store.db import utcnow

PREFIX = "t2v_"
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour|day)\s*$")
_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def parse_rate(rate: str) -> tuple[int, float]:
    """``"30/minute"`` -> (30, 60.0)."""
    m = _RATE.match(rate or "")
    if not m or int(m.group(1)) < 1:
        raise InvalidRequest(f"rate {rate!r} must look like 30/minute (per second, minute, hour or day)", field="rate")
    return int(m.group(1)), float(_UNITS[m.group(2)])


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def create_key(table: KeyTable, name: str, *, rate: str | None = None, max_queued: int | None = None, max_cost: int | None = None,
               max_running: int | None = None, max_priority: int | None = None):
    """Create a key; returns ``(row, plaintext)``. The plaintext is not stored anywhere; the key's webhook
    signing secret is ``row.webhook_secret`` (show it once, like the key).

    ``max_cost``: the largest frames x width x height x steps one request with this key may ask for (the
    server's ``T2V_MAX_COST`` still applies when lower). ``max_priority``: the highest priority its jobs may have
    (None: the server's ``T2V_MAX_PRIORITY``).
    """
    name = (name or "").strip()
    if not name:
        raise InvalidRequest("name must not be empty", field="name")
    if rate is not None:
        parse_rate(rate)
    if max_queued is not None and max_queued < 1:
        raise InvalidRequest("max-queued must be at least 1", field="max_queued")
    if max_running is not None and max_running < 1:
        raise InvalidRequest("max-running must be at least 1 (jobs of this key running at once)", field="max_running")
    if max_cost is not None and max_cost < 1:
        raise InvalidRequest("max-cost must be at least 1 (frames x width x height x steps)", field="max_cost")
    lo, hi = PRIORITY_RANGE
    if max_priority is not None and not lo <= max_priority <= hi:
        raise InvalidRequest(f"max-priority must be from {lo} to {hi}; nearest valid: {min(hi, max(lo, max_priority))}",
                             field="max_priority")
    plaintext = PREFIX + secrets.token_urlsafe(32)
    row = table.create_key(name, hash_key(plaintext), plaintext[: len(PREFIX) + 6], rate_limit=rate, max_queued=max_queued,
                          max_cost=max_cost, webhook_secret=new_webhook_secret(), max_running=max_running,
                          max_priority=max_priority)
    return row, plaintext


def rotate_webhook_secret(table: KeyTable, key_id: str, overlap_s: float) -> str:
    """Give the key a new webhook secret and return it; the old one keeps signing beside it (both signatures in
    ``webhook-signature``) for ``overlap_s`` seconds, so receivers can switch without dropping a delivery."""
    if not 0 <= overlap_s <= 30 * 86400:
        raise InvalidRequest(f"overlap {overlap_s:g} s is out of range: 0 to 30 days (e.g. 24h)", field="overlap")
    secret = new_webhook_secret()
    if not table.rotate_webhook_secret(key_id, secret, utcnow() + timedelta(seconds=overlap_s)):
        raise InvalidRequest(f"no active key with id {key_id}", field="key_id")
    return secret


def authenticate(table: KeyTable, token: str | None):
    """The active key for a bearer token, or None."""
    if not token:
        return None
    return table.get_key_by_hash(hash_key(token.strip()))
