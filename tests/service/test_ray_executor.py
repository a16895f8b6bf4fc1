"""The Ray executor on a local 2-node Ray cluster (loopback), with PostgreSQL as the job store and moto's S3
server as the artifact store, behind real ``t2v serve`` / ``t2v worker`` processes.

Adds about two minutes: a 2-node Ray cluster (one for the file), PostgreSQL and an S3 server, with real API and worker
processes whose Ray actors each import torch and warm the model; one test removes a node mid-job and adds two."""

from __future__ import annotations

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.api.test_object_storage import storage_env
from tests.api.test_server import Server, free_port
from tests.forkserver import run_t2v, start_t2v
from tests.raycluster import node_of, ray_cluster  # noqa: F401  (fixture)
from tests.s3server import bucket, objects, s3_endpoint, s3_env, settled_objects  # noqa: F401  (fixtures)
from tests.web import HTTP

pytestmark = pytest.mark.slow

QUICK = {"num_frames": 4, "width": 32, "height": 32, "num_inference_steps": 2}


def cluster_env(s3_endpoint, bucket, database_url, **more) -> dict[str, str]:
    return storage_env(s3_endpoint, bucket, **{"T2V_DATABASE_URL": database_url, "T2V_CHECKPOINT_EVERY": "1",
                                               "T2V_STALE_AFTER_S": "3", "T2V_HEARTBEAT_S": "0.5",
                                               "T2V_LOG_LEVEL": "INFO", **more})


def job_objects(s3_endpoint, bucket, job_id) -> list[str]:
    return [k for k in objects(s3_endpoint, bucket) if job_id in k]


def wait_workers(srv, n: int, timeout: float = 180) -> dict:
    """/readyz once the server has ``n`` workers (actors), all alive."""
    deadline = time.time() + timeout
    while ((ready := HTTP.get(f"{srv.url}/readyz").json())["workers"], ready["workers_alive"]) != (n, n) \
            and time.time() < deadline:
        time.sleep(0.3)
    assert (ready["workers"], ready["workers_alive"]) == (n, n), (ready, srv.output())
    return ready


def _runner(srv, job_id: str) -> dict:
    """Where the worker running ``job_id`` is (/readyz lists each worker's node, actor and job)."""
    deadline = time.time() + 30
    while time.time() < deadline:
        found = [w for w in HTTP.get(f"{srv.url}/readyz").json()["where"] if w["job"] == job_id]
        if found:
            return found[0]
        time.sleep(0.5)
    raise AssertionError(f"no worker reports running {job_id}")


def start_worker(home, model, env: dict, *args: str):
    """``t2v worker`` (no API) over ``home``, its output in ``home/worker.log``."""
    home.mkdir(parents=True, exist_ok=True)
    return start_t2v(["worker", "--model", str(model), *args], {**Server(home, model).env, "T2V_HOME": str(home), **env},
                     home / "worker.log")


