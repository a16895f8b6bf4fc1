"""The Ray executor on a local 2-node Ray cluster (loopback), with PostgreSQL as the job store and moto's S3
server as the artifact store, behind real ``t2v serve`` / ``t2v worker`` processes."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.api.test_object_storage import storage_env
from tests.api.test_server import Server, free_port
from tests.raycluster import node_of, ray_cluster  # noqa: F401  (fixture)
from tests.s3server import bucket, objects, s3_endpoint, s3_env  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow

QUICK = {"num_frames": 4, "width": 32, "height": 32, "num_inference_steps": 2}


def cluster_env(s3_endpoint, bucket, database_url, **more) -> dict[str, str]:
    return storage_env(s3_endpoint, bucket, T2V_DATABASE_URL=database_url, T2V_CHECKPOINT_EVERY="1",
                       T2V_STALE_AFTER_S="3", T2V_HEARTBEAT_S="0.5", **more)


def job_objects(s3_endpoint, bucket, job_id) -> list[str]:
    return [k for k in objects(s3_endpoint, bucket) if job_id in k]


def test_jobs_spread_over_nodes_and_survive_losing_one(tiny_model, tmp_path, ray_cluster, pg_database, s3_endpoint,
                                                       bucket):
    env = cluster_env(s3_endpoint, bucket, pg_database)
    srv = Server(tmp_path / "api", tiny_model, extra_env=env,
                 args=["--executor", "ray", "--ray-address", ray_cluster.address, "--model", str(tiny_model)]).start()
    try:
        ready = httpx.get(f"{srv.url}/readyz").json()
        assert ready["executor"] == "ray" and ready["workers"] == ready["workers_alive"] == 2  # one per GPU
        assert {w["node_id"] for w in ready["where"]} == {n.node_id for n in ray_cluster.nodes}

        ids = [srv.submit(seed=s, **QUICK) for s in range(6)]
        jobs = [srv.wait(i) for i in ids]
        assert [j["status"] for j in jobs] == ["succeeded"] * 6, [j["error"] for j in jobs]
        ran_on = [j["result"]["metadata"]["ran_on"] for j in jobs]
        assert {r["executor"] for r in ran_on} == {"ray"}
        assert {r["node_id"] for r in ran_on} == {n.node_id for n in ray_cluster.nodes}, "both nodes ran jobs"
        assert all(r["actor_id"] and r["actor_name"].startswith("t2v-worker-") for r in ran_on)

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
        assert job_objects(s3_endpoint, bucket, long_id) == sorted(
            f"t2v/videos/{long_id}/{n}" for n in ("poster.png", "preview.png", "video.json", "video.mp4"))
    finally:
        srv.stop()


def _runner(srv, job_id: str) -> dict:
    """Where the worker running ``job_id`` is (/readyz lists each worker's node, actor and job)."""
    deadline = time.time() + 30
    while time.time() < deadline:
        found = [w for w in httpx.get(f"{srv.url}/readyz").json()["where"] if w["job"] == job_id]
        if found:
            return found[0]
        time.sleep(0.5)
    raise AssertionError(f"no worker reports running {job_id}")
