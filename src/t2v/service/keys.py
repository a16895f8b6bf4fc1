"""API keys: random tokens shown once, stored as sha256 hashes, with optional rate and queue limits."""

from __future__ import annotations

import hashlib
import re
import secrets

from t2v.errors import InvalidRequest

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


def create_key(repo, name: str, *, rate: str | None = None, max_queued: int | None = None, max_cost: int | None = None):
    """Create a key; returns ``(row, plaintext)``. The plaintext is not stored anywhere.

    ``max_cost``: the largest frames x width x height x steps one request with this key may ask for (the
    server's ``T2V_MAX_COST`` still applies when lower).
    """
    name = (name or "").strip()
    if not name:
        raise InvalidRequest("name must not be empty", field="name")
    if rate is not None:
        parse_rate(rate)
    if max_queued is not None and max_queued < 1:
        raise InvalidRequest("max-queued must be at least 1", field="max_queued")
    if max_cost is not None and max_cost < 1:
        raise InvalidRequest("max-cost must be at least 1 (frames x width x height x steps)", field="max_cost")
    plaintext = PREFIX + secrets.token_urlsafe(32)
    row = repo.create_key(name, hash_key(plaintext), plaintext[: len(PREFIX) + 6], rate_limit=rate, max_queued=max_queued,
                          max_cost=max_cost)
    return row, plaintext


def authenticate(repo, token: str | None):
    """The active key for a bearer token, or None."""
    if not token:
        return None
    return repo.get_key_by_hash(hash_key(token.strip()))
