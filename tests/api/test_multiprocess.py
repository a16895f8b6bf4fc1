"""One database, many server processes, one truth: purge, rate limits, the queue quota and the stream cap hold
across processes. Two apps with their own JobService (own engine, own memory) over one SQLite file or one
PostgreSQL database stand for two processes; the last test runs two real `t2v serve` processes and the CLI."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from t2v.api import create_app
from t2v.service import build_services
from t2v.service.keys import create_key
from tests.api.conftest import SMALL, wait_for
from tests.api.test_server import Server
from tests.forkserver import run_t2v
from tests.web import HTTP


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(params=["sqlite", "postgresql"])
def shared(request, settings):
    """Settings whose database (and videos folder) two services share."""
    if request.param == "sqlite":
        return settings
    return settings.model_copy(update={"database_url": request.getfixturevalue("pg_database")})


@pytest.fixture
def two_apps(shared):
    """Two idle apps (no workers) over one database: ``(client_a, client_b)``."""
    a, b = build_services(shared), build_services(shared)
    with TestClient(create_app(shared, service=a, start_workers=False)) as ca, \
            TestClient(create_app(shared, service=b, start_workers=False)) as cb:
        yield ca, cb


def wait_until(cond, what: str, timeout: float = 120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if value := cond():
            return value
        time.sleep(0.05)
    raise AssertionError(f"not {what} after {timeout}s")


def test_purge_asked_in_one_process_while_another_runs_the_job(shared):
    runner, other = build_services(shared), build_services(shared)
    with TestClient(create_app(shared, service=runner)) as ca, \
            TestClient(create_app(shared, service=other, start_workers=False)) as cb:
        job_id = ca.post("/v1/videos", json={"prompt": "purge me", **SMALL, "num_inference_steps": 400}).json()["id"]
        folder = shared.videos_dir / job_id
        wait_until(lambda: (folder / "preview.png").is_file(), "previewing")
        r = cb.delete(f"/v1/videos/{job_id}?purge=true")
        # (the runner may see the cancel, between two steps, before this answer is read back)
        assert r.status_code == 200 and r.json()["status"] in ("running", "cancelled"), r.json()
        done = wait_until(lambda: (j := runner.repo.get_job(job_id)).status == "cancelled" and not j.purge_requested and j,
                          "cancelled and purged")
        assert done.step < 400 and done.files == []
        assert not folder.exists()
        assert cb.get(f"/v1/videos/{job_id}/content").status_code == 409


def test_purge_of_a_finished_or_queued_job_is_done_at_once_by_any_process(shared):
    runner, other = build_services(shared), build_services(shared)
    with TestClient(create_app(shared, service=runner)) as ca:
        job_id = ca.post("/v1/videos", json={"prompt": "done", **SMALL}).json()["id"]
        assert wait_for(ca, job_id)["status"] == "succeeded"
    assert (shared.videos_dir / job_id / "video.mp4").is_file()
    job = other.cancel(job_id, purge=True)
    assert job.status == "succeeded" and job.files == [] and not job.purge_requested
    assert not (shared.videos_dir / job_id).exists()
    queued, _ = other.repo.create_job({"prompt": "never runs"})
    (shared.videos_dir / queued.id).mkdir(parents=True)
    assert other.cancel(queued.id, purge=True).status == "cancelled"
    assert not (shared.videos_dir / queued.id).exists()


def test_purge_of_a_job_whose_worker_died_is_done_by_the_next_start(shared):
    from sqlalchemy import update

    from t2v.store.tables import Job

    other = build_services(shared)
    job, _ = other.repo.create_job({"prompt": "orphan"})
    other.repo.claims.claim_next("a-process-that-was-killed")
    (shared.videos_dir / job.id).mkdir(parents=True)
    (shared.videos_dir / job.id / "preview.png").write_bytes(b"x")
    assert other.cancel(job.id, purge=True).status == "running"  # its worker would purge it; it is gone
    with other.engine.begin() as conn:
        conn.execute(update(Job.__table__).where(Job.__table__.c.id == job.id).values(heartbeat_at=None))
    starter = build_services(shared, no_workers=True).start()  # requeues stale jobs, then carries out pending purges
    try:
        got = starter.repo.get_job(job.id)
        assert got.status == "cancelled" and not got.purge_requested
        assert not (shared.videos_dir / job.id).exists()
    finally:
        starter.stop()


def test_rate_limit_is_shared_by_two_processes(two_apps):
    ca, cb = two_apps
    _, token = create_key(ca.app.state.service.repo.keys, "limited", rate="3/hour")
    responses = [(ca if i % 2 else cb).get("/v1/videos", headers=bearer(token)) for i in range(6)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429, 429, 429]
    assert all(int(r.headers["retry-after"]) >= 1 and "3/hour" in r.json()["detail"] for r in responses[3:])


def test_max_queued_under_concurrent_submits_from_two_processes(two_apps):
    ca, cb = two_apps
    repo = ca.app.state.service.repo
    key, token = create_key(repo.keys, "quota", max_queued=2)
    barrier = threading.Barrier(8)

    def submit(i):
        barrier.wait()
        return (ca if i % 2 else cb).post("/v1/videos", json={"prompt": f"job {i}", **SMALL}, headers=bearer(token))

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(submit, range(8)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [202, 202] + [429] * 6
    assert all("limit 2" in r.json()["detail"] and "retry-after" in r.headers for r in responses if r.status_code == 429)
    assert repo.count_jobs(status="queued", api_key_id=key.id) == 2


def test_event_stream_cap_across_two_processes(shared):
    capped = shared.model_copy(update={"max_streams_per_key": 2})
    a, b = build_services(capped), build_services(capped)
    with TestClient(create_app(capped, service=a, start_workers=False)) as ca, \
            TestClient(create_app(capped, service=b, start_workers=False)) as cb:
        key, token = create_key(a.repo.keys, "streams")
        _, other_token = create_key(a.repo.keys, "another")
        job_id = ca.post("/v1/videos", json={"prompt": "stays queued", **SMALL}, headers=bearer(token)).json()["id"]
        url, h = f"/v1/videos/{job_id}/events", bearer(token)
        with ca.stream("GET", url, headers=h) as first, cb.stream("GET", url, headers=h) as second:
            lines = [first.iter_lines(), second.iter_lines()]  # kept: a dropped iterator closes its stream
            for r, it in zip((first, second), lines):
                assert r.status_code == 200 and next(it).startswith("event: progress")
            assert a.repo.limits.count_streams(key.id) == 2
            for client in (ca, cb):
                over = client.get(url, headers=h)
                assert over.status_code == 429 and "limit 2" in over.json()["detail"]
                assert "T2V_MAX_STREAMS_PER_KEY" in over.json()["detail"] and over.headers["retry-after"]
            # Another key has its own streams (and cannot see this job: 404 before any stream is counted).
            assert cb.get(url, headers=bearer(other_token)).status_code == 404
            first.close()  # the client goes away: its lease is released
            assert a.repo.limits.count_streams(key.id) == 1
            with cb.stream("GET", url, headers=h) as third:
                assert third.status_code == 200
        # The server frees a slot when it sees the client gone, in the stream's own task: soon, not at once.
        wait_until(lambda: a.repo.limits.count_streams(key.id) == 0, "every lease released")


@pytest.mark.slow
def test_two_real_servers_and_the_cli_share_one_database(tiny_model, tmp_path):
    """Two `t2v serve` processes on one SQLite file; `t2v jobs cancel --purge` from a third process."""
    from t2v.store import Repository, open_database

    home = tmp_path / "home"
    engine = open_database(f"sqlite:///{home / 't2v.db'}")
    repo = Repository(engine)
    key, token = create_key(repo.keys, "streams")
    _, limited = create_key(repo.keys, "limited", rate="3/hour")
    env = {"T2V_MAX_STREAMS_PER_KEY": "2"}
    s1, s2 = Server(home, tiny_model, extra_env=env), Server(home, tiny_model, extra_env=env)
    with ThreadPoolExecutor(2) as pool:  # started side by side: each start is mostly one core importing
        list(pool.map(lambda s: s.start(), (s1, s2)))
    h = bearer(token)
    try:
        r = HTTP.post(f"{s1.url}/v1/videos", json={"prompt": "a long one", **SMALL, "num_inference_steps": 400},
                       headers=h, timeout=30)
        job_id = r.json()["id"]
        folder = home / "videos" / job_id
        wait_until(lambda: (folder / "preview.png").is_file(), "previewing")

        # The stream cap counts both servers' streams.
        url = f"/v1/videos/{job_id}/events"
        with HTTP.stream("GET", s1.url + url, headers=h, timeout=60) as one, \
                HTTP.stream("GET", s2.url + url, headers=h, timeout=60) as two:
            assert one.status_code == two.status_code == 200
            for server in (s1, s2):
                over = HTTP.get(server.url + url, headers=h, timeout=30)
                assert over.status_code == 429 and "limit 2" in over.json()["detail"]
        wait_until(lambda: repo.limits.count_streams(key.id) == 0, "released when the clients went away")

        # The rate limit counts both servers' requests.
        codes = [HTTP.get(f"{s.url}/v1/videos", headers=bearer(limited), timeout=30).status_code
                 for s in (s1, s2, s1, s2, s1, s2)]
        assert codes == [200, 200, 200, 429, 429, 429]

        # Purge from the CLI while a server runs the job.
        cli = run_t2v(["jobs", "cancel", job_id, "--purge"], env=s1.env, timeout=120)
        assert cli.returncode == 0 and "cancellation requested" in cli.stdout, cli.stdout + cli.stderr
        done = wait_until(lambda: (j := repo.get_job(job_id)).status == "cancelled" and not j.purge_requested and j,
                          "cancelled and purged")
        assert done.step < 400 and not folder.exists()
    finally:
        s1.stop()
        s2.stop()
        engine.dispose()
