"""LoRA jobs through a real ``t2v serve --model M --workers 2`` with keys on: jobs asking for different adapters,
submitted at once while the model warms, a kill -9 in the middle and a restart; each job's frames equal the same
job run alone, and the adapters it ran with are in its record."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.api.test_server import Server
from tests.families.checks import random_lora
from tests.forkserver import run_t2v
from tests.web import HTTP

pytestmark = pytest.mark.slow
STEPS = 40


@pytest.fixture
def setup(tmp_path):
    from diffusers import WanPipeline, WanTransformer3DModel

    from tests.tinymodels import make_tiny_model

    roots = tmp_path / "models"
    wan = make_tiny_model("wan", roots / "wan", seed=0)
    a, b = (random_lora(WanTransformer3DModel, wan, roots / f"lora{i}", seed=i, pipeline_cls=WanPipeline)
            for i in (1, 2))
    home = tmp_path / "home"
    env = {**os.environ, "T2V_HOME": str(home)}
    done = run_t2v(["keys", "create", "--name", "alice"], env=env)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    return home, roots, wan, a, b, out.split()[-1]


def test_jobs_with_different_adapters_through_a_killed_and_restarted_server_match_each_run_alone(setup):
    home, roots, wan, a, b, key = setup
    auth = {"Authorization": f"Bearer {key}"}
    server = Server(home, wan, extra_env={"T2V_MODEL_ROOTS": str(roots)}, ready_path="/healthz",
                    args=["--model", str(wan), "--workers", "2"]).start()
    asks = [[{"path": str(a), "scale": 0.8}], [{"path": str(b), "scale": 1.2}], [],
            [{"path": str(a), "scale": 0.5}, {"path": str(b), "scale": 0.5}]]

    def submit(loras):
        # a submit while the server warms its model waits for the planner's first dry runs (three for a transformer)
        r = HTTP.post(f"{server.url}/v1/videos", headers=auth, timeout=120,
                       json={"prompt": "a fox", "seed": 3, "num_inference_steps": STEPS, "loras": loras})
        assert r.status_code == 202, r.text
        return r.json()["id"]

    def job(job_id):
        return HTTP.get(f"{server.url}/v1/videos/{job_id}", headers=auth, timeout=30).json()

    try:
        with ThreadPoolExecutor(len(asks)) as pool:  # at once, while the server warms its model
            ids = list(pool.map(submit, asks))
        deadline = time.time() + 180
        while not any(j["status"] == "running" and j["progress"]["step"] >= 6 for j in map(job, ids)):
            assert time.time() < deadline, [job(i) for i in ids]
            time.sleep(0.05)
        server.stop(signal.SIGKILL)
        server.start()
        deadline = time.time() + 300
        while True:
            jobs = [job(i) for i in ids]
            if all(j["status"] in ("succeeded", "failed") for j in jobs):
                break
            assert time.time() < deadline, jobs
            time.sleep(0.2)
        assert [j["status"] for j in jobs] == ["succeeded"] * len(ids), jobs
        assert any(j["attempts"] == 2 for j in jobs), "the kill hit a running job, which ran again"
        records = [HTTP.get(f"{server.url}/v1/videos/{i}/metadata", headers=auth, timeout=30).json() for i in ids]
        assert HTTP.get(f"{server.url}/v1/videos/{ids[0]}/metadata", timeout=30).status_code == 401
    finally:
        server.stop()
    import t2v

    for loras, record in zip(asks, records):
        assert [(x["scale"], x["experts"]) for x in record.get("adapters", [])] == [(x["scale"], "both") for x in loras]
        alone = t2v.generate("a fox", model=str(wan), seed=3, num_inference_steps=STEPS, loras=loras, progress=False)
        assert record["frames_sha256"] == alone.record["frames_sha256"], loras