def test_16_jobs_from_8_clients_through_2_api_processes_run_exactly_once(tiny_model, tmp_path, ray_cluster,
                                                                        pg_database, s3_endpoint, bucket):
    """Two API processes with --no-workers behind "a load balancer" (clients alternate), one ``t2v worker`` driving
    two Ray actors; one PostgreSQL, one bucket. Then cancel, purge and delete from the other API process."""
    import sqlalchemy as sa

    # No worker dies here: a heartbeat late by seconds on a loaded machine must not count as one (attempts == 1).
    env = cluster_env(s3_endpoint, bucket, pg_database, T2V_STALE_AFTER_S="15")
    apis = [Server(tmp_path / f"api-{i}", tiny_model, extra_env=env, args=["--no-workers"]) for i in range(2)]
    worker = start_worker(tmp_path / "workers", tiny_model, env, "--executor", "ray", "--ray-address",
                          ray_cluster.address, "--workers", "2")
    try:
        with ThreadPoolExecutor(2) as pool:  # the three processes start side by side (each mostly imports)
            list(pool.map(lambda api: api.start(), apis))
        ready = HTTP.get(f"{apis[0].url}/readyz").json()
        assert (ready["ready"], ready["executor"], ready["workers"]) == (True, "none", 0)

        # 8 clients at once, each alternating between the two processes: every submit races 7 others and the two
        # actors claim from one queue (2 each keeps both sides of the race: every client submits to both).
        def client(n: int) -> list[str]:
            return [apis[(n + i) % 2].submit(seed=100 * n + i, **QUICK) for i in range(2)]

        with ThreadPoolExecutor(8) as pool:
            ids = [i for batch in pool.map(client, range(8)) for i in batch]
        assert len(set(ids)) == 16
        jobs = [apis[k % 2].wait(i, timeout=300) for k, i in enumerate(ids)]
        assert worker.poll() is None, (tmp_path / "workers" / "worker.log").read_text()[-3000:]
        assert [j["status"] for j in jobs] == ["succeeded"] * 16, [j["error"] for j in jobs if j["error"]]
        assert [j["attempts"] for j in jobs] == [1] * 16, "each job ran exactly once"
        assert {j["result"]["metadata"]["ran_on"]["node_id"] for j in jobs} == {n.node_id for n in ray_cluster.nodes}

        engine = sa.create_engine(pg_database.replace("postgresql://", "postgresql+psycopg://", 1))
        with engine.connect() as c:
            rows = c.execute(sa.text("SELECT id, status, attempts FROM jobs")).all()
        engine.dispose()
        assert sorted(r.id for r in rows) == sorted(ids) and {(r.status, r.attempts) for r in rows} == {("succeeded", 1)}
        expected = sorted(f"t2v/videos/{i}/{n}" for i in ids for n in ("poster.png", "preview.png", "video.json",
                                                                        "video.mp4"))
        assert settled_objects(s3_endpoint, bucket, expected) == expected, "the bucket and the database agree"

        # Pause from the other process while an actor runs it: the actor hands it back (checkpoint in the bucket),
        # it waits paused; resumed, an actor finishes it from that checkpoint.
        held = apis[0].submit(seed=8, num_inference_steps=60, num_frames=4, width=48, height=48)
        apis[1].wait(held, ("running",), cond=lambda j: j["progress"]["step"] >= 2)
        assert HTTP.post(f"{apis[1].url}/v1/videos/{held}/pause").status_code == 200
        paused = apis[0].wait(held, ("paused",), timeout=60)
        assert paused["attempts"] == 0 and f"t2v/checkpoints/{held}.ckpt" in objects(s3_endpoint, bucket)
        assert HTTP.post(f"{apis[0].url}/v1/videos/{held}/resume").status_code == 200
        resumed = apis[1].wait(held, timeout=300)  # a loaded machine runs the actors slowly
        assert resumed["status"] == "succeeded" and resumed["result"]["metadata"]["resumed_from_step"] >= 2
        twin_id = apis[1].submit(seed=8, num_inference_steps=60, num_frames=4, width=48, height=48)
        twin = apis[1].wait(twin_id, timeout=300)  # the same request, never paused
        assert twin["result"]["metadata"]["frames_sha256"] == resumed["result"]["metadata"]["frames_sha256"]

        # Cancel with purge from the other process while an actor runs it: the job ends cancelled, its objects go.
        long_id = apis[0].submit(seed=7, num_inference_steps=200, num_frames=4, width=48, height=48)
        apis[1].wait(long_id, ("running",), cond=lambda j: j["progress"]["step"] >= 2)
        assert job_objects(s3_endpoint, bucket, long_id), "its checkpoint and preview are in the bucket"
        r = HTTP.delete(f"{apis[1].url}/v1/videos/{long_id}?purge=true")
        assert r.status_code == 200, r.text
        assert apis[0].wait(long_id, timeout=60)["status"] == "cancelled"
        deadline = time.time() + 30
        while job_objects(s3_endpoint, bucket, long_id) and time.time() < deadline:
            time.sleep(0.3)
        assert job_objects(s3_endpoint, bucket, long_id) == []

        # Delete a finished job through the process that did not queue it: row and objects gone, the rest kept.
        gone = ids[0]
        assert HTTP.delete(f"{apis[1].url}/v1/videos/{gone}?remove=true").status_code in (200, 204)
        assert HTTP.get(f"{apis[0].url}/v1/videos/{gone}").status_code == 404
        assert [k for k in objects(s3_endpoint, bucket) if held not in k and twin_id not in k] == [
            k for k in expected if gone not in k]
    finally:
        worker.terminate()
        try:
            worker.wait(60)
        except subprocess.TimeoutExpired:
            worker.kill()
        for api in apis:
            api.stop()


