"""The fair queue and paused jobs in claim order, on SQLite and PostgreSQL: the next job comes from the key whose
jobs had the least worker time recently, and a key's priorities order its own jobs only (unless the operator puts
priority first across keys); a paused job is never claimed; fair_window_s=0 is priority, then oldest first."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from t2v.store.db import utcnow
from t2v.store.tables import Job

WINDOW = 600.0


def req(prompt: str) -> dict:
    return {"prompt": prompt, "num_frames": 4}


def ran_for(repo, job_id: str, seconds: float) -> None:
    """The job ran ``seconds`` and finished just now."""
    now = utcnow()
    with repo.db.write() as conn:
        conn.execute(update(Job.__table__).where(Job.__table__.c.id == job_id).values(
            status="succeeded", started_at=now - timedelta(seconds=seconds), finished_at=now))


def test_a_single_job_of_a_quiet_key_goes_before_a_busy_keys_long_queue(repo):
    a = repo.keys.create_key("a", "h1", "t2v_a")
    b = repo.keys.create_key("b", "h2", "t2v_b")
    a_jobs = [repo.create_job(req(f"a{i}"), api_key_id=a.id)[0].id for i in range(20)]
    first = repo.claims.claim_next("w", fair_window_s=WINDOW)
    assert first.id == a_jobs[0], "nobody has used the worker yet: the oldest"
    b_job = repo.create_job(req("b"), api_key_id=b.id)[0].id
    ran_for(repo, first.id, 30)
    assert repo.claims.claim_next("w", fair_window_s=WINDOW).id == b_job, "b has used no worker time, a 30 s"
    ran_for(repo, b_job, 5)
    assert repo.claims.claim_next("w", fair_window_s=WINDOW).id == a_jobs[1]


def test_priority_orders_a_keys_own_jobs_and_the_fair_share_decides_between_keys(repo):
    """One key giving a job the highest priority does not jump another key's job: across keys the fair share
    decides; the priority puts that job first among its own key's."""
    a = repo.keys.create_key("a", "h1", "t2v_a")
    b = repo.keys.create_key("b", "h2", "t2v_b")
    a1, a2 = (repo.create_job(req(n), api_key_id=a.id)[0].id for n in ("a1", "a2"))
    ran_for(repo, repo.claims.claim_next("w", fair_window_s=WINDOW).id, 30)
    b1 = repo.create_job(req("b1"), api_key_id=b.id)[0].id
    urgent = repo.create_job(req("urgent"), api_key_id=a.id, priority=100)[0].id
    assert repo.claims.claim_next("w", fair_window_s=WINDOW).id == b1, "a has used 30 s, b nothing: b's turn"
    ran_for(repo, b1, 40)
    assert repo.claims.claim_next("w", fair_window_s=WINDOW).id == urgent, "a's turn: its own highest priority first"
    assert repo.claims.claim_next("w", fair_window_s=WINDOW).id == a2
    assert a1


def test_the_operator_can_put_priority_before_the_fair_share_and_no_window_is_priority_then_oldest(repo):
    a = repo.keys.create_key("a", "h1", "t2v_a")
    b = repo.keys.create_key("b", "h2", "t2v_b")
    a1, a2 = (repo.create_job(req(n), api_key_id=a.id)[0].id for n in ("a1", "a2"))
    ran_for(repo, repo.claims.claim_next("w").id, 30)
    b1 = repo.create_job(req("b1"), api_key_id=b.id)[0].id
    urgent = repo.create_job(req("urgent"), api_key_id=a.id, priority=5)[0].id
    assert repo.claims.claim_next("w", fair_window_s=WINDOW, priority_across_keys=True).id == urgent, (
        "priority across keys: the higher priority first, whoever's")
    assert repo.claims.claim_next("w").id == a2, "fair_window_s=0: the oldest"
    assert repo.claims.claim_next("w").id == b1
    assert a1


def test_running_jobs_count_up_to_now_and_old_work_is_forgotten(repo):
    a = repo.keys.create_key("a", "h1", "t2v_a")
    b = repo.keys.create_key("b", "h2", "t2v_b")
    now = utcnow()
    a_old = repo.create_job(req("a-old"), api_key_id=a.id)[0].id
    with repo.db.write() as conn:  # a's hour-long job ended 20 minutes ago: outside the window
        conn.execute(update(Job.__table__).where(Job.__table__.c.id == a_old).values(
            status="succeeded", started_at=now - timedelta(hours=1, minutes=20), finished_at=now - timedelta(minutes=20)))
    b_running = repo.create_job(req("b-running"), api_key_id=b.id)[0].id
    assert repo.claims.claim_next("w1", fair_window_s=WINDOW).id == b_running
    with repo.db.write() as conn:  # b's job has been running for a minute
        conn.execute(update(Job.__table__).where(Job.__table__.c.id == b_running).values(
            started_at=now - timedelta(minutes=1)))
    b_next = repo.create_job(req("b-next"), api_key_id=b.id)[0].id
    a_next = repo.create_job(req("a-next"), api_key_id=a.id)[0].id
    assert repo.claims.claim_next("w2", fair_window_s=WINDOW).id == a_next, "b's running minute counts; a's old hour not"
    assert repo.claims.claim_next("w3", fair_window_s=WINDOW).id == b_next


def test_a_paused_job_is_never_claimed_until_resumed(repo):
    held = repo.create_job(req("held"))[0].id
    later = repo.create_job(req("later"))[0].id
    assert repo.controls.pause(held).paused is True
    assert repo.queue_position(held) is None and repo.queue_position(later) == 1
    for window in (0.0, WINDOW):
        job = repo.claims.claim_next(f"w{window}", fair_window_s=window)
        assert job is None or job.id == later
    assert repo.get_job(held).status == "queued"
    repo.controls.resume(held)
    assert repo.claims.claim_next("w", fair_window_s=WINDOW).id == held


def test_a_batch_is_one_transaction_idempotent_within_the_queue_limit(repo):
    import pytest

    from t2v.store.limits import QueueFull

    key = repo.keys.create_key("k", "h9", "t2v_k", max_queued=4)
    batch_id, created = repo.batches.create_batch([req("a"), req("b"), req("c")], priority=3, api_key_id=key.id,
                                          idempotency_key="nightly")
    assert created and repo.batches.create_batch([req("x")], api_key_id=key.id, idempotency_key="nightly") == (batch_id, False)
    batch = repo.batches.get_batch(batch_id)
    assert batch["total"] == 3 and batch["counts"]["queued"] == 3 and batch["api_key_id"] == key.id
    assert {repo.get_job(j).priority for j in batch["job_ids"]} == {3}
    with pytest.raises(QueueFull, match="2 more would pass its limit of 4"):
        repo.batches.create_batch([req("d"), req("e")], api_key_id=key.id, max_queued=key.max_queued)
    assert repo.batches.get_batch(batch_id)["total"] == 3 and len(repo.list_jobs(limit=50)) == 3, "nothing of it queued"
    repo.controls.pause(batch["job_ids"][0])
    counts = repo.batches.get_batch(batch_id)["counts"]
    assert (counts["queued"], counts["paused"]) == (2, 1)
