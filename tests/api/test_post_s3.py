"""Post-processing jobs and video assets with object storage (moto's S3 server on loopback) and the work split over
two "nodes" (two apps over one database and bucket, each with its own T2V_HOME): the API node takes the upload and
the jobs, the worker node reads the video asset and the finished job's video from the bucket, nothing from the
other node's disk or memory."""

from __future__ import annotations

import hashlib

from fastapi.testclient import TestClient

from t2v.api import create_app
from t2v.export import decode_video
from tests.api.conftest import SMALL, make_settings, wait_for
from tests.api.test_post_api import BLEND2, clip_bytes, upload
from tests.s3server import bucket, objects, s3_endpoint, s3_env  # noqa: F401  (fixtures)

PREFIX = "t2v"


def test_post_jobs_read_their_sources_from_the_bucket_on_another_node(tiny_model, tmp_path, s3_endpoint, bucket):
    shared = dict(storage_url=f"s3://{bucket}/{PREFIX}", s3_endpoint_url=s3_endpoint,
                  database_url=f"sqlite:///{tmp_path / 'shared.db'}")
    front, node = (make_settings(tmp_path / name, tiny_model, **shared) for name in ("front", "node"))
    data = clip_bytes(tmp_path)
    with TestClient(create_app(front, start_workers=False)) as api, TestClient(create_app(node)):
        asset = upload(api, data, "clip.mp4").json()
        assert objects(s3_endpoint, bucket) == [f"{PREFIX}/assets/{asset['id']}.mp4"]
        from_asset = wait_for(api, api.post("/v1/post", json={"asset": asset["id"], "post": BLEND2}).json()["id"])
        assert from_asset["status"] == "succeeded", from_asset["error"]
        meta = api.get(f"/v1/videos/{from_asset['id']}/metadata").json()
        assert meta["post_history"][-1]["input_sha256"] == hashlib.sha256(data).hexdigest()
        made = wait_for(api, api.post("/v1/videos", json={"prompt": "a red ball", "fps": 8, **SMALL}).json()["id"])
        assert made["status"] == "succeeded", made["error"]
        from_job = wait_for(api, api.post("/v1/post", json={"job": made["id"], "post": BLEND2}).json()["id"])
        assert from_job["status"] == "succeeded", from_job["error"]
        r = api.get(f"/v1/videos/{from_job['id']}/content")
        assert r.status_code == 200
        (tmp_path / "out.mp4").write_bytes(r.content)
        frames, fps = decode_video(tmp_path / "out.mp4")
        assert frames.shape[0] == 2 * SMALL["num_frames"] - 1 and fps == 16
        assert f"{PREFIX}/videos/{from_job['id']}/video.mp4" in objects(s3_endpoint, bucket)
    # the worker node read both sources through its cache of the bucket; neither node keeps files of its own
    cache = node.home / "cache" / "artifacts"
    assert (cache / "assets" / f"{asset['id']}.mp4").read_bytes() == data
    assert (cache / "videos" / made["id"] / "video.mp4").is_file()
    assert not (front.home / "assets").exists() and not (node.home / "assets").exists()