# Last in the file: it removes a node from the file's cluster and adds two (tests/raycluster.py).
def test_jobs_spread_over_nodes_and_survive_losing_one(tiny_model, tmp_path, ray_cluster, pg_database, s3_endpoint,
                                                       bucket):
    env = cluster_env(s3_endpoint, bucket, pg_database)
    srv = Server(tmp_path / "api", tiny_model, extra_env=env,
                 args=["--executor", "ray", "--ray-address", ray_cluster.address, "--model", str(tiny_model)]).start()
    try:
        # Ready once one actor serves; the second may still be starting (loading torch, warming the model).
        ready = wait_workers(srv, 2)
        assert ready["executor"] == "ray"  # one actor per GPU
        assert {w["node_id"] for w in ready["where"]} == {n.node_id for n in ray_cluster.nodes}

        ids = [srv.submit(seed=s, **QUICK) for s in range(6)]
        jobs = [srv.wait(i) for i in ids]
        assert [j["status"] for j in jobs] == ["succeeded"] * 6, [j["error"] for j in jobs]
        ran_on = [j["result"]["metadata"]["ran_on"] for j in jobs]
        assert {r["executor"] for r in ran_on} == {"ray"}, ran_on
        assert {r["node_id"] for r in ran_on} == {n.node_id for n in ray_cluster.nodes}, ("both nodes ran jobs", ran_on)
        assert all(r["actor_id"] and r["actor_name"].startswith("t2v-worker-") for r in ran_on), ran_on

        # A longer video streams each segment as it is joined: this API process serves the clip so far from the
        # object the actor uploads after each part, wherever its node is.
        streamed = srv.submit(seed=3, seconds=2.0, fps=8, num_frames=8, width=32, height=32, num_inference_steps=12)
        parts = []
        while (job := srv.job(streamed))["status"] in ("queued", "running"):
            part = HTTP.get(f"{srv.url}/v1/videos/{streamed}/content", headers={"Range": "bytes=0-"}, timeout=30)
            if part.status_code == 206:
                parts.append(part.content)
            time.sleep(0.05)
        assert job["status"] == "succeeded", job["error"]
        final = HTTP.get(f"{srv.url}/v1/videos/{streamed}/content", timeout=30)
        assert parts and final.status_code == 200 and len(parts[0]) < len(final.content), (len(parts), srv.output())
        assert job["result"]["metadata"]["ran_on"]["executor"] == "ray"
        assert not [k for k in job_objects(s3_endpoint, bucket, streamed) if k.endswith("live.mp4")]

        long_id = srv.submit(seed=9, num_inference_steps=60, num_frames=4, width=48, height=48)
        srv.wait(long_id, ("running",), cond=lambda j: j["progress"]["step"] >= 3)
        runner = _runner(srv, long_id)
        assert f"t2v/checkpoints/{long_id}.ckpt" in objects(s3_endpoint, bucket)
        ray_cluster.cluster.remove_node(node_of(ray_cluster, runner["node_id"]), allow_graceful=False)

        job = srv.wait(long_id, timeout=150)
        assert job["status"] == "succeeded", job["error"]
        assert job["attempts"] == 2, "requeued once, run again once"
        meta = job["result"]["metadata"]
        assert meta["resumed_from_step"] >= 3, "resumed from the checkpoint in the bucket"
        assert meta["ran_on"]["node_id"] != runner["node_id"]
        expected = sorted(f"t2v/videos/{long_id}/{n}" for n in ("poster.png", "preview.png", "video.json", "video.mp4"))
        assert settled_objects(s3_endpoint, bucket, [], "t2v/checkpoints/") == []
        assert job_objects(s3_endpoint, bucket, long_id) == expected

        # Nodes join (as Ray's autoscaler or `ray start` adds them): the lost actor restarts on one, and the
        # executor adds an actor for the extra GPU.
        from tests.raycluster import NODE

        new = [ray_cluster.cluster.add_node(**NODE) for _ in range(2)]
        ready = wait_workers(srv, 3)  # (the lost node's GPU may count a while: an extra actor waits, then goes)
        assert {w["node_id"] for w in ready["where"]} == {n.node_id for n in new} | {meta["ran_on"]["node_id"]}
    finally:
        srv.stop()


def test_an_unreachable_ray_cluster_stops_the_server_at_start(tiny_model, tmp_path):
    env = Server(tmp_path / "home", tiny_model).env
    r = run_t2v(["serve", "--port", free_port(), "--executor", "ray", "--ray-address", f"127.0.0.1:{free_port()}"],
                env=env, timeout=120)
    assert r.returncode == 1 and "could not reach the Ray cluster at 127.0.0.1:" in r.stderr, r.stderr
    assert "ray start --head" in r.stderr and "Traceback" not in r.stderr
    r = run_t2v(["worker", "--executor", "ray", "--ray-address", "nonsense"], env=env, timeout=120)
    assert r.returncode == 1 and "is not HOST:PORT" in r.stderr and "Traceback" not in r.stderr, r.stderr
