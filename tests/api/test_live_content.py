"""The clip a running job streams, served while it runs: ``GET /v1/videos/{id}/content`` (and the OpenAI-style
route) answers with the mp4 so far once the first part is made, a Range gets the bytes that exist, a response
without Range follows the file to the job's end; another key's job stays 404; the finished file (with its record)
is served once the job has succeeded, and the stream is gone."""

from __future__ import annotations

import threading

import av
import pytest
from fastapi.testclient import TestClient

from t2v.api import create_app
from t2v.export.metadata import read_embedded
from t2v.export.stream import ClipStream
from t2v.service.keys import create_key
from tests.api.conftest import make_settings, wait_for
from tests.s3server import bucket, objects, s3_endpoint, s3_env  # noqa: F401  (fixtures)


@pytest.fixture(scope="module")
def df(tmp_path_factory):
    from tests.tinymodels import make_tiny_model

    return make_tiny_model("skyreels-v2-df", tmp_path_factory.mktemp("df") / "df", seed=0)


def frames_in(data: bytes, path) -> int:
    path.write_bytes(data)
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def test_a_running_job_serves_its_clip_so_far_then_the_finished_file(df, tmp_path, monkeypatch):
    first_part, go_on = held_after_first_part(monkeypatch)  # the worker stops after its first part until we looked
    # the worker waits for the test with its job running: a heartbeat late on a loaded machine must not requeue it
    app = create_app(make_settings(tmp_path / "home", df, stale_after_s=60))
    service = app.state.service
    _, alice = create_key(service.repo.keys, "alice")
    _, bob = create_key(service.repo.keys, "bob")
    a, b = {"Authorization": f"Bearer {alice}"}, {"Authorization": f"Bearer {bob}"}
    with TestClient(app) as client:
        job = client.post("/v1/videos", json={"prompt": "a red fox", "num_frames": 17, "seed": 5}, headers=a).json()
        assert first_part.wait(120)
        assert client.get(f"/v1/videos/{job['id']}", headers=a).json()["status"] == "running"
        part = client.get(f"/v1/videos/{job['id']}/content", headers={**a, "Range": "bytes=0-"})
        assert part.status_code == 206 and part.headers["content-range"].endswith("/*"), part.text
        assert part.headers["cache-control"] == "no-store" and part.headers["content-type"] == "video/mp4"
        assert frames_in(part.content, tmp_path / "part.mp4") == 8  # the first window's 9 frames, less the newest
        assert client.get(f"/openai/v1/videos/{job['id']}/content", headers={**a, "Range": "bytes=0-99"}).status_code == 206
        assert client.get(f"/v1/videos/{job['id']}/content", headers=b).status_code == 404
        assert client.get(f"/v1/videos/{job['id']}/content", headers={**a, "Range": "bytes=99999999-"}).status_code == 416

        followed = {}

        def follow() -> None:  # a player without Range: the bytes so far, then each part, to the job's end
            followed["r"] = client.get(f"/v1/videos/{job['id']}/content", headers=a)

        reader = threading.Thread(target=follow)
        reader.start()
        go_on.set()
        reader.join(120)
        assert followed["r"].status_code == 200 and followed["r"].headers.get("x-t2v-clip") == "growing"
        assert frames_in(followed["r"].content, tmp_path / "followed.mp4") == 17

        done = wait_for(client, job["id"], headers=a)
        assert done["status"] == "succeeded"
        final = client.get(f"/v1/videos/{job['id']}/content", headers=a)
        assert final.status_code == 200 and "x-t2v-clip" not in final.headers
        (tmp_path / "final.mp4").write_bytes(final.content)
        assert read_embedded(tmp_path / "final.mp4")["seed"] == 5
        assert frames_in(final.content, tmp_path / "final.mp4") == 17
        assert not service.files.live_path(job["id"]).exists()


def held_after_first_part(monkeypatch):
    """(first part written, let the worker go on): the worker waits after its first streamed part."""
    first_part, go_on = threading.Event(), threading.Event()
    real = ClipStream.frames

    def held(stream, frames):
        n = real(stream, frames)
        if not first_part.is_set():
            first_part.set()
            assert go_on.wait(60)
        return n

    monkeypatch.setattr(ClipStream, "frames", held)
    return first_part, go_on


def test_with_object_storage_the_clip_so_far_is_an_object_until_the_finished_one(df, tmp_path, monkeypatch,
                                                                                  s3_endpoint, bucket):
    """The worker uploads the clip after each part (its API processes may be on other machines): an API process
    without the file sends that object; once the job is done the object is gone and the finished one is there."""
    first_part, go_on = held_after_first_part(monkeypatch)
    settings = make_settings(tmp_path / "home", df, storage_url=f"s3://{bucket}/t2v", s3_endpoint_url=s3_endpoint)
    with TestClient(create_app(settings)) as client:
        service = client.app.state.service
        job = client.post("/v1/videos", json={"prompt": "a red fox", "num_frames": 17, "seed": 5}).json()
        assert first_part.wait(120)
        live_key = f"t2v/videos/{job['id']}/live.mp4"
        assert live_key in objects(s3_endpoint, bucket)
        here = service.files.live_path(job["id"])
        away = here.with_name("elsewhere.mp4")
        here.rename(away)  # as an API process on another machine sees it: no file, the object
        try:
            r = client.get(f"/v1/videos/{job['id']}/content", headers={"Range": "bytes=0-"})
            assert r.status_code == 206 and r.headers["cache-control"] == "no-store"
            assert frames_in(r.content, tmp_path / "object.mp4") == 8
        finally:
            away.rename(here)
            go_on.set()
        assert wait_for(client, job["id"])["status"] == "succeeded"
        stored = objects(s3_endpoint, bucket)
        assert live_key not in stored and any(k.endswith(".mp4") and k.startswith(f"t2v/videos/{job['id']}/")
                                              for k in stored)
        assert frames_in(client.get(f"/v1/videos/{job['id']}/content").content, tmp_path / "final.mp4") == 17


def test_a_queued_job_has_no_content_yet(df, tmp_path):
    with TestClient(create_app(make_settings(tmp_path / "home", df), start_workers=False)) as client:
        job = client.post("/v1/videos", json={"prompt": "a red fox", "num_frames": 9}).json()
        r = client.get(f"/v1/videos/{job['id']}/content")
        assert r.status_code == 409 and "queued" in r.text
