"""A real `t2v serve` process on a loopback port: SSE, Range, cancel, restart, kill -9, load.

Adds about a minute: a real server process per test (forks of tests/forkserver.py, and new ``python -m t2v serve``
processes in the kill -9 test), killed with SIGKILL and restarted in two of them."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import httpx
import pytest

from tests.api.conftest import SMALL
from tests.forkserver import run_t2v, start_t2v
from tests.web import HTTP

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``t2v serve`` on a free loopback port. ``args``: more command-line options (``--model M``);
    ``ready_path``: what ``start()`` waits for (``/healthz``: up, maybe still warming the model);
    ``ui``: serve the web page at / (off by default: Gradio's import is ~3 s of every start); ``fresh``: a new
    ``python -m t2v`` process, not a fork of tests/forkserver.py (whose imports are done once)
    A failed try is retried after 0.05 s, not 2 s (T2V_RETRY_PAUSE_S; the environment can set both)."""

    def __init__(self, home, model, port=None, extra_env=None, args=(), ready_path="/readyz", ui=False, fresh=False):
        self.home, self.model, self.port, self.fresh = home, model, port or free_port(), fresh
        self.args, self.ready_path = list(args), ready_path
        self.url = f"http://127.0.0.1:{self.port}"
        # HF_HUB_OFFLINE as each test's environment has it (tests/conftest.py), also for a module's server, made
        # before that is set: the server is then a fork of the same fork server as the others (tests/forkserver.py)
        self.env = {"T2V_RETRY_PAUSE_S": "0.05", "T2V_UI": "0", "HF_HUB_OFFLINE": "1", **os.environ, "T2V_HOME": str(home),
                    "T2V_DEFAULT_MODEL": str(model), "T2V_CHECKPOINT_EVERY": "2", "T2V_HEARTBEAT_S": "0.3",
                    "T2V_STALE_AFTER_S": "2", **({"T2V_UI": "1"} if ui else {}), **(extra_env or {})}
        self.proc, self.log = None, None

    def start(self, fresh: bool | None = None):
        """Start the server (``fresh``: this start a new process or not, instead of the server's own setting)
        and wait until it answers ``ready_path``."""
        # The output goes to a file, never an unread pipe: a server that logs more than the pipe holds (64 KiB)
        # would block in its next log call, whichever thread made it.
        if self.log is None:  # one file for all of this server's starts, outside its home
            fd, name = tempfile.mkstemp(prefix=f"t2v-serve-{self.port}-", suffix=".log")
            os.close(fd)
            self.log = Path(name)
        self.proc = start_t2v(["serve", "--port", str(self.port), *self.args], self.env, self.log, append=True,
                              fresh=self.fresh if fresh is None else fresh)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.output()}")
            try:
                if HTTP.get(f"{self.url}{self.ready_path}", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"server did not become ready: {self.output()}")

    def output(self, tail: int = 6000) -> str:
        """The end of what the server printed (all its starts, in order)."""
        return self.log.read_text(errors="replace")[-tail:] if self.log else ""

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def submit(self, **fields):
        r = HTTP.post(f"{self.url}/v1/videos", json={"prompt": "a blue square moving up", **SMALL, **fields}, timeout=30)
        assert r.status_code == 202, r.text
        return r.json()["id"]

    def job(self, job_id):
        return HTTP.get(f"{self.url}/v1/videos/{job_id}", timeout=30).json()

    def wait(self, job_id, statuses=("succeeded", "failed", "cancelled"), timeout=180, cond=None):
        deadline = time.time() + timeout
        while time.time() < deadline:
            job = self.job(job_id)
            if job["status"] in statuses and (cond is None or cond(job)):
                return job
            time.sleep(0.1)
        raise AssertionError(f"{job_id}: {job['status']} after {timeout}s")


@pytest.fixture
def server(real_server):
    """The plain server tests/api shares (conftest.py): the tests here look only at their own jobs."""
    return real_server


def all_jobs(server, limit=20) -> list[dict]:
    """Every job the server lists, page by page (``limit`` a page)."""
    listed, cursor = [], None
    while True:
        page = HTTP.get(f"{server.url}/v1/videos", params={"limit": limit, **({"cursor": cursor} if cursor else {})}).json()
        listed += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return listed


