"""Sortable ids: 26-character ULIDs (48-bit millisecond timestamp + 80 random bits, Crockford base32).

Ids made by one process are strictly increasing: within the same millisecond (or if
the clock steps back) the random part of the previous id grows by a fresh random
amount (1 to 2**64), so sorting ids sorts by creation time and listing by id lists by
time, while the next id is never the previous one + 1: knowing one id does not give
its neighbours.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime, timezone

__all__ = ["new_id", "id_time", "is_id"]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DECODE = {c: i for i, c in enumerate(_ALPHABET)}
_RAND_BITS = 80
_RAND_MAX = (1 << _RAND_BITS) - 1
_TIME_MAX = (1 << 48) - 1
_STEP_BITS = 64  # same-millisecond ids step up by 1..2**64: about 2**17 ids per millisecond before rolling over

_lock = threading.Lock()
_last_ms = -1
_last_rand = 0


def _encode(value: int) -> str:
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id() -> str:
    """A new id, greater than every id this process made before."""
    global _last_ms, _last_rand
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            # Same millisecond (or the clock went back): keep order by stepping up a random amount.
            ms = _last_ms
            rand = _last_rand + 1 + int.from_bytes(os.urandom(_STEP_BITS // 8), "big")
            if rand > _RAND_MAX:
                ms += 1
                rand = int.from_bytes(os.urandom(10), "big")
        else:
            rand = int.from_bytes(os.urandom(10), "big")
        if ms > _TIME_MAX:
            raise OverflowError("timestamp does not fit in 48 bits")
        _last_ms, _last_rand = ms, rand
        return _encode((ms << _RAND_BITS) | rand)


def is_id(value: object) -> bool:
    """Whether ``value`` has the shape of an id from :func:`new_id` (26 characters of the alphabet, in range)."""
    return (isinstance(value, str) and len(value) == 26 and all(ch in _DECODE for ch in value)
            and value[0] in "01234567")


def id_time(value: str) -> datetime:
    """The creation time (UTC, millisecond precision) encoded in an id from :func:`new_id`."""
    if len(value) != 26:
        raise ValueError(f"not a 26-character id: {value!r}")
    n = 0
    for ch in value.upper():
        try:
            n = (n << 5) | _DECODE[ch]
        except KeyError:
            raise ValueError(f"invalid character {ch!r} in id {value!r}") from None
    return datetime.fromtimestamp((n >> _RAND_BITS) / 1000, tz=timezone.utc)
