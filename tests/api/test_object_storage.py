"""Job files in S3 (moto's server on loopback) behind real ``t2v serve`` processes: outputs, previews, posters and
checkpoints are objects in the bucket, served with Range or by presigned redirect, removed with the job, and a
job killed on one machine resumes on another (its own home folder) from the checkpoint in the bucket."""

from __future__ import annotations

import io
import signal
import time

import av
import pytest

from tests.api.conftest import SMALL
from tests.api.test_server import Server, free_port
from tests.forkserver import run_t2v
from tests.s3server import S3_ENV, bucket, objects, s3_endpoint, s3_env, settled_objects  # noqa: F401  (fixtures)
from tests.servers import make_keys, serve
from tests.web import HTTP

pytestmark = pytest.mark.slow


def storage_env(endpoint: str, bucket: str, **more) -> dict[str, str]:
    return {"T2V_STORAGE_URL": f"s3://{bucket}/t2v", "T2V_S3_ENDPOINT_URL": endpoint, **S3_ENV, **more}


def wait(url: str, job_id: str, headers=None, timeout=120, cond=None) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = HTTP.get(f"{url}/v1/videos/{job_id}", headers=headers, timeout=30).json()
        if (cond or (lambda j: j["status"] in ("succeeded", "failed", "cancelled")))(job):
            return job
        time.sleep(0.1)
    raise AssertionError(f"{job_id}: {job['status']} after {timeout}s")


def test_files_live_in_the_bucket_served_with_range_and_removed(tiny_model, tmp_path, s3_endpoint, bucket):
    import boto3

    home = tmp_path / "home"
    alice, bob = make_keys(home, ("alice", {}), ("bob", {}))
    a, b = {"Authorization": f"Bearer {alice}"}, {"Authorization": f"Bearer {bob}"}
    with serve(home, str(tiny_model), model_roots=tmp_path.parent, workers=2,
               env=storage_env(s3_endpoint, bucket)) as srv:
        r = HTTP.post(f"{srv.url}/v1/videos", json={"prompt": "a red square", **SMALL, "seed": 4}, headers=a)
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        job = wait(srv.url, job_id, a)
        assert job["status"] == "succeeded", job["error"]

        names = objects(s3_endpoint, bucket)
        assert names == sorted(f"t2v/videos/{job_id}/{n}" for n in ("poster.png", "preview.png", "video.json", "video.mp4"))
        assert not (home / "videos" / job_id).exists() and not (home / "scratch" / "videos" / job_id).exists()
        stored = boto3.client("s3", endpoint_url=s3_endpoint).get_object(
            Bucket=bucket, Key=f"t2v/videos/{job_id}/video.mp4")["Body"].read()

        content = f"{srv.url}/v1/videos/{job_id}/content"
        full = HTTP.get(content, headers=a)
        assert full.status_code == 200 and full.content == stored and full.headers["accept-ranges"] == "bytes"
        part = HTTP.get(content, headers={**a, "Range": "bytes=10-19"})
        assert part.status_code == 206 and part.content == stored[10:20]
        assert part.headers["content-range"] == f"bytes 10-19/{len(stored)}"
        assert HTTP.get(content, headers={**a, "Range": "bytes=-5"}).content == stored[-5:]
        assert HTTP.get(content, headers={**a, "Range": f"bytes={len(stored)}-"}).status_code == 416
        with av.open(io.BytesIO(full.content)) as c:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        assert len(frames) == SMALL["num_frames"] and frames[0].shape == (SMALL["height"], SMALL["width"], 3)
        poster = HTTP.get(f"{srv.url}/v1/videos/{job_id}/poster", headers=a)
        assert poster.status_code == 200 and poster.content.startswith(b"\x89PNG")

        for path in ("content", "poster", "preview", "metadata"):  # another key's job is not there at all
            assert HTTP.get(f"{srv.url}/v1/videos/{job_id}/{path}", headers=b).status_code == 404

        assert HTTP.delete(f"{srv.url}/v1/videos/{job_id}?remove=true", headers=a).status_code in (200, 204)
        assert objects(s3_endpoint, bucket) == []
        assert HTTP.get(f"{srv.url}/v1/videos/{job_id}", headers=a).status_code == 404


def test_presigned_redirect(tiny_model, tmp_path, s3_endpoint, bucket):
    s = Server(tmp_path / "home", tiny_model, extra_env=storage_env(s3_endpoint, bucket, T2V_STORAGE_PRESIGN="1")).start()
    try:
        job_id = s.submit(seed=2)
        assert s.wait(job_id)["status"] == "succeeded"
        r = HTTP.get(f"{s.url}/v1/videos/{job_id}/content")
        assert r.status_code == 307 and r.headers["location"].startswith(f"{s3_endpoint}/{bucket}/t2v/videos/{job_id}/")
        direct = HTTP.get(r.headers["location"], headers={"Range": "bytes=0-99"})
        assert direct.status_code == 206 and len(direct.content) == 100
        assert HTTP.get(f"{s.url}/v1/videos/{job_id}/content", follow_redirects=True).content[:100] == direct.content
    finally:
        s.stop()


def test_a_job_killed_on_one_machine_resumes_on_another_from_the_bucket(tiny_model, tmp_path, s3_endpoint, bucket):
    """Two "machines": their own home folders (no shared disk), one database, one bucket."""
    env = storage_env(s3_endpoint, bucket, T2V_DATABASE_URL=f"sqlite:///{tmp_path / 'jobs.db'}", T2V_CHECKPOINT_EVERY="1")
    first = Server(tmp_path / "machine-a", tiny_model, extra_env=env).start()
    job_id = first.submit(num_inference_steps=40, seed=3, num_frames=4, width=48, height=48)
    first.wait(job_id, ("running",), cond=lambda j: j["progress"]["step"] >= 4)
    first.stop(signal.SIGKILL)
    assert f"t2v/checkpoints/{job_id}.ckpt" in objects(s3_endpoint, bucket)
    second = Server(tmp_path / "machine-b", tiny_model, port=first.port, extra_env=env).start()
    try:
        job = second.wait(job_id)
        assert job["status"] == "succeeded", job["error"]
        assert job["attempts"] == 2 and job["result"]["metadata"]["resumed_from_step"] >= 4
        assert not (tmp_path / "machine-b" / "checkpoints").exists()  # it came from the bucket, not a local file
        assert settled_objects(s3_endpoint, bucket, [], "t2v/checkpoints/") == []  # dropped once the job succeeded
        assert f"t2v/videos/{job_id}/video.mp4" in objects(s3_endpoint, bucket)
    finally:
        second.stop()


def test_an_unreachable_bucket_stops_the_server_at_start(tiny_model, tmp_path, s3_endpoint, s3_env):
    env = {**Server(tmp_path / "home", tiny_model).env, **storage_env(s3_endpoint, "t2v-no-such-bucket")}
    r = run_t2v(["serve", "--port", free_port()], env=env, timeout=120)
    assert r.returncode != 0 and "cannot reach bucket 't2v-no-such-bucket'" in r.stderr
    assert "Traceback" not in r.stderr
