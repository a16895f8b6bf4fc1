"""Batches on a real ``t2v serve`` (tiny model, one worker, API keys on) and through ``t2v batch``: one id for
many jobs, all or none (or partial), idempotent, counts, and cancel / pause / resume as a whole."""

from __future__ import annotations

import json
import os
import time

import httpx
import pytest

from tests.forkserver import run_t2v
from tests.servers import make_keys, serve
from tests.web import HTTP

QUICK = {"num_frames": 4, "width": 32, "height": 32, "num_inference_steps": 2}
LONG = {"num_frames": 4, "width": 32, "height": 32, "num_inference_steps": 60}


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    home = tmp_path_factory.mktemp("batch-home")
    key, other, small = make_keys(home, ("main", {}), ("other", {}), ("small", {"max_queued": 3}))
    with serve(home, str(tiny_model), model_roots=tmp_path_factory.getbasetemp()) as s:
        yield s, key, other, small, home


def call(s, key, method, path, headers=None, **kw) -> httpx.Response:
    return HTTP.request(method, f"{s.url}{path}", headers={"Authorization": f"Bearer {key}", **(headers or {})},
                         timeout=30, **kw)


def wait_counts(s, key, batch_id, until, timeout=120) -> dict:
    deadline = time.monotonic() + timeout
    while not until((b := call(s, key, "GET", f"/v1/batches/{batch_id}").json())["counts"]):
        assert time.monotonic() < deadline, b
        time.sleep(0.2)
    return b


def test_a_batch_queues_every_line_under_one_id_and_runs_them(server):
    s, key, other, _, _ = server
    lines = [{"prompt": f"a red ball {i}", "seed": i, **QUICK} for i in range(3)]
    r = call(s, key, "POST", "/v1/batches", json={"requests": lines, "idempotency_key": "nightly-1"})
    assert r.status_code == 202, r.text
    batch = r.json()
    assert batch["total"] == 3 and len(batch["job_ids"]) == 3 and batch["invalid"] == []
    again = call(s, key, "POST", "/v1/batches", json={"requests": lines, "idempotency_key": "nightly-1"})
    assert again.status_code == 200 and again.json()["id"] == batch["id"], "the same batch, not queued twice"
    done = wait_counts(s, key, batch["id"], lambda c: c["succeeded"] == 3)
    assert done["counts"]["queued"] == 0
    seeds = [call(s, key, "GET", f"/v1/videos/{j}/metadata").json()["seed"] for j in batch["job_ids"]]
    assert seeds == [0, 1, 2]
    assert call(s, other, "GET", f"/v1/batches/{batch['id']}").status_code == 404, "another key's batch"

    jsonl = "\n".join(json.dumps({"prompt": f"line {i}", **QUICK}) for i in range(2)) + "\n"
    r = call(s, key, "POST", "/v1/batches?priority=5", content=jsonl, headers={"Content-Type": "application/jsonl"})
    assert r.status_code == 202 and r.json()["total"] == 2, r.text
    job = call(s, key, "GET", f"/v1/videos/{r.json()['job_ids'][0]}").json()
    assert job["priority"] == 5


def test_one_invalid_line_queues_nothing_unless_partial(server):
    s, key, _, small, _ = server
    lines = [{"prompt": "fine", **QUICK}, {"prompt": "bad", **QUICK, "width": 33}, {"prompt": "odd", "bogus": 1}]
    before = call(s, key, "GET", "/v1/videos?limit=200").json()["items"]
    r = call(s, key, "POST", "/v1/batches", json={"requests": lines})
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert [(d["line"], d["loc"][-1]) for d in detail] == [(2, "width"), (3, "bogus")]
    assert "nearest valid: 32" in detail[0]["msg"]
    assert len(call(s, key, "GET", "/v1/videos?limit=200").json()["items"]) == len(before), "nothing queued"

    r = call(s, key, "POST", "/v1/batches", json={"requests": lines, "partial": True})
    assert r.status_code == 202 and r.json()["total"] == 1
    assert [p["line"] for p in r.json()["invalid"]] == [2, 3]

    # a key's queue limit holds for a batch as a whole
    r = call(s, small, "POST", "/v1/batches", json={"requests": [{"prompt": "x", **QUICK}] * 4})
    assert r.status_code == 429 and "4 more would pass its limit of 3" in r.text


def test_a_batch_pauses_resumes_and_cancels_as_a_whole(server):
    s, key, _, _, _ = server
    lines = [{"prompt": f"slow {i}", "seed": i, **LONG} for i in range(3)]
    batch = call(s, key, "POST", "/v1/batches", json={"requests": lines}).json()
    wait_counts(s, key, batch["id"], lambda c: c["running"] == 1)
    paused = call(s, key, "POST", f"/v1/batches/{batch['id']}/pause").json()
    assert paused["changed"] == 3
    wait_counts(s, key, batch["id"], lambda c: c["paused"] == 3)
    r = call(s, key, "POST", f"/v1/batches/{batch['id']}/resume").json()
    assert r["changed"] == 3
    wait_counts(s, key, batch["id"], lambda c: c["running"] == 1)
    r = call(s, key, "POST", f"/v1/batches/{batch['id']}/cancel").json()
    assert r["changed"] == 3
    done = wait_counts(s, key, batch["id"], lambda c: c["cancelled"] == 3)
    assert done["total"] == 3
    assert call(s, key, "POST", f"/v1/batches/{batch['id']}/explode").status_code == 422


def test_t2v_batch_reads_json_lines_for_a_server_and_for_this_machine(server, tmp_path, tiny_model):
    s, key, _, _, _ = server
    good = tmp_path / "jobs.jsonl"
    good.write_text("".join(json.dumps({"prompt": f"a blue square {i}", **QUICK}) + "\n" for i in range(2)))
    env = {**os.environ}
    r = run_t2v(["batch", good, "--server", s.url, "--key", key, "--json"], env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["total"] == 2
    r = run_t2v(["batches", "show", data["id"], "--server", s.url, "--key", key], env=env, timeout=60)
    assert r.returncode == 0 and f"batch {data['id']}: 2 jobs" in r.stdout, r.stderr

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "ok", **QUICK}) + "\n{not json\n")
    r = run_t2v(["batch", bad, "--server", s.url, "--key", key], env=env, timeout=60)
    assert r.returncode == 2 and "line 2: not JSON" in r.stderr

    home = tmp_path / "local-home"
    local = {**env, "T2V_HOME": str(home), "T2V_DEFAULT_MODEL": str(tiny_model)}
    r = run_t2v(["batch", good], env=local, timeout=120)
    assert r.returncode == 0 and "2 jobs (2 queued)" in r.stdout, r.stderr
    batch_id = r.stdout.split()[1].rstrip(":")
    r = run_t2v(["batches", "pause", batch_id], env=local, timeout=60)
    assert r.returncode == 0 and "2 jobs (2 paused)" in r.stdout, r.stderr
