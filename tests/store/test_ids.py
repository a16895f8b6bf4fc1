"""Ids made in the same millisecond still increase, by a fresh random step each time: not previous + 1."""

from __future__ import annotations

from t2v.store.ids import new_id

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def as_int(value: str) -> int:
    n = 0
    for ch in value:
        n = (n << 5) | CROCKFORD.index(ch)
    return n


def test_ids_in_one_millisecond_step_up_by_fresh_random_amounts():
    ids = [as_int(new_id()) for _ in range(5000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    same_ms = [(a, b) for a, b in zip(ids, ids[1:]) if a >> 80 == b >> 80]
    assert len(same_ms) > 100  # 5000 ids in a tight loop share milliseconds many times over
    steps = [b - a for a, b in same_ms]
    assert all(1 < s <= 2**64 for s in steps)  # never the previous id + 1, never past the random step's range
    assert len(set(steps)) == len(steps)  # fresh random bits each time: no two steps alike
    assert all(bin(a ^ b).count("1") > 1 for a, b in same_ms)  # they differ in more than the last bit
    assert max(steps) > 2**60  # steps span the whole 64-bit range, not a few small values