def test_submit_watch_events_range_decode_and_cancel(server):
    job_id = server.submit(num_inference_steps=30, seed=5)
    events = []
    with HTTP.stream("GET", f"{server.url}/v1/videos/{job_id}/events", timeout=120) as r:
        for line in r.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
    assert events[-1]["status"] == "succeeded"
    assert max(e["progress"]["step"] for e in events if e["status"] == "running") >= 1
    # The ETA flows worker -> database -> API: predicted before the first step ends, then at the measured rate,
    # and while decoding the decode's time left
    running = [e["progress"] for e in events if e["status"] == "running" and e["progress"]["stage"] == "denoise"]
    assert running and all(p["eta_s"] is not None for p in running), running
    full = HTTP.get(f"{server.url}/v1/videos/{job_id}/content?format=mp4").content
    part = HTTP.get(f"{server.url}/v1/videos/{job_id}/content", headers={"Range": "bytes=10-"})
    assert part.status_code == 206 and part.content == full[10:]
    with av.open(io.BytesIO(full)) as c:
        assert sum(1 for _ in c.decode(video=0)) == SMALL["num_frames"]

    running = server.submit(num_inference_steps=400)
    server.wait(running, ("running",), cond=lambda j: j["progress"]["step"] >= 1)
    assert HTTP.delete(f"{server.url}/v1/videos/{running}").status_code == 200
    job = server.wait(running)
    assert job["status"] == "cancelled" and job["progress"]["step"] < 400

    # The CLI watches the same stream.
    again = server.submit()
    cli = run_t2v(["jobs", "watch", again, "--url", server.url], env=server.env, timeout=120)
    assert cli.returncode == 0 and f"{again}: succeeded" in cli.stdout


def test_restart_with_queued_jobs_completes_them(tiny_model, tmp_path):
    s = Server(tmp_path / "home", tiny_model).start()
    ids = [s.submit(num_inference_steps=6, seed=i) for i in range(4)]
    s.stop()  # graceful: the running job goes back to the queue
    s2 = Server(tmp_path / "home", tiny_model, port=s.port).start()
    try:
        for j in ids:
            assert s2.wait(j)["status"] == "succeeded"
    finally:
        s2.stop()


def test_kill_9_during_a_job_resumes_and_succeeds_exactly_once(tiny_model, tmp_path):
    """The program as users start it: new ``python -m t2v serve`` processes, not forks. The restarted server
    sees that the killed process is gone and takes its job back at once: it does not wait for the heartbeat
    timeout (an hour here)."""
    home = tmp_path / "home"
    s = Server(home, tiny_model, fresh=True).start()
    job_id = s.submit(num_inference_steps=40, seed=3, num_frames=4, width=48, height=48)
    s.wait(job_id, ("running",), cond=lambda j: j["progress"]["step"] >= 5)
    s.stop(signal.SIGKILL)
    s2 = Server(home, tiny_model, port=s.port, fresh=True, extra_env={"T2V_STALE_AFTER_S": "3600"}).start()
    try:
        job = s2.wait(job_id)
        assert job["status"] == "succeeded", job["error"]
        assert job["attempts"] == 2
        assert job["result"]["metadata"]["resumed_from_step"] >= 4
        files = [f for f in job["result"]["files"] if f["format"] == "mp4"]
        assert len(files) == 1
        with av.open(io.BytesIO(HTTP.get(files[0]["url"]).content)) as c:
            assert sum(1 for _ in c.decode(video=0)) == 4
        listed = HTTP.get(f"{s2.url}/v1/videos?limit=50").json()["items"]
        assert [j["id"] for j in listed] == [job_id]
        assert not list((home / "checkpoints").glob("*.ckpt"))
    finally:
        s2.stop()


def test_kill_9_while_a_long_job_streams_resumes_to_the_uninterrupted_frames(tiny_model, tmp_path):
    """A long job in segments, killed (SIGKILL) once its clip is playing from the content route: the new server
    resumes it from the last segment done, streams it again, and the finished clip's frames are an uninterrupted
    run's (frames_sha256); its stream is gone."""
    from t2v import GenerationRequest, generate

    home = tmp_path / "home"
    # 20 steps a segment: after the first part plays, the two segments left take over a second, time to kill it
    fields = {"seconds": 3, "num_frames": 8, "fps": 8, "width": 32, "height": 32, "num_inference_steps": 20, "seed": 3}
    s = Server(home, tiny_model).start()
    job_id = s.submit(**fields)
    first = s.wait(job_id, ("running",), cond=lambda j: HTTP.get(
        f"{s.url}/v1/videos/{job_id}/content", headers={"Range": "bytes=0-"}, timeout=30).status_code == 206)
    assert first["status"] == "running"
    s.stop(signal.SIGKILL)
    s2 = Server(home, tiny_model, port=s.port).start()
    try:
        job = s2.wait(job_id)
        assert job["status"] == "succeeded", job["error"]
        record = HTTP.get(f"{s2.url}/v1/videos/{job_id}/metadata", timeout=30).json()
        assert job["attempts"] == 2 and record["long"]["resumed_from_segment"] >= 1
        whole = generate(GenerationRequest(prompt="a blue square moving up", model=str(tiny_model), formats=(),
                                           **fields))
        assert record["frames_sha256"] == whole.record["frames_sha256"] and record["long"]["frames"] == 24
        assert not (home / "videos" / job_id / "live.mp4").exists()
    finally:
        s2.stop()


