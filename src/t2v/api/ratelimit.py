"""Per-key token-bucket rate limiting (in process)."""

from __future__ import annotations

import threading
import time


class RateLimiter:
    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last time)
        self._lock = threading.Lock()

    def hit(self, key: str, count: int, per_s: float) -> float | None:
        """Take one token; returns None when allowed, else seconds until the next token."""
        rate = count / per_s
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(count), now))
            tokens = min(float(count), tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return None
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / rate
