"""Restarts never lose or fail a job.

In process: a try that fails for a reason that is not the request's (an import error, memory, a write
error) is retried, resuming from its checkpoint, for at most ``max_attempts`` tries; the warm-up and
the first job share one load. Then chaos on real ``t2v serve --model`` processes: a batch submitted
while the model warms, ``kill -9`` while warming, mid-denoise and mid-export, a restart each time, on
one or two processes over SQLite and PostgreSQL; every job succeeds exactly once with one video, a kill lands
in each phase (the restarted server is killed before it answers; a job's server is stopped mid-denoise and
mid-export and killed only while that job is unfinished), and each job a kill hit resumes from its checkpoint.

Adds about a minute and a half to the suite: three chaos runs each start one or two real servers and kill and
restart them four times, every start loading the model again; a smaller run would not land a kill in each phase.
The starts are forks of tests/forkserver.py, which imports torch once; the start killed while warming is a new
``python -m t2v serve`` process, importing torch, as a user's restart is."""

from __future__ import annotations

import io
import random
import shutil
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import av
import httpx
import pytest
from diffusers import AutoencoderKL

from t2v.models import loader
from t2v.service import build_services
from t2v.store import Repository, open_database
from tests.api.conftest import SMALL, make_settings
from tests.api.test_server import Server
from tests.web import HTTP

MAX_ATTEMPTS = 3  # the default of T2V_MAX_ATTEMPTS: the chaos servers run with it


# ---- in process ------------------------------------------------------------------------------


def run_jobs(settings, n=1, warm=None, **fields):
    """Queue ``n`` jobs, start a service (warming ``warm`` first, as `t2v serve --model` does), wait for them."""
    svc = build_services(settings)
    ids = [svc.submit({"prompt": f"a red square {i}", **SMALL, "seed": i, **fields})[0].id for i in range(n)]
    if warm:
        svc.warm(str(warm))
    svc.start()
    try:
        deadline = time.time() + 120
        while (jobs := [svc.repo.get_job(i) for i in ids]) and not all(j.finished for j in jobs):
            assert time.time() < deadline, [(j.status, j.error) for j in jobs]
            time.sleep(0.05)
        return svc, jobs
    finally:
        svc.stop()


def failing_vae_loads(monkeypatch, times: int, exc: type[BaseException], message: str) -> list:
    """The VAE fails to load the first ``times`` times (a real load after that); returns the call log."""
    real = AutoencoderKL.from_pretrained
    calls = []

    def from_pretrained(cls, *args, **kwargs):
        calls.append(args)
        if len(calls) <= times:
            raise exc(message)
        return real(*args, **kwargs)

    monkeypatch.setattr(AutoencoderKL, "from_pretrained", classmethod(from_pretrained))
    return calls


def test_import_error_while_loading_is_retried_and_the_job_succeeds(model_copy, tmp_path, monkeypatch):
    calls = failing_vae_loads(monkeypatch, 2, ImportError, "cannot import name 'AutoencoderKL' from 'diffusers'")
    _, [job] = run_jobs(make_settings(tmp_path / "home", model_copy))
    assert job.status == "succeeded" and job.error is None
    assert job.attempts == 3 and len(calls) == 3


def test_a_job_that_always_fails_to_load_fails_after_max_attempts(model_copy, tmp_path, monkeypatch):
    calls = failing_vae_loads(monkeypatch, 99, MemoryError, "out of memory loading the VAE")
    _, [job] = run_jobs(make_settings(tmp_path / "home", model_copy))
    assert job.status == "failed" and job.attempts == MAX_ATTEMPTS == len(calls)
    assert job.error == f"failed after {MAX_ATTEMPTS} attempts: MemoryError: out of memory loading the VAE"


def test_the_attempt_limit_is_a_setting(model_copy, tmp_path, monkeypatch):
    failing_vae_loads(monkeypatch, 99, OSError, "Input/output error")
    _, [job] = run_jobs(make_settings(tmp_path / "home", model_copy, max_attempts=1))
    assert job.status == "failed" and job.attempts == 1
    assert job.error.startswith("failed after 1 attempt: could not load vae from ") and "Input/output error" in job.error


def test_a_damaged_weight_file_fails_at_once_while_an_io_error_is_retried(model_copy, tmp_path):
    """Every try reads the same damaged bytes: not retried. The OS failing to read them is (see above)."""
    settings = make_settings(tmp_path / "home", model_copy)
    svc = build_services(settings)
    job_id = svc.submit({"prompt": "a red square", **SMALL})[0].id
    (model_copy / "vae" / "diffusion_pytorch_model.safetensors").write_bytes(b"this is not safetensors")
    svc.start()
    try:
        deadline = time.time() + 120
        while not (job := svc.repo.get_job(job_id)).finished:
            assert time.time() < deadline
            time.sleep(0.05)
    finally:
        svc.stop()
    assert job.status == "failed" and job.attempts == 1, (job.attempts, job.error)
    assert job.error.startswith("could not load vae from ")


