"""Repository, migrations and ids, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import inspect, text, update

from t2v.store import (
    JOB_STATUSES,
    Repository,
    default_database_url,
    head_revision,
    id_time,
    new_id,
    normalize_url,
    open_database,
)
from t2v.store.tables import Job, metadata

CROCKFORD = set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")


def req(prompt: str = "a cat", **extra) -> dict:
    return {"prompt": prompt, "num_frames": 8, "seed": 1, **extra}


def set_column(engine, job_id: str, **values) -> None:
    with engine.begin() as conn:
        conn.execute(update(Job.__table__).where(Job.__table__.c.id == job_id).values(**values))


def assert_utc(dt: datetime | None) -> None:
    assert dt is not None and dt.tzinfo is not None and dt.utcoffset() == timedelta(0)


# ---- ids ---------------------------------------------------------------------------------


def test_ids_unique_sortable_and_time_ordered():
    before = datetime.now(timezone.utc) - timedelta(milliseconds=5)
    ids = [new_id() for _ in range(10_000)]
    after = datetime.now(timezone.utc) + timedelta(milliseconds=5)
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)  # many share a millisecond: monotonic increments keep the order
    assert all(len(i) == 26 and set(i) <= CROCKFORD for i in ids)
    assert before <= id_time(ids[0]) <= id_time(ids[-1]) <= after


def test_ids_unique_across_threads():
    with ThreadPoolExecutor(8) as pool:
        chunks = list(pool.map(lambda _: [new_id() for _ in range(2000)], range(8)))
    flat = [i for chunk in chunks for i in chunk]
    assert len(set(flat)) == len(flat)
    assert all(chunk == sorted(chunk) for chunk in chunks)


def test_id_time_rejects_garbage():
    with pytest.raises(ValueError):
        id_time("short")
    with pytest.raises(ValueError):
        id_time("U" * 26)  # U is not in Crockford's alphabet


# ---- opening and migrations ----------------------------------------------------------------


def test_migrations_applied_on_open_and_idempotent(engine_url):
    engine = open_database(engine_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head_revision()]
        assert {"jobs", "api_keys", "alembic_version"} <= set(inspect(engine).get_table_names())
        Repository(engine).create_job(req())
    finally:
        engine.dispose()
    again = open_database(engine_url)  # already at head: nothing to do, data kept
    try:
        with again.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
        assert Repository(again).count_jobs() == 1
    finally:
        again.dispose()


@pytest.mark.parametrize("create_new", [False, True], ids=["migrated", "made-new"])
def test_the_schema_matches_the_tables_migrated_or_made_new(engine_url, create_new):
    """A new database is made from the tables at once and stamped; every migration run in turn gives the same."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from t2v.store.db import upgrade

    engine = open_database(engine_url, migrate=False)
    try:
        upgrade(engine, create_new=create_new)
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(ctx, metadata) == []
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head_revision()]
        upgrade(engine)  # at the newest revision already, not empty: nothing is made again
        Repository(engine).create_job(req())
    finally:
        engine.dispose()


def schema_of(engine) -> dict:
    """Every table's columns (by name: batch migrations add them at the end), indexes, keys and constraints."""
    insp = inspect(engine)
    found = {}
    for table in sorted(insp.get_table_names()):
        columns = sorted((c["name"], str(c["type"]), c["nullable"], str(c.get("default"))) for c in insp.get_columns(table))
        indexes = sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]), str(sorted((k, str(getattr(v, "text", v))) for k, v in i.get("dialect_options", {}).items())))
                         for i in insp.get_indexes(table))
        unique = sorted(tuple(u["column_names"]) for u in insp.get_unique_constraints(table))
        foreign = sorted((tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]),
                          str(f.get("options"))) for f in insp.get_foreign_keys(table))
        found[table] = (columns, indexes, unique, foreign, tuple(insp.get_pk_constraint(table)["constrained_columns"]))
    return found


