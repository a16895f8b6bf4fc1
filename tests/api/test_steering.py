"""Steering the queue of a real ``t2v serve`` (tiny model, one worker, API keys on): pause a running job and
resume it to the same frames as an unpaused run, pause a queued one (kept across a restart), change a queued
job's priority and request, and the refusals.

Adds more than a minute: pause, resume and reorder go through real servers (restarted once, and two of
them on one SQLite file and on PostgreSQL), and each paused run is compared with an unpaused one."""

from __future__ import annotations

import os
import re
import subprocess
import time

import httpx
import pytest

from tests.forkserver import run_t2v
from tests.servers import make_keys, serve
from tests.web import HTTP

LONG = {"num_frames": 4, "width": 32, "height": 32, "num_inference_steps": 60}
QUICK = {"num_frames": 4, "width": 32, "height": 32, "num_inference_steps": 2}


class Api:
    def __init__(self, url: str, key: str) -> None:
        self.url, self.headers = url, {"Authorization": f"Bearer {key}"}

    def call(self, method: str, path: str, **kw) -> httpx.Response:
        return HTTP.request(method, f"{self.url}/v1/videos{path}", headers=self.headers, timeout=30, **kw)

    def submit(self, **fields) -> str:
        r = self.call("POST", "", json={"prompt": "a red ball moving right", **fields})
        assert r.status_code == 202, r.text
        return r.json()["id"]

    def get(self, job_id: str) -> dict:
        return self.call("GET", f"/{job_id}").json()

    def wait(self, job_id: str, until, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while not until(job := self.get(job_id)):
            assert time.monotonic() < deadline, job
            time.sleep(0.1)
        return job


def done(job: dict) -> bool:
    return job["status"] in ("succeeded", "failed", "cancelled")


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    return home


def test_a_paused_running_job_frees_its_worker_and_resumes_to_the_same_frames(home, tiny_model, tmp_path_factory):
    key, other = make_keys(home, ("main", {}), ("other", {}))
    with serve(home, str(tiny_model), model_roots=tmp_path_factory.getbasetemp()) as s:
        api = Api(s.url, key)
        plain = api.wait(api.submit(seed=5, **LONG), done)
        assert plain["status"] == "succeeded"

        job_id = api.submit(seed=5, **LONG)
        api.wait(job_id, lambda j: j["status"] == "running" and j["progress"]["step"] >= 5)
        assert Api(s.url, other).call("POST", f"/{job_id}/pause").status_code == 404, "another key's job"
        r = api.call("POST", f"/{job_id}/pause")
        assert r.status_code == 200, r.text
        paused = api.wait(job_id, lambda j: j["status"] == "paused")
        stopped_at = paused["progress"]
        assert paused["queue_position"] is None and paused["attempts"] == 0, "handed back, the try not counted"

        quick = api.submit(seed=1, **QUICK)  # the worker is free: the next job runs while the paused one waits
        assert api.wait(quick, done)["status"] == "succeeded"
        assert api.get(job_id)["status"] == "paused"

        assert api.call("POST", f"/{job_id}/resume").status_code == 200
        resumed = api.wait(job_id, done)
        assert resumed["status"] == "succeeded", resumed["error"]
        meta = resumed["result"]["metadata"]
        assert meta["resumed_from_step"] >= 5, (meta.get("resumed_from_step"), stopped_at)
        assert meta["frames_sha256"] == plain["result"]["metadata"]["frames_sha256"], "the unpaused run's frames"

        refused = api.call("POST", f"/{job_id}/pause")
        assert refused.status_code == 409 and refused.json()["detail"][0]["loc"] == ["body", "status"], "finished"
        assert "only a paused job" in api.call("POST", f"/{job_id}/resume").json()["detail"][0]["msg"]


def test_a_paused_queued_job_waits_across_a_restart_and_queued_jobs_can_be_changed(home, tiny_model,
                                                                                  tmp_path_factory):
    (key,) = make_keys(home, ("main", {}))
    roots = tmp_path_factory.getbasetemp()
    with serve(home, str(tiny_model), model_roots=roots) as s:
        api = Api(s.url, key)
        busy = api.submit(seed=2, **LONG)
        api.wait(busy, lambda j: j["status"] == "running")
        first, second, held = (api.submit(seed=n, **QUICK) for n in (10, 11, 12))
        assert api.call("POST", f"/{held}/pause").json()["status"] == "paused"

        # priority: the later job goes first
        r = api.call("PATCH", f"/{second}", json={"priority": 10})
        assert r.status_code == 200 and r.json()["priority"] == 10 and r.json()["queue_position"] == 1
        # a request field, checked as at submit (here through the Python client); the answer shows the new request
        from t2v.client import Client

        with Client(s.url, key) as client:
            changed = client.change_job(first, prompt="a green square", num_inference_steps=3)
        assert (changed.request["prompt"], changed.request["num_inference_steps"]) == ("a green square", 3)
        bad = api.call("PATCH", f"/{first}", json={"width": 33})
        assert bad.status_code == 422 and "nearest valid: 32" in bad.text
        assert api.call("PATCH", f"/{first}", json={"priority": 1000}).status_code == 422
        assert api.call("PATCH", f"/{first}", json={"bogus": 1}).status_code == 422
        running = api.call("PATCH", f"/{busy}", json={"prompt": "x"})
        assert running.status_code == 409 and running.json()["detail"][0]["loc"] == ["body", "prompt"], running.text

        jobs = {j: api.wait(j, done) for j in (busy, first, second)}
        assert all(j["status"] == "succeeded" for j in jobs.values())
        assert jobs[second]["started_at"] < jobs[first]["started_at"], "priority 10 started first"
        assert jobs[first]["result"]["metadata"]["prompt"] == "a green square"
        time.sleep(1.5)
        assert api.get(held)["status"] == "paused", "an idle worker leaves a paused job alone"

    with serve(home, str(tiny_model), model_roots=roots) as s:  # a restart
        api = Api(s.url, key)
        time.sleep(1.5)
        assert api.get(held)["status"] == "paused"
        r = cli("jobs", "resume", held, "--server", s.url, "--key", key)
        # queued again; the idle worker may claim it before the answer is read back
        assert r.returncode == 0 and re.search(rf"^{held}: (queued|running)", r.stdout, re.M), r.stdout + r.stderr
        assert api.wait(held, done)["status"] == "succeeded"
        r = cli("jobs", "pause", held, "--server", s.url, "--key", key)
        assert r.returncode == 2 and "only a queued or running job can be paused" in " ".join(r.stderr.split())


def cli(*args: str, home=None) -> subprocess.CompletedProcess:
    env = {**os.environ, **({"T2V_HOME": str(home)} if home else {})}
    return run_t2v(args, env=env, timeout=120)


def test_the_cli_steers_the_queue_on_this_machines_database(home, tiny_model):
    from t2v.service import build_services
    from t2v.settings import Settings

    svc = build_services(Settings(home=home, default_model=str(tiny_model)), no_workers=True)
    a, b = (svc.submit({"prompt": p, **QUICK})[0].id for p in ("a red ball", "a blue ball"))
    svc.engine.dispose()
    r = cli("jobs", "change", b, "--priority", "7", "--set", "num_inference_steps=3", "--set", "prompt=a green ball",
            home=home)
    assert r.returncode == 0 and f"{b}: queued, priority 7" in r.stdout, r.stderr
    r = cli("jobs", "pause", a, home=home)
    assert r.returncode == 0 and f"{a}: paused" in r.stdout, r.stderr
    svc = build_services(Settings(home=home, default_model=str(tiny_model)), no_workers=True)
    changed, paused = svc.get(b), svc.get(a)
    assert (changed.priority, changed.request["num_inference_steps"], changed.request["prompt"]) == (7, 3, "a green ball")
    assert paused.paused and svc.queue_position(b) == 1 and svc.queue_position(a) is None
    svc.engine.dispose()
    r = cli("jobs", "change", b, "--set", "width=33", home=home)
    assert r.returncode == 2 and "nearest valid: 32" in r.stderr
    r = cli("jobs", "change", b, "--set", "oops", home=home)
    assert r.returncode == 2 and "is not FIELD=VALUE" in r.stderr
    r = cli("jobs", "resume", b, home=home)
    assert r.returncode == 2 and "only a paused job can be resumed" in " ".join(r.stderr.split())


@pytest.fixture(params=["sqlite", "postgresql"])
def database_env(request) -> dict[str, str]:
    """SQLite: the database file in the shared home; PostgreSQL: a fresh database."""
    return {} if request.param == "sqlite" else {"T2V_DATABASE_URL": request.getfixturevalue("pg_database")}


def test_two_servers_on_one_database_pause_resume_and_reorder_each_others_jobs(tmp_path, tiny_model, database_env):
    """Two ``t2v serve`` processes, one worker each, over one home (its videos and checkpoints) and one database:
    a job running in one is paused from the other, and resumed there; a priority set in one decides what the
    other's worker takes."""
    from tests.api.test_server import Server

    servers = [Server(tmp_path / "home", tiny_model, extra_env=database_env, args=["--workers", "1"]) for _ in "ab"]
    try:
        for s in servers:
            s.start()
        a, b = (Api(s.url, "") for s in servers)
        for api in (a, b):
            api.headers = {}
        long_id = a.submit(seed=4, **LONG)
        running = b.wait(long_id, lambda j: j["status"] == "running" and j["progress"]["step"] >= 4)
        assert b.call("POST", f"/{long_id}/pause").status_code == 200
        paused = a.wait(long_id, lambda j: j["status"] == "paused")
        assert paused["attempts"] == 0, running
        assert a.call("POST", f"/{long_id}/resume").status_code == 200
        resumed = b.wait(long_id, lambda j: j["status"] == "succeeded")
        assert resumed["result"]["metadata"]["resumed_from_step"] >= 4

        busy = [a.submit(seed=20 + n, **LONG) for n in range(2)]  # both workers busy
        for job_id in busy:
            a.wait(job_id, lambda j: j["status"] == "running")
        low, high = a.submit(seed=30, **QUICK), a.submit(seed=31, **QUICK)
        assert b.call("PATCH", f"/{high}", json={"priority": 50}).json()["queue_position"] == 1
        finished = {j: b.wait(j, done) for j in (low, high)}
        assert finished[high]["started_at"] < finished[low]["started_at"]
    finally:
        for s in servers:
            s.stop()