def test_load_20_jobs_from_10_clients(server):
    small = {"num_frames": 2, "width": 16, "height": 16, "num_inference_steps": 1}
    earlier = all_jobs(server)  # (the module's server may have run other tests' jobs)
    for j in earlier:
        server.wait(j["id"])
    succeeded_before = sum(server.job(j["id"])["status"] == "succeeded" for j in earlier)

    def client(n):  # 10 at once, each submitting while the server already runs the others' jobs
        return [server.submit(prompt=f"load {n}-{i}", **small) for i in range(2)]

    with ThreadPoolExecutor(10) as pool:
        ids = [j for batch in pool.map(client, range(10)) for j in batch]
    assert len(set(ids)) == 20
    for j in ids:
        assert server.wait(j, timeout=300)["status"] == "succeeded"
    listed = all_jobs(server, limit=6)  # several pages
    assert sorted(j["id"] for j in listed) == sorted(ids + [j["id"] for j in earlier])  # each once, none lost
    assert all(j["attempts"] == 1 for j in listed if j["id"] in set(ids))
    metrics = HTTP.get(f"{server.url}/metrics").text
    assert f't2v_jobs{{status="succeeded"}} {20 + succeeded_before}' in metrics


def test_refuses_public_bind_without_keys(tiny_model, tmp_path):
    env = {**os.environ, "T2V_HOME": str(tmp_path / "home")}
    r = subprocess.run([sys.executable, "-m", "t2v", "serve", "--host", "0.0.0.0", "--port", str(free_port())],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2 and "without API keys" in r.stderr


def test_a_server_without_the_web_ui_serves_the_api_and_404_at_the_page(server):
    """T2V_UI=0 (what these tests' servers run with): the REST API, and nothing at / (the page's path)."""
    assert HTTP.get(f"{server.url}/healthz", timeout=30).status_code == 200
    assert HTTP.get(f"{server.url}/docs", timeout=30).status_code == 200
    assert HTTP.get(f"{server.url}/v1/videos", timeout=30).status_code == 200
    for path in ("/", "/gradio_api/info", "/config"):
        assert HTTP.get(f"{server.url}{path}", timeout=30).status_code == 404, path


UI_PROBE = """
import sys, uvicorn
uvicorn.run = lambda app, **kw: print("PROBE", "gradio" in sys.modules, any(getattr(r, "path", None) in ("", "/")
                                                                            for r in app.routes))
sys.argv = ["t2v", "serve", "--port", "1", *sys.argv[1:]]
from t2v.cli import main
main()
"""


@pytest.mark.parametrize(("args", "ui_env", "page"), [((), None, True), (("--no-ui",), None, False), ((), "0", False)])
def test_serve_mounts_the_page_unless_told_not_to_and_then_never_imports_gradio(tiny_model, tmp_path, args, ui_env,
                                                                                  page):
    """The page at / by default; `--no-ui` or T2V_UI=0 leave it out and Gradio unimported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("T2V_") or k == "T2V_CPU_BF16"}
    env.update(T2V_HOME=str(tmp_path / "home"), T2V_DEFAULT_MODEL=str(tiny_model), HF_HUB_OFFLINE="1",
               T2V_OFFLINE="1", **({"T2V_UI": ui_env} if ui_env is not None else {}))
    r = subprocess.run([sys.executable, "-c", UI_PROBE, *args], env=env, capture_output=True, text=True, timeout=120)
    assert f"PROBE {page} {page}" in r.stdout, r.stdout + r.stderr


def test_the_keyless_server_refuses_other_host_names_and_cross_site_posts(server):
    """`t2v serve` on 127.0.0.1 without keys: DNS rebinding (a foreign Host) and a web page's form post (CSRF)."""
    r = HTTP.get(f"{server.url}/v1/videos", headers={"Host": "rebound.attacker.example"})
    assert r.status_code == 400 and "loopback" in r.text
    body = {"request": json.dumps({"prompt": "csrf", "num_inference_steps": 1})}
    r = HTTP.post(f"{server.url}/v1/videos", data=body, headers={"Origin": "https://attacker.example"})
    assert r.status_code == 403 and "cross-site" in r.text
    assert not [j for j in all_jobs(server) if j["request"]["prompt"] == "csrf"]
    assert HTTP.get(f"{server.url}/healthz", headers={"Host": "localhost"}).status_code == 200