def test_memory_held_by_other_work_when_an_admitted_job_runs_is_retried_then_fails_saying_why(model_copy, tmp_path):
    """Admitted under one budget, run where memory is short now (another job holds it): a passing
    failure, retried after a pause, not a bad request failed at once."""
    home = tmp_path / "home"
    job_id = build_services(make_settings(home, model_copy)).submit({"prompt": "a red square", **SMALL})[0].id
    svc = build_services(make_settings(home, model_copy, memory_budget_gb=0.001, max_attempts=2))
    svc.start()
    try:
        deadline = time.time() + 60
        while not (job := svc.repo.get_job(job_id)).finished:
            assert time.time() < deadline, (job.status, job.error)
            time.sleep(0.05)
    finally:
        svc.stop()
    assert job.status == "failed" and job.attempts == 2
    assert job.error.startswith("failed after 2 attempts: num_frames, width, height: ")
    assert "over the memory budget of 1 MiB" in job.error


def test_a_worker_pauses_t2v_retry_pause_s_after_a_failed_try(model_copy, tmp_path):
    """The pause before the retry is the setting (the tests' helpers shorten it to 0.05 s; the default is 2 s)."""
    home = tmp_path / "home"
    job_id = build_services(make_settings(home, model_copy)).submit({"prompt": "a red square", **SMALL})[0].id
    svc = build_services(make_settings(home, model_copy, memory_budget_gb=0.001, max_attempts=2, retry_pause_s=1.5))
    started = time.monotonic()
    svc.start()
    try:
        while not (job := svc.repo.get_job(job_id)).finished:
            assert time.monotonic() - started < 60, (job.status, job.error)
            time.sleep(0.05)
    finally:
        svc.stop()
    assert job.status == "failed" and job.attempts == 2
    assert time.monotonic() - started >= 1.5  # one pause: after the first try, none after the last


def test_the_requests_own_fault_is_not_retried(model_copy, tmp_path):
    settings = make_settings(tmp_path / "home", model_copy)
    svc = build_services(settings)
    job_id = svc.submit({"prompt": "a red square", **SMALL})[0].id
    shutil.rmtree(model_copy)  # the folder it names went away after submit
    svc.start()
    try:
        while not (job := svc.repo.get_job(job_id)).finished:
            time.sleep(0.05)
    finally:
        svc.stop()
    assert job.status == "failed" and job.attempts == 1
    assert job.error == f"model folder {model_copy} does not exist"


