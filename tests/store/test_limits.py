"""Shared limits in the database (rate buckets, stream leases, the queue quota) and purge requests, on SQLite
and on a real PostgreSQL, from threads and from separate processes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import update

from t2v.store import Repository, open_database
from t2v.store.limits import QueueFull
from t2v.store.tables import EventStream, Job, RateBucket


def req(prompt: str = "a cat") -> dict:
    return {"prompt": prompt, "num_frames": 8, "seed": 1}


def set_row(engine, table, where, **values) -> None:
    with engine.begin() as conn:
        conn.execute(update(table.__table__).where(where).values(**values))


def ago(seconds: float) -> datetime:
    return datetime.now(timezone.utc) - timedelta(seconds=seconds)


@pytest.fixture
def key(repo):
    return repo.keys.create_key("k", "a" * 64, "t2v_aaaa")


@pytest.fixture
def other_repo(engine_url):
    """A second Repository over its own engine: what another server process holds."""
    engine = open_database(engine_url)
    yield Repository(engine)
    engine.dispose()


def run_processes(code: str, args: list[str], tmp_path, n: int = 4) -> list:
    """Run ``code`` in ``n`` processes that start together; each prints a JSON value."""
    go = tmp_path / "go"
    script = textwrap.dedent(
        """
        import json, os, sys, time
        from t2v.store import Repository, open_database
        url, go = sys.argv[1:3]
        repo = Repository(open_database(url))
        while not os.path.exists(go):
            time.sleep(0.01)
        """
    ) + textwrap.dedent(code)
    procs = [subprocess.Popen([sys.executable, "-c", script, *args, str(i)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for i in range(n)]
    time.sleep(0.5)
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * n, [e.decode() for _, e in outs]
    return [json.loads(out) for out, _ in outs]


# ---- rate buckets -------------------------------------------------------------------------------


def test_rate_bucket_shared_by_two_repositories(repo, other_repo, key, engine):
    got = [(repo if i % 2 else other_repo).limits.take_rate_token(key.id, 3, 3600.0) for i in range(6)]
    assert got[:3] == [None, None, None]
    assert all(wait is not None and 1000 < wait <= 1200 for wait in got[3:])  # one token per 20 minutes
    # 20 minutes later one token is back, and only one.
    set_row(engine, RateBucket, RateBucket.__table__.c.api_key_id == key.id, updated_at=ago(1200))
    assert repo.limits.take_rate_token(key.id, 3, 3600.0) is None
    assert other_repo.limits.take_rate_token(key.id, 3, 3600.0) is not None
    # A bucket never holds more than its size, however long it sat idle.
    set_row(engine, RateBucket, RateBucket.__table__.c.api_key_id == key.id, updated_at=ago(10 * 86400))
    assert [repo.limits.take_rate_token(key.id, 3, 3600.0) is None for _ in range(4)] == [True, True, True, False]


def test_rate_buckets_are_per_key(repo, key):
    other = repo.keys.create_key("other", "b" * 64, "t2v_bbbb")
    assert repo.limits.take_rate_token(key.id, 1, 60.0) is None
    assert repo.limits.take_rate_token(key.id, 1, 60.0) is not None
    assert repo.limits.take_rate_token(other.id, 1, 60.0) is None


def test_rate_limit_holds_across_processes(repo, key, engine_url, tmp_path):
    """Four processes ask for 5 tokens each at once from a 7/hour bucket: exactly 7 are granted."""
    code = """
        print(json.dumps(sum(repo.limits.take_rate_token(sys.argv[3], 7, 3600.0) is None for _ in range(5))))
    """
    granted = run_processes(code, [engine_url, str(tmp_path / "go"), key.id], tmp_path)
    assert sum(granted) == 7


# ---- the queue quota -------------------------------------------------------------------------------


def test_max_queued_counted_with_the_insert(repo, other_repo, key):
    barrier = threading.Barrier(8)

    def submit(i):
        barrier.wait()
        try:
            return (repo if i % 2 else other_repo).create_job(req(f"j{i}"), api_key_id=key.id, max_queued=2)[0].id
        except QueueFull as e:
            assert (e.queued, e.limit) == (2, 2) and "limit 2" in str(e)
            return None

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(submit, range(8)))
    assert sum(i is not None for i in ids) == 2
    assert repo.count_jobs(status="queued", api_key_id=key.id) == 2
    # Only queued jobs count: one claimed frees a place; other keys and keyless jobs are not limited.
    repo.claims.claim_next("w")
    repo.create_job(req(), api_key_id=key.id, max_queued=2)
    with pytest.raises(QueueFull):
        repo.create_job(req(), api_key_id=key.id, max_queued=2)
    assert repo.create_job(req(), max_queued=2)[1]


def test_idempotent_retry_at_the_quota_returns_the_job(repo, key):
    job, _ = repo.create_job(req(), api_key_id=key.id, idempotency_key="x", max_queued=1)
    again, created = repo.create_job(req(), api_key_id=key.id, idempotency_key="x", max_queued=1)
    assert again.id == job.id and not created


def test_max_queued_holds_across_processes(repo, key, engine_url, tmp_path):
    code = """
        from t2v.store.limits import QueueFull
        made = 0
        for i in range(4):
            try:
                repo.create_job({"prompt": "p"}, api_key_id=sys.argv[3], max_queued=3)
                made += 1
            except QueueFull:
                pass
        print(json.dumps(made))
    """
    made = run_processes(code, [engine_url, str(tmp_path / "go"), key.id], tmp_path)
    assert sum(made) == 3 and repo.count_jobs(status="queued", api_key_id=key.id) == 3


# ---- event-stream leases ---------------------------------------------------------------------------


def test_stream_leases_capped_per_key(repo, other_repo, key, engine):
    a = repo.limits.acquire_stream(key.id, 2, 30)
    b = other_repo.limits.acquire_stream(key.id, 2, 30)
    assert a and b and a != b
    assert repo.limits.acquire_stream(key.id, 2, 30) is None and other_repo.limits.acquire_stream(key.id, 2, 30) is None
    assert repo.limits.count_streams(key.id) == 2
    other = repo.keys.create_key("other", "b" * 64, "t2v_bbbb")
    assert repo.limits.acquire_stream(other.id, 2, 30)  # per key
    assert other_repo.limits.release_stream(a) and not repo.limits.release_stream(a)
    c = repo.limits.acquire_stream(key.id, 2, 30)
    assert c and repo.limits.acquire_stream(key.id, 2, 30) is None
    # A lease its process stopped renewing (it crashed) no longer counts, and cannot be renewed.
    set_row(engine, EventStream, EventStream.__table__.c.id == b, expires_at=ago(1))
    assert repo.limits.count_streams(key.id) == 1
    assert repo.limits.acquire_stream(key.id, 2, 30)
    assert not repo.limits.renew_stream(b, 30)
    assert repo.limits.renew_stream(c, 30)


def test_stream_cap_holds_across_processes(repo, key, engine_url, tmp_path):
    code = """
        print(json.dumps(sum(repo.limits.acquire_stream(sys.argv[3], 5, 60) is not None for _ in range(3))))
    """
    got = run_processes(code, [engine_url, str(tmp_path / "go"), key.id], tmp_path)
    assert sum(got) == 5 and repo.limits.count_streams(key.id) == 5


# ---- purge requests --------------------------------------------------------------------------------


def test_purge_request_lives_on_the_job_row(repo, other_repo):
    running = repo.create_job(req())[0]
    repo.claims.claim_next("w")
    queued = repo.create_job(req())[0]
    got = other_repo.request_cancel(running.id, purge=True)
    assert got.status == "running" and got.cancel_requested and got.purge_requested
    assert other_repo.request_cancel(queued.id, purge=True).status == "cancelled"
    assert repo.limits.pending_purges() == [queued.id]  # running: its worker purges once it has stopped it
    assert repo.mark_cancelled(running.id, "w")
    assert sorted(repo.limits.pending_purges()) == sorted([running.id, queued.id])
    assert repo.limits.purge_done(running.id) and repo.limits.purge_done(queued.id)
    assert repo.limits.pending_purges() == []
    done = repo.get_job(running.id)
    assert not done.purge_requested and done.files == [] and done.status == "cancelled"
    # Without purge nothing is asked; a running job's purge_done is refused (its files are in use).
    plain = repo.create_job(req())[0]
    assert not repo.request_cancel(plain.id).purge_requested
    busy = repo.create_job(req())[0]
    repo.claims.claim_next("w2")
    repo.request_cancel(busy.id, purge=True)
    assert not repo.limits.purge_done(busy.id) and repo.get_job(busy.id).purge_requested


def test_purge_of_a_job_whose_worker_died_is_found(repo, engine):
    job = repo.create_job(req())[0]
    repo.claims.claim_next("dead")
    repo.request_cancel(job.id, purge=True)
    assert repo.limits.pending_purges() == []
    set_row(engine, Job, Job.__table__.c.id == job.id, heartbeat_at=ago(60))
    assert repo.claims.requeue_stale(10) == []  # cancel was asked: cancelled, not requeued
    assert repo.get_job(job.id).status == "cancelled"
    assert repo.limits.pending_purges() == [job.id]