def test_a_new_database_gets_the_schema_every_migration_in_turn_gives(engine_url, request):
    """Columns with their types, nullability and defaults, partial indexes and keys: alike both ways."""
    import uuid

    from t2v.store.db import upgrade

    if engine_url.startswith("sqlite"):
        other_url = engine_url.replace("t2v.db", "migrated.db")
    else:
        import psycopg

        server = request.getfixturevalue("pg_server")
        name = f"t2v_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(server.admin_dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        other_url = server.url(name)
    made, migrated = open_database(engine_url, migrate=False), open_database(other_url, migrate=False)
    try:
        upgrade(made)
        upgrade(migrated, create_new=False)
        assert schema_of(made) == schema_of(migrated)
        assert "jobs" in schema_of(made)
    finally:
        made.dispose()
        migrated.dispose()


def test_sqlite_connection_settings(tmp_path):
    path = tmp_path / "nested" / "dir" / "t2v.db"
    engine = open_database(f"sqlite:///{path}")
    try:
        assert path.exists()
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    finally:
        engine.dispose()


def test_foreign_key_enforced(repo):
    with pytest.raises(Exception):
        repo.create_job(req(), api_key_id=new_id())
    assert repo.count_jobs() == 0


def test_urls(tmp_path):
    class S:
        home = tmp_path

    assert default_database_url(S()) == f"sqlite:///{tmp_path}/t2v.db"
    S.database_url = "postgresql://u@h/db"
    assert default_database_url(S()) == "postgresql://u@h/db"
    assert normalize_url("postgres://u:p@h:5/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite"


def test_opening_concurrently_from_processes(engine_url):
    """Several processes opening a fresh database at once: one migrates, none fails."""
    code = "import sys; from t2v.store import open_database; open_database(sys.argv[1]).dispose()"
    procs = [subprocess.Popen([sys.executable, "-c", code, engine_url], stderr=subprocess.PIPE) for _ in range(4)]
    errors = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors
    engine = open_database(engine_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head_revision()]
    finally:
        engine.dispose()


# ---- create, idempotency, read ------------------------------------------------------------------


def test_create_and_get(repo):
    job, created = repo.create_job(req("A Red Fox"), priority=3, callback_url="http://x/cb")
    assert created
    got = repo.get_job(job.id)
    assert got == job
    assert got.status == "queued" and got.priority == 3 and got.request == req("A Red Fox")
    assert got.prompt == "a red fox" and got.callback_url == "http://x/cb"
    assert (got.step, got.total, got.attempts, got.cancel_requested) == (0, 0, 0, False)
    assert got.started_at is None and got.finished_at is None and got.worker_id is None
    assert_utc(got.created_at)
    assert_utc(got.updated_at)
    assert abs(got.created_at - datetime.now(timezone.utc)) < timedelta(seconds=30)
    assert repo.get_job(new_id()) is None


def test_idempotency(repo):
    k1 = repo.keys.create_key("one", "a" * 64, "t2v_aaaa")
    k2 = repo.keys.create_key("two", "b" * 64, "t2v_bbbb")
    j1, c1 = repo.create_job(req("first"), api_key_id=k1.id, idempotency_key="abc")
    j1b, c1b = repo.create_job(req("different body"), api_key_id=k1.id, idempotency_key="abc")
    assert c1 and not c1b and j1b.id == j1.id and j1b.request["prompt"] == "first"
    j2, c2 = repo.create_job(req(), api_key_id=k2.id, idempotency_key="abc")
    assert c2 and j2.id != j1.id  # another key's "abc" is another job
    j3, c3 = repo.create_job(req(), idempotency_key="abc")
    j3b, c3b = repo.create_job(req(), idempotency_key="abc")
    assert c3 and not c3b and j3b.id == j3.id and j3.api_key_id is None
    j4, c4 = repo.create_job(req())
    j5, c5 = repo.create_job(req())
    assert c4 and c5 and j4.id != j5.id  # no idempotency key: always new
    assert repo.count_jobs() == 5
    assert repo.count_jobs(api_key_id=k1.id) == 1


@pytest.mark.parametrize("with_key", [False, True])
def test_idempotency_under_concurrency(repo, with_key):
    key_id = repo.keys.create_key("k", "c" * 64, "t2v_cccc").id if with_key else None
    barrier = threading.Barrier(8)

    def submit(_):
        barrier.wait()
        return repo.create_job(req(), api_key_id=key_id, idempotency_key="same")

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(submit, range(8)))
    assert len({job.id for job, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert repo.count_jobs() == 1


def test_list_newest_first_with_cursor_pagination(repo):
    ids = [repo.create_job(req(f"prompt {i}"))[0].id for i in range(23)]
    seen, cursor, pages = [], None, 0
    while True:
        page = repo.list_jobs(limit=5, cursor=cursor)
        if not page:
            break
        pages += 1
        seen.extend(j.id for j in page)
        cursor = page[-1].id
    assert pages == 5
    assert seen == list(reversed(ids))  # every job once, newest first
    assert [j.id for j in repo.list_jobs(limit=3)] == list(reversed(ids))[:3]


def test_list_filters(repo):
    key = repo.keys.create_key("k", "d" * 64, "t2v_dddd")
    cat = repo.create_job(req("A Cat on a SKATEBOARD"))[0]
    dog = repo.create_job(req("a dog running"), api_key_id=key.id)[0]
    pct = repo.create_job(req("100% Über cool_thing"))[0]
    repo.claims.claim_next("w")  # cat -> running
    assert [j.id for j in repo.list_jobs(status="running")] == [cat.id]
    assert [j.id for j in repo.list_jobs(status="queued")] == [pct.id, dog.id]
    assert [j.id for j in repo.list_jobs(api_key_id=key.id)] == [dog.id]
    assert [j.id for j in repo.list_jobs(query="skateboard")] == [cat.id]
    assert [j.id for j in repo.list_jobs(query="A CAT")] == [cat.id]
    assert [j.id for j in repo.list_jobs(query="über")] == [pct.id]  # non-ASCII case folding
    assert [j.id for j in repo.list_jobs(query="0%")] == [pct.id]  # % is literal
    assert repo.list_jobs(query="c_o") == []  # _ is literal, not a wildcard ("coo" must not match)
    assert [j.id for j in repo.list_jobs(query="cool_")] == [pct.id]
    assert {j.id for j in repo.list_jobs(query="a")} == {cat.id, dog.id}
    assert repo.list_jobs(query="a", status="queued", api_key_id=key.id)[0].id == dog.id
    assert repo.list_jobs(query="zebra") == []


# ---- claiming --------------------------------------------------------------------------------


def test_claim_order_priority_then_age(repo):
    low = repo.create_job(req("low"), priority=0)[0]
    high1 = repo.create_job(req("high1"), priority=5)[0]
    mid = repo.create_job(req("mid"), priority=1)[0]
    high2 = repo.create_job(req("high2"), priority=5)[0]
    order = [repo.claims.claim_next("w1").id for _ in range(4)]
    assert order == [high1.id, high2.id, mid.id, low.id]
    assert repo.claims.claim_next("w1") is None
    job = repo.get_job(high1.id)
    assert job.status == "running" and job.worker_id == "w1" and job.attempts == 1
    assert_utc(job.started_at)
    assert_utc(job.heartbeat_at)


def test_a_keys_running_cap_holds_its_jobs_back_and_lets_others_pass(repo):
    capped = repo.keys.create_key("capped", "h1", "t2v_a", max_running=1)
    free = repo.keys.create_key("free", "h2", "t2v_b")
    a1 = repo.create_job(req("a1"), priority=9, api_key_id=capped.id)[0]
    a2 = repo.create_job(req("a2"), priority=9, api_key_id=capped.id)[0]
    b1 = repo.create_job(req("b1"), priority=0, api_key_id=free.id)[0]
    n1 = repo.create_job(req("n1"), priority=0)[0]
    assert repo.claims.claim_next("w1").id == a1.id
    # a2 has the higher priority but its key is at its cap: the others' jobs run meanwhile
    assert [repo.claims.claim_next("w2").id, repo.claims.claim_next("w3").id] == [b1.id, n1.id]
    assert repo.claims.claim_next("w4") is None and repo.get_job(a2.id).status == "queued"
    assert repo.claims.fail_job(a1.id, "w1", "boom")  # the key's running job ends: its next one may run
    assert repo.claims.claim_next("w4").id == a2.id


def test_running_caps_hold_under_concurrent_claims(repo):
    capped = repo.keys.create_key("capped", "h1", "t2v_a", max_running=2)
    for i in range(12):
        repo.create_job(req(f"c{i}"), api_key_id=capped.id)
    barrier = threading.Barrier(6)
    claimed = []

    def worker(n):
        barrier.wait()
        job = repo.claims.claim_next(f"w{n}")
        if job is not None:
            claimed.append(job.id)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(claimed) == 2 and len(repo.list_jobs(status="running", api_key_id=capped.id, limit=50)) == 2


def test_concurrent_claims_from_threads(repo):
    ids = {repo.create_job(req(f"j{i}"), priority=i % 3)[0].id for i in range(50)}
    barrier = threading.Barrier(8)

    def worker(n):
        barrier.wait()
        got = []
        while (job := repo.claims.claim_next(f"w{n}")) is not None:
            assert job.worker_id == f"w{n}"
            got.append(job.id)
        return got

    with ThreadPoolExecutor(8) as pool:
        claimed = [i for got in pool.map(worker, range(8)) for i in got]
    assert len(claimed) == 50 and set(claimed) == ids  # every job exactly once
    assert repo.counts_by_status()["running"] == 50
    assert all(j.attempts == 1 for j in repo.list_jobs(limit=100))


def test_concurrent_claims_from_processes(repo, engine_url, tmp_path):
    ids = {repo.create_job(req(f"j{i}"))[0].id for i in range(60)}
    go = tmp_path / "go"
    code = textwrap.dedent(
        """
        import json, os, sys, time
        from t2v.store import Repository, open_database
        url, go, name = sys.argv[1:]
        repo = Repository(open_database(url))
        while not os.path.exists(go):
            time.sleep(0.01)
        got = []
        while (job := repo.claims.claim_next(name)) is not None:
            got.append(job.id)
        print(json.dumps(got))
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, engine_url, str(go), f"p{n}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for n in range(4)
    ]
    time.sleep(0.5)
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [e.decode() for _, e in outs]
    claimed = [i for out, _ in outs for i in json.loads(out)]
    assert len(claimed) == 60 and set(claimed) == ids
    by_worker = {j.id: j.worker_id for j in repo.list_jobs(limit=100)}
    for n, (out, _) in enumerate(outs):
        assert all(by_worker[i] == f"p{n}" for i in json.loads(out))


# ---- running jobs ---------------------------------------------------------------------------


def test_progress_and_heartbeat_only_for_owner(repo):
    job = repo.create_job(req())[0]
    assert not repo.update_progress(job.id, "w1", stage="denoise", step=1, total=10, eta_s=5.0)  # still queued
    repo.claims.claim_next("w1")
    assert not repo.update_progress(job.id, "w2", stage="denoise", step=1, total=10, eta_s=5.0)
    assert not repo.heartbeat(job.id, "w2")
    assert repo.update_progress(job.id, "w1", stage="denoise", step=3, total=10, eta_s=2.5)
    got = repo.get_job(job.id)
    assert (got.stage, got.step, got.total, got.eta_s) == ("denoise", 3, 10, 2.5)
    old = datetime.now(timezone.utc) - timedelta(hours=1)
    set_column(repo.engine, job.id, heartbeat_at=old)
    assert repo.heartbeat(job.id, "w1")
    assert repo.get_job(job.id).heartbeat_at > old + timedelta(minutes=59)


def test_eta_counts_down_from_when_the_worker_wrote_it(repo):
    job = repo.create_job(req())[0]
    repo.claims.claim_next("w1")
    repo.update_progress(job.id, "w1", stage="decode", step=10, total=10, eta_s=12.0)
    got = repo.get_job(job.id)
    assert got.eta_now(got.updated_at + timedelta(seconds=4)) == 8.0
    assert got.eta_now(got.updated_at + timedelta(minutes=1)) == 0.0  # late: never below 0
    assert got.eta_now(got.updated_at - timedelta(seconds=3)) == 12.0  # a reader's clock behind the worker's
    # Only a running job's ETA counts down: any other is as written.
    assert dataclasses.replace(got, status="cancelled").eta_now(got.updated_at + timedelta(minutes=1)) == 12.0


def test_finish_exactly_once(repo):
    job = repo.create_job(req())[0]
    repo.claims.claim_next("w1")
    repo.update_progress(job.id, "w1", stage="decode", step=7, total=10, eta_s=1.0)
    files = [{"format": "mp4", "path": "/out/a.mp4", "bytes": 1234, "sha256": "f" * 64}]
    result = {"seed": 1, "frames": 8, "nested": {"ok": True}}
    assert not repo.finish_job(job.id, "w2", result=result, files=files)  # not the owner
    assert repo.finish_job(job.id, "w1", result=result, files=files)
    assert not repo.finish_job(job.id, "w1", result={"other": 1}, files=[])
    assert not repo.claims.fail_job(job.id, "w1", "late failure")
    got = repo.get_job(job.id)
    assert got.status == "succeeded" and got.result == result and got.files == files
    assert got.step == got.total == 10 and got.error is None
    assert_utc(got.finished_at)
    assert got.finished_at >= got.started_at >= got.created_at


def test_fail_job(repo):
    job = repo.create_job(req())[0]
    assert not repo.claims.fail_job(job.id, "w1", "boom")  # queued: nothing to fail
    repo.claims.claim_next("w1")
    assert repo.claims.fail_job(job.id, "w1", "CUDA out of memory")
    got = repo.get_job(job.id)
    assert got.status == "failed" and got.error == "CUDA out of memory" and got.finished_at is not None
    assert not repo.finish_job(job.id, "w1", result={}, files=[])


def test_cancel_semantics(repo):
    queued = repo.create_job(req("q"), priority=-1)[0]
    running = repo.create_job(req("r"), priority=1)[0]
    done = repo.create_job(req("d"), priority=2)[0]
    assert repo.claims.claim_next("w").id == done.id
    repo.finish_job(done.id, "w", result={}, files=[])
    assert repo.claims.claim_next("w").id == running.id

    c = repo.request_cancel(queued.id)
    assert c.status == "cancelled" and c.finished_at is not None
    assert repo.claims.claim_next("w2") is None  # a cancelled job is never claimed

    c = repo.request_cancel(running.id)
    assert c.status == "running" and c.cancel_requested
    assert repo.is_cancel_requested(running.id)
    assert repo.update_progress(running.id, "w", stage="denoise", step=1, total=2, eta_s=None)
    assert not repo.mark_cancelled(running.id, "other")
    assert repo.mark_cancelled(running.id, "w")
    got = repo.get_job(running.id)
    assert got.status == "cancelled" and got.finished_at is not None
    assert not repo.finish_job(running.id, "w", result={}, files=[])

    before = repo.get_job(done.id)
    after = repo.request_cancel(done.id)
    assert after == before and after.status == "succeeded" and not after.cancel_requested
    assert not repo.is_cancel_requested(done.id)
    assert repo.request_cancel(new_id()) is None
    assert not repo.is_cancel_requested(new_id())
    assert repo.counts_by_status() == {"queued": 0, "running": 0, "succeeded": 1, "failed": 0, "cancelled": 2}


def test_requeue_stale(repo):
    stale = repo.create_job(req("stale"))[0]
    fresh = repo.create_job(req("fresh"))[0]
    doomed = repo.create_job(req("doomed"))[0]
    for _ in range(3):
        repo.claims.claim_next("w1")
    old = datetime.now(timezone.utc) - timedelta(minutes=10)
    set_column(repo.engine, stale.id, heartbeat_at=old)
    set_column(repo.engine, doomed.id, heartbeat_at=old)
    repo.request_cancel(doomed.id)
    first_start = repo.get_job(stale.id).started_at

    assert repo.claims.requeue_stale(60) == [stale.id]
    got = repo.get_job(stale.id)
    assert got.status == "queued" and got.worker_id is None and got.attempts == 1
    assert got.started_at == first_start
    assert repo.get_job(fresh.id).status == "running"
    assert repo.get_job(doomed.id).status == "cancelled"  # its cancel was requested: not requeued
    assert not repo.heartbeat(stale.id, "w1")  # the old worker lost it
    assert not repo.finish_job(stale.id, "w1", result={}, files=[])

    again = repo.claims.claim_next("w2")
    assert again.id == stale.id and again.attempts == 2 and again.started_at == first_start
    assert repo.claims.requeue_stale(60) == []


def test_requeue_worker(repo):
    a = repo.create_job(req("a"))[0]
    b = repo.create_job(req("b"))[0]
    repo.claims.claim_next("w1")
    repo.claims.claim_next("w2")
    assert repo.claims.requeue_worker("w1") == [a.id]
    assert repo.get_job(a.id).status == "queued" and repo.get_job(b.id).worker_id == "w2"
    assert repo.claims.requeue_worker("nobody") == []


def test_clean_hand_back_costs_no_attempt(repo):
    job = repo.create_job(req())[0]
    assert repo.claims.claim_next("w1").attempts == 1
    assert repo.claims.requeue_worker("w1") == [job.id]
    assert repo.get_job(job.id).attempts == 0 and repo.get_job(job.id).error is None
    assert repo.claims.claim_next("w2").attempts == 1


def test_stale_jobs_get_at_most_max_attempts(repo):
    job = repo.create_job(req())[0]
    old = datetime.now(timezone.utc) - timedelta(minutes=10)
    for attempt in (1, 2):
        assert repo.claims.claim_next(f"w{attempt}").attempts == attempt
        set_column(repo.engine, job.id, heartbeat_at=old)  # its process died
        assert repo.claims.requeue_stale(60, max_attempts=3) == [job.id]
        got = repo.get_job(job.id)
        assert got.status == "queued" and got.worker_id is None
        assert got.error == f"attempt {attempt} of 3 failed: the worker process stopped during the job (killed or crashed); retrying"
    repo.claims.claim_next("w3")
    set_column(repo.engine, job.id, heartbeat_at=old)
    assert repo.claims.requeue_stale(60, max_attempts=3) == []
    got = repo.get_job(job.id)
    assert got.status == "failed" and got.attempts == 3 and got.finished_at is not None
    assert got.error == "failed after 3 attempts: the worker process stopped during the job (killed or crashed)"
    assert repo.claims.claim_next("w4") is None


def test_retry_job_requeues_until_the_limit_then_fails(repo):
    job = repo.create_job(req())[0]
    assert repo.claims.retry_job(job.id, "w1", "ImportError: x", max_attempts=2) is None  # queued: not held by w1
    repo.claims.claim_next("w1")
    assert repo.claims.retry_job(job.id, "other", "ImportError: x", max_attempts=2) is None  # not this worker's
    assert repo.claims.retry_job(job.id, "w1", "ImportError: cannot import name 'AutoencoderKL'", max_attempts=2) == "queued"
    got = repo.get_job(job.id)
    assert got.status == "queued" and got.worker_id is None and got.step == 0 and got.finished_at is None
    assert got.error == "attempt 1 of 2 failed: ImportError: cannot import name 'AutoencoderKL'; retrying"
    assert repo.claims.claim_next("w2").attempts == 2
    assert repo.claims.retry_job(job.id, "w2", "MemoryError: ", max_attempts=2) == "failed"
    got = repo.get_job(job.id)
    assert got.status == "failed" and got.error == "failed after 2 attempts: MemoryError: "
    assert not repo.finish_job(job.id, "w2", result={}, files=[])


def test_retry_job_of_a_cancelled_job_cancels_it(repo):
    job = repo.create_job(req())[0]
    repo.claims.claim_next("w1")
    repo.request_cancel(job.id)
    assert repo.claims.retry_job(job.id, "w1", "OSError: disk", max_attempts=3) == "cancelled"
    assert repo.get_job(job.id).status == "cancelled"


def test_success_after_a_failed_try_clears_the_note(repo):
    job = repo.create_job(req())[0]
    repo.claims.claim_next("w1")
    repo.claims.retry_job(job.id, "w1", "OSError: read error", max_attempts=3)
    repo.claims.claim_next("w1")
    assert repo.get_job(job.id).error.startswith("attempt 1 of 3 failed")
    assert repo.finish_job(job.id, "w1", result={"ok": 1}, files=[])
    got = repo.get_job(job.id)
    assert got.status == "succeeded" and got.error is None and got.attempts == 2


def test_two_processes_agree_on_the_attempt_limit(engine_url, repo):
    """Janitors of several processes hand back the same stale jobs at once: each is requeued, or failed, once."""
    again, spent = repo.create_job(req("again"))[0], repo.create_job(req("spent"))[0]
    repo.claims.claim_next("w1"), repo.claims.claim_next("w1")
    old = datetime.now(timezone.utc) - timedelta(minutes=10)
    set_column(repo.engine, again.id, attempts=2, heartbeat_at=old)
    set_column(repo.engine, spent.id, attempts=3, heartbeat_at=old)
    others = [Repository(open_database(engine_url)) for _ in range(4)]
    try:
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda r: r.claims.requeue_stale(60, max_attempts=3), others))
    finally:
        for r in others:
            r.engine.dispose()
    assert sorted(results) == [[], [], [], [again.id]]
    got = repo.get_job(again.id)
    assert got.status == "queued" and got.attempts == 2 and got.error.startswith("attempt 2 of 3 failed")
    got = repo.get_job(spent.id)
    assert got.status == "failed" and got.attempts == 3 and got.error.startswith("failed after 3 attempts")


def test_queue_position(repo):
    a = repo.create_job(req("a"))[0]
    b = repo.create_job(req("b"))[0]
    urgent = repo.create_job(req("urgent"), priority=10)[0]
    c = repo.create_job(req("c"))[0]
    assert [repo.queue_position(j.id) for j in (urgent, a, b, c)] == [1, 2, 3, 4]
    repo.claims.claim_next("w")  # takes urgent
    assert repo.queue_position(urgent.id) is None
    assert [repo.queue_position(j.id) for j in (a, b, c)] == [1, 2, 3]
    repo.request_cancel(a.id)
    assert [repo.queue_position(j.id) for j in (a, b, c)] == [None, 1, 2]
    assert repo.queue_position(new_id()) is None


def test_counts_and_delete(repo):
    assert repo.counts_by_status() == dict.fromkeys(JOB_STATUSES, 0)
    key = repo.keys.create_key("k", "e" * 64, "t2v_eeee")
    jobs = [repo.create_job(req(), api_key_id=key.id if i % 2 else None)[0] for i in range(6)]
    repo.claims.claim_next("w")
    repo.claims.claim_next("w")
    repo.claims.fail_job(jobs[1].id, "w", "x")
    counts = repo.counts_by_status()
    assert counts == {"queued": 4, "running": 1, "succeeded": 0, "failed": 1, "cancelled": 0}
    assert repo.count_jobs() == 6 and repo.count_jobs(status="queued") == 4
    assert repo.count_jobs(api_key_id=key.id) == 3
    assert repo.count_jobs(status="queued", api_key_id=key.id) == 2
    assert repo.delete_job(jobs[0].id)
    assert not repo.delete_job(jobs[0].id)
    assert repo.get_job(jobs[0].id) is None and repo.count_jobs() == 5


def test_webhooks(repo):
    plain = repo.create_job(req())[0]
    hook = repo.create_job(req(), callback_url="http://h/1")[0]
    hook2 = repo.create_job(req(), callback_url="http://h/2")[0]
    assert repo.pending_webhooks() == []  # not finished yet
    for _ in range(3):
        job = repo.claims.claim_next("w")
        repo.finish_job(job.id, "w", result={}, files=[])
    assert [j.id for j in repo.pending_webhooks()] == [hook.id, hook2.id]
    assert repo.set_webhook_status(hook.id, "pending", attempts=1, error="503")
    got = repo.get_job(hook.id)
    assert (got.webhook_status, got.webhook_attempts, got.webhook_error) == ("pending", 1, "503")
    assert [j.id for j in repo.pending_webhooks()] == [hook.id, hook2.id]
    repo.set_webhook_status(hook.id, "delivered", attempts=2)
    repo.set_webhook_status(hook2.id, "failed", attempts=5, error="gave up")
    assert repo.pending_webhooks() == []
    assert repo.get_job(hook.id).webhook_error is None
    assert not repo.set_webhook_status(new_id(), "delivered", attempts=1)
    assert repo.get_job(plain.id).webhook_status is None


# ---- keys ----------------------------------------------------------------------------------


def test_the_repository_offers_its_parts_methods(repo):
    """Repository is composed of parts over one Database; their methods are the parts' own, bound."""
    assert {repo.keys.db, repo.claims.db, repo.limits.db, repo.assets.db, repo.outbox.db} == {repo.db}
    assert repo.keys.create_key == repo.keys.create_key and repo.claims.claim_next == repo.claims.claim_next
    assert repo.outbox.pending_records == repo.outbox.pending_records and repo.assets.add_asset == repo.assets.add_asset
    assert repo.limits.take_rate_token == repo.limits.take_rate_token


def test_keys(repo):
    k1 = repo.keys.create_key("ci", "1" * 64, "t2v_1111", rate_limit="30/minute", max_queued=5)
    k2 = repo.keys.create_key("me", "2" * 64, "t2v_2222")
    assert (k1.name, k1.prefix, k1.rate_limit, k1.max_queued, k1.revoked_at) == ("ci", "t2v_1111", "30/minute", 5, None)
    assert_utc(k1.created_at)
    assert repo.keys.get_key(k1.id) == k1
    assert repo.keys.get_key_by_hash("1" * 64) == k1
    assert repo.keys.get_key_by_hash("3" * 64) is None
    assert [k.id for k in repo.keys.list_keys()] == [k1.id, k2.id]
    with pytest.raises(ValueError):
        repo.keys.create_key("dup", "1" * 64, "t2v_1111")
    assert repo.keys.revoke_key(k1.id)
    assert not repo.keys.revoke_key(k1.id)
    assert not repo.keys.revoke_key(new_id())
    assert repo.keys.get_key_by_hash("1" * 64) is None
    revoked = repo.keys.get_key(k1.id)
    assert revoked.revoked and revoked.revoked_at >= revoked.created_at
    assert repo.keys.get_key_by_hash("2" * 64) == k2
    assert len(repo.keys.list_keys()) == 2