def test_a_failed_export_keeps_the_checkpoint_and_the_retry_resumes(model_copy, tmp_path, monkeypatch):
    import t2v.export.outputs

    real, calls = t2v.export.outputs.write_outputs, []

    def write_outputs(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(t2v.export.outputs, "write_outputs", write_outputs)  # the exporter's own name
    settings = make_settings(tmp_path / "home", model_copy, checkpoint_every=2)
    _, [job] = run_jobs(settings, num_inference_steps=6)
    assert job.status == "succeeded" and job.attempts == 2 and len(calls) == 2
    assert job.result["resumed_from_step"] == 4  # the last checkpoint of 6 steps, every 2, survived the failure
    assert not list(settings.checkpoint_dir.glob("*"))  # gone once the job succeeded


def test_warm_up_and_the_first_job_share_one_load(model_copy, tmp_path):
    svc, [job] = run_jobs(make_settings(tmp_path / "home", model_copy), warm=model_copy)
    assert job.status == "succeeded", job.error
    assert svc.warm_state["error"] is None and svc.warm_state["load_s"] > 0
    assert job.result["timings"]["load_s"] == 0.0  # the worker reused the warm-up's load
    assert [m["model"] for m in loader.loaded_models()].count(str(model_copy.resolve())) == 1


# ---- chaos on real servers -------------------------------------------------------------------

JOB = {"num_frames": 8, "width": 64, "height": 64, "num_inference_steps": 6, "formats": ["mp4", "webm", "gif"]}
N_JOBS = 4
# One torch thread per server: two servers (and other work) on 2 cores run ~10x slower oversubscribed.
CHAOS_ENV = {"T2V_CHECKPOINT_EVERY": "2", "T2V_HEARTBEAT_S": "0.3", "T2V_STALE_AFTER_S": "5", "OMP_NUM_THREADS": "1"}


class Chaos:
    """``t2v serve --model`` processes on one database, killed with SIGKILL and restarted in the background
    (so that, with two, the other keeps working meanwhile)."""

    def __init__(self, home, model, n_servers, seed, database_url=None):
        self.home, self.rng = home, random.Random(seed)
        env = {**CHAOS_ENV, **({"T2V_DATABASE_URL": database_url} if database_url else {})}
        self.servers = [Server(home, model, extra_env=env, args=["--model", str(model)], ready_path="/healthz")
                        for _ in range(n_servers)]
        with ThreadPoolExecutor(n_servers) as pool:
            list(pool.map(lambda s: s.start(), self.servers))
        self.repo = Repository(open_database(database_url or f"sqlite:///{home / 't2v.db'}"))
        self.restarts: dict[int, threading.Thread] = {}
        self.kills = 0
        self.warm_kills = 0  # kills that landed before the restarted server answered (importing, warming)

    def restarting(self, server) -> bool:
        return server.port in self.restarts and self.restarts[server.port].is_alive()

    def restart(self, server, *, kill_after: float | None = None) -> None:
        """SIGKILL ``server`` and start it again; ``kill_after``: kill that start once more so many seconds
        in (while it imports and warms the model), then start it for good."""
        server.stop(signal.SIGKILL)
        self.kills += 1

        def run():
            if kill_after is not None:  # a new process, importing torch (a fork from tests/forkserver.py has)
                timer = threading.Timer(kill_after, lambda: server.proc.send_signal(signal.SIGKILL))
                timer.start()
                try:
                    server.start(fresh=True)
                except AssertionError:  # "server exited": killed before it answered
                    self.warm_kills += 1
                timer.join()
                server.stop(signal.SIGKILL)
                self.kills += 1
            server.start()

        self.restarts[server.port] = threading.Thread(target=run, daemon=True)
        self.restarts[server.port].start()

    def kill_at(self, ids, point) -> str | None:
        """Kill (and restart) the server running a job that reached ``point``, one with a try left; returns
        the job's id. The database is watched directly: an export lasts a fraction of a second, so a job can
        finish between the read and the kill: the server is therefore stopped (SIGSTOP) first, and killed only
        if the job is still unfinished then, so the kill lands in that phase; else it goes on and another job is
        looked for."""
        min_step = self.rng.randint(2, 5)
        deadline = time.time() + 150
        while time.time() < deadline:
            jobs = self.repo.list_jobs(limit=50)
            for j in jobs:
                hit = (j.stage == "denoise" and j.step >= min_step) if point == "denoise" else j.stage == "export"
                if j.status == "running" and hit and j.attempts < MAX_ATTEMPTS:
                    pid = int(j.worker_id.split(":")[1])  # worker ids are host:pid:index:nonce:process (t2v.service.liveness)
                    victim = next((s for s in self.servers if s.proc.pid == pid and not self.restarting(s)), None)
                    if victim is not None and victim.proc.poll() is None:
                        victim.proc.send_signal(signal.SIGSTOP)
                        if self.repo.get_job(j.id).finished:  # it finished before the stop: not this one
                            victim.proc.send_signal(signal.SIGCONT)
                            continue
                        self.restart(victim)  # SIGKILL (a stopped process dies too), then start it again
                        return j.id
            if jobs and all(j.finished for j in jobs if j.id in ids):
                break
            time.sleep(0.002)
        raise AssertionError(f"no kill landed while a job was at {point}")

    def jobs(self) -> dict[str, dict]:
        for s in self.servers:
            if s.proc.poll() is None:
                try:
                    return {j["id"]: j for j in HTTP.get(f"{s.url}/v1/videos?limit=50", timeout=10).json()["items"]}
                except httpx.HTTPError:
                    continue
        return {}

    def settle(self, ids) -> dict[str, dict]:
        """Wait for the restarts, then for every job to end; the jobs as the API shows them."""
        for t in self.restarts.values():
            t.join(300)
        assert all(s.proc.poll() is None for s in self.servers)
        deadline = time.time() + 240
        while not all((jobs := self.jobs())[i]["status"] in ("succeeded", "failed", "cancelled") for i in ids):
            assert time.time() < deadline, {i: jobs[i]["status"] for i in ids}
            time.sleep(0.2)
        return jobs

    def close(self) -> None:
        for t in self.restarts.values():
            t.join(300)
        for s in self.servers:
            s.stop()
        self.repo.engine.dispose()


def check_outcome(jobs, ids, home):
    assert sorted(jobs) == sorted(ids)  # no job lost, none duplicated
    for job_id in ids:
        job = jobs[job_id]
        assert job["status"] == "succeeded", (job_id, job["error"])
        assert job["error"] is None and 1 <= job["attempts"] <= MAX_ATTEMPTS
        mp4 = [f for f in job["result"]["files"] if f["format"] == "mp4"]
        assert len(mp4) == 1
        with av.open(io.BytesIO(HTTP.get(mp4[0]["url"], timeout=30).content)) as c:
            frames = list(c.decode(video=0))
        assert len(frames) == JOB["num_frames"] and {(f.width, f.height) for f in frames} == {(JOB["width"], JOB["height"])}
        on_disk = sorted(p.name for p in (home / "videos" / job_id).iterdir())
        assert [n for n in on_disk if n.endswith(".mp4")] == ["video.mp4"]
        assert not [n for n in on_disk if n.startswith(".")], on_disk  # no torn writes left by a killed export
    assert not list((home / "checkpoints").glob("*"))  # kept through the kills, removed once each job succeeded


def run_chaos(home, model, n_servers, seed, database_url=None, *, kill_while_warming=True):
    chaos = Chaos(home, model, n_servers, seed, database_url)
    try:
        # The batch arrives at once, right after start, and a server is killed at once (with
        # ``kill_while_warming`` again while it restarts: importing, warming the model); then the server
        # running a job is killed mid-denoise, and one mid-export.
        with ThreadPoolExecutor(N_JOBS) as pool:
            ids = list(pool.map(lambda i: chaos.servers[i % n_servers].submit(prompt=f"chaos {i}", seed=i, **JOB),
                                range(N_JOBS)))
        time.sleep(chaos.rng.uniform(0, 0.3))
        kill_after = chaos.rng.uniform(0.5, 3) if kill_while_warming else None  # before it can answer
        chaos.restart(chaos.rng.choice(chaos.servers), kill_after=kill_after)
        killed = [chaos.kill_at(ids, "denoise"), chaos.kill_at(ids, "export")]
        jobs = chaos.settle(ids)
        check_outcome(jobs, ids, home)
    finally:
        chaos.close()
    assert chaos.kills >= (4 if kill_while_warming else 3)
    assert chaos.warm_kills == (1 if kill_while_warming else 0)  # the kill while warming came before it answered
    for job_id in killed:  # a kill landed in each phase; each job it hit resumed from a checkpoint that survived
        assert jobs[job_id]["attempts"] >= 2 and jobs[job_id]["result"]["metadata"]["resumed_from_step"] >= 2
    return jobs


@pytest.mark.slow
def test_chaos_one_server(tiny_model, tmp_path):
    run_chaos(tmp_path / "home", tiny_model, n_servers=1, seed=17)


@pytest.mark.slow
def test_chaos_two_servers_on_one_sqlite_file(tiny_model, tmp_path):
    run_chaos(tmp_path / "home", tiny_model, n_servers=2, seed=23, kill_while_warming=False)


@pytest.mark.slow
def test_chaos_two_servers_on_postgresql(tiny_model, tmp_path, pg_database):
    run_chaos(tmp_path / "home", tiny_model, n_servers=2, seed=29, database_url=pg_database, kill_while_warming=False)


@pytest.mark.slow
def test_a_job_that_kills_its_server_every_time_fails_after_max_attempts(tiny_model, tmp_path):
    """The job's process dies each time it runs it: it is retried, then fails saying so, and the server lives."""
    s = Server(tmp_path / "home", tiny_model, extra_env={**CHAOS_ENV, "T2V_MAX_ATTEMPTS": "2"},
               args=["--model", str(tiny_model)], ready_path="/healthz").start()
    try:
        job_id = s.submit(**JOB)
        for attempt in (1, 2):
            # Right after a restart the row still shows the killed attempt as running until the new
            # server takes the job back, so wait for this attempt's own denoise.
            job = s.wait(job_id, ("running",),
                         cond=lambda j, n=attempt: j["progress"]["stage"] == "denoise" and j["attempts"] == n)
            assert job["attempts"] == attempt
            s.stop(signal.SIGKILL)
            s.start()
        job = s.wait(job_id)
        assert job["status"] == "failed" and job["attempts"] == 2
        assert job["error"] == "failed after 2 attempts: the worker process stopped during the job (killed or crashed)"
        assert s.wait(s.submit(**SMALL))["status"] == "succeeded"  # the server still takes work
    finally:
        s.stop()
    assert not list((tmp_path / "home" / "checkpoints").glob("*"))  # the failed job's checkpoint is cleaned up
