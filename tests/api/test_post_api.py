"""Post-processing and video-to-video on the API (#24): video assets (uploaded, checked by decoding, owned by a
key), ``POST /v1/post`` of an asset or a finished job (a job like any other; the output keeps the source's record
and appends the steps), ``video`` + ``strength`` on ``POST /v1/videos``, and nothing of one key's reachable by
another, nor any path on the server."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from t2v.api import create_app
from t2v.export import decode_video, write_outputs
from t2v.inputs import fit_frames
from t2v.service.keys import create_key
from tests.api.conftest import make_settings, wait_for
from tests.fixtures import gif_reaching_out

SMALL = {"num_frames": 4, "width": 32, "height": 32, "num_inference_steps": 2, "fps": 8}
BLEND2 = {"interpolate": 2, "interpolation": "blend"}


def clip_bytes(tmp_path, fmt: str = "mp4", frames: int = 5, record: dict | None = None) -> bytes:
    """A clip of moving gradients (32x32 at 8 fps) with ``record`` embedded as t2v embeds its records."""
    yy, xx = np.mgrid[0:32, 0:32]
    clip = np.stack([np.stack([(xx * 7 + i * 30) % 256, (yy * 5) % 256, (xx + yy + i * 9) % 256], -1)
                     for i in range(frames)]).astype(np.uint8)
    (out,) = write_outputs(clip, tmp_path / f"clip-{fmt}-{frames}", [fmt], 8.0,
                           metadata=record or {"prompt": "a drifting gradient", "seed": 11})
    return out.path.read_bytes()


def bearer(token):
    return {"Authorization": f"Bearer {token}"} if token else {}


def upload(client, data: bytes, name: str, token=None):
    return client.post("/v1/assets", files={"file": (name, data, "application/octet-stream")}, headers=bearer(token))


def decoded(client, job_id, tmp_path, fmt="mp4", headers=None):
    r = client.get(f"/v1/videos/{job_id}/content", params={"format": fmt}, headers=headers or {})
    assert r.status_code == 200, r.text
    path = tmp_path / f"{job_id}.{fmt}"
    path.write_bytes(r.content)
    return decode_video(path)


def loc(r) -> list:
    return r.json()["detail"][0]["loc"]


@pytest.fixture
def keyed(settings):
    """An app whose workers never start (jobs stay queued), with two keys."""
    app = create_app(settings, start_workers=False)
    service = app.state.service
    _, alice = create_key(service.repo.keys, "alice")
    _, bob = create_key(service.repo.keys, "bob")
    with TestClient(app) as client:
        yield client, service, alice, bob


def test_uploaded_video_post_interpolates_and_keeps_the_record(client, settings, tmp_path):
    data = clip_bytes(tmp_path)
    r = upload(client, data, "../my clip.mp4")
    assert r.status_code == 201, r.text
    asset = r.json()
    assert (asset["kind"], asset["content_type"], asset["width"], asset["height"]) == ("video", "video/mp4", 32, 32)
    assert asset["sha256"] == hashlib.sha256(data).hexdigest() and asset["filename"] == "my clip.mp4"
    assert (settings.home / "assets" / f"{asset['id']}.mp4").read_bytes() == data
    r = client.post("/v1/post", json={"asset": asset["id"], "post": BLEND2})
    assert r.status_code == 202, r.text
    assert r.headers["location"].endswith(f"/v1/videos/{r.json()['id']}") and r.json()["request"]["mode"] == "post"
    job = wait_for(client, r.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    assert job["progress"]["stage"] == "done"
    frames, fps = decoded(client, job["id"], tmp_path)
    assert frames.shape == ((5 - 1) * 2 + 1, 32, 32, 3) and fps == 16  # n frames -> (n - 1) * factor + 1
    meta = client.get(f"/v1/videos/{job['id']}/metadata").json()
    assert (meta["prompt"], meta["seed"]) == ("a drifting gradient", 11)  # the source's record, kept
    assert [s["name"] for s in meta["postprocess"]["steps"]] == ["interpolate"]
    assert meta["postprocess"]["num_frames"] == 9 and meta["postprocess"]["fps"] == 16
    last = meta["post_history"][-1]
    assert last["source"] == {"asset": asset["id"]} and last["input"] == f"{asset['id']}.mp4"
    assert last["input_sha256"] == asset["sha256"] and last["post"]["interpolate"] == 2


def test_post_of_a_finished_job_in_several_formats(client, tiny_model, tmp_path):
    r = client.post("/v1/videos", json={"prompt": "a red ball", "seed": 4, **SMALL})
    source = wait_for(client, r.json()["id"])
    assert source["status"] == "succeeded", source["error"]
    r = client.post("/v1/post", json={"job": source["id"], "post": BLEND2, "formats": ["mp4", "gif"]})
    assert r.status_code == 202, r.text
    assert r.json()["request"]["prompt"] == "a red ball"  # listed and searched by the source's prompt
    job = wait_for(client, r.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    assert {f["format"] for f in job["result"]["files"]} == {"mp4", "gif", "json"}
    for fmt in ("mp4", "gif"):
        frames, fps = decoded(client, job["id"], tmp_path, fmt)
        assert frames.shape[0] == 2 * 4 - 1 and abs(fps - 16) < 1  # a GIF keeps delays in 1/100 s
    meta = client.get(f"/v1/videos/{job['id']}/metadata").json()
    before = client.get(f"/v1/videos/{source['id']}/metadata").json()
    for name in ("prompt", "seed", "model", "num_inference_steps", "frames_sha256"):
        assert meta[name] == before[name], name
    assert "postprocess" not in before and meta["postprocess"]["num_frames"] == 7
    assert meta["post_history"][-1]["source"] == {"job": source["id"]}
    assert meta["post_history"][-1]["input"] == f"{source['id']}.mp4"
    assert [o["format"] for o in meta["outputs"]] == ["mp4", "gif"]
    # a post of the post: the chain goes on in the record
    again = wait_for(client, client.post("/v1/post", json={"job": job["id"], "post": {"upscale": 2}}).json()["id"])
    assert again["status"] == "succeeded", again["error"]
    chain = client.get(f"/v1/videos/{again['id']}/metadata").json()
    assert [s["name"] for s in chain["postprocess"]["steps"]] == ["interpolate", "upscale"]
    assert len(chain["post_history"]) == 2 and decoded(client, again["id"], tmp_path)[0].shape == (7, 64, 64, 3)


def test_sources_of_another_key_are_404_and_unfinished_or_wrong_ones_422(keyed, tmp_path):
    client, service, alice, bob = keyed
    video = upload(client, clip_bytes(tmp_path), "a.mp4", alice).json()
    queued = client.post("/v1/videos", json={"prompt": "a cat", **SMALL}, headers=bearer(alice)).json()
    for body in ({"asset": video["id"], "post": BLEND2}, {"job": queued["id"], "post": BLEND2}):
        r = client.post("/v1/post", json=body, headers=bearer(bob))
        assert r.status_code == 404, r.text  # as a missing one: ids cannot be probed
        unknown = {k: "01ARZ3NDEKTSV4RRFFQ69G5FAV" for k in body if k != "post"}
        missing = client.post("/v1/post", json={**body, **unknown}, headers=bearer(bob))
        assert missing.status_code == 404 and missing.json()["detail"].replace("01ARZ3NDEKTSV4RRFFQ69G5FAV", "X") \
            == r.json()["detail"].replace(video["id"], "X").replace(queued["id"], "X")
    r = client.post("/v1/post", json={"job": queued["id"], "post": BLEND2}, headers=bearer(alice))
    assert r.status_code == 422 and loc(r)[-1] == "job" and "is queued; post-process it once it has succeeded" in r.text
    png = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(png, format="PNG")
    image = upload(client, png.getvalue(), "red.png", alice).json()
    assert image["kind"] == "image"
    r = client.post("/v1/post", json={"asset": image["id"], "post": BLEND2}, headers=bearer(alice))
    assert r.status_code == 422 and loc(r)[-1] == "asset" and "is an image" in r.text
    for body, field in (({"asset": video["id"], "job": queued["id"], "post": BLEND2}, "asset"),
                        ({"post": BLEND2}, "asset"),
                        ({"asset": video["id"], "post": {}}, "post"),
                        ({"asset": video["id"], "post": {"upscale": 2, "upscaler": "/etc/passwd"}}, "upscaler"),
                        ({"asset": video["id"], "post": BLEND2, "formats": ["png"]}, "formats"),
                        ({"asset": "/etc/passwd", "post": BLEND2}, None)):
        r = client.post("/v1/post", json=body, headers=bearer(alice))
        assert r.status_code in (404, 422), (body, r.text)
        if field is not None:
            assert r.status_code == 422 and field in str(loc(r)), (body, r.text)
    ok = client.post("/v1/post", json={"asset": video["id"], "post": BLEND2}, headers=bearer(alice))
    assert ok.status_code == 202, ok.text
    assert client.get(f"/v1/videos/{ok.json()['id']}", headers=bearer(bob)).status_code == 404
    # video-to-video: only the key's own video asset, never a path, never an image
    v2v = {"prompt": "a cat", **SMALL, "strength": 0.5}
    paths = "file paths and URLs are not taken"
    for ref, message in ((video["id"], "no uploaded asset with id"), ("/etc/passwd", paths), ("../assets/x.mp4", paths)):
        r = client.post("/v1/videos", json={**v2v, "video": ref}, headers=bearer(bob))
        assert r.status_code == 422 and loc(r)[-1] == "video" and message in r.text, r.text
    r = client.post("/v1/videos", json={**v2v, "video": image["id"]}, headers=bearer(alice))
    assert r.status_code == 422 and loc(r)[-1] == "video" and "is an image" in r.text
    r = client.post("/v1/videos", json={"prompt": "a cat", "image": video["id"]}, headers=bearer(alice))
    assert r.status_code == 422 and loc(r)[-1] == "image" and "is a video" in r.text


def test_refused_video_uploads_name_the_problem_and_leave_nothing(tiny_model, tmp_path):
    settings = make_settings(tmp_path / "home", tiny_model, max_upload_bytes=64 * 1024, max_frames=16, max_side=256)
    with TestClient(create_app(settings, start_workers=False)) as client:
        good = clip_bytes(tmp_path)
        gif1 = io.BytesIO()
        Image.new("RGB", (32, 32)).save(gif1, format="GIF")
        cases = {
            "notes.mp4": (b"hello, not a video at all", "is not a video (mp4, webm or gif expected)"),
            "cut.mp4": (good[: len(good) // 3], "truncated"),
            "still.gif": (gif1.getvalue(), "a single frame"),
            "long.mp4": (clip_bytes(tmp_path, frames=20), "more than 16 frames"),
            # PyAV sees 16x16 frames; Pillow, which decodes GIFs, would grow its canvas for the 200-pixel-wide one
            "bomb.gif": (gif_reaching_out(200), "reaches outside the GIF's 16x16 screen"),
        }
        for name, (data, message) in cases.items():
            r = upload(client, data, name)
            assert r.status_code == 422 and loc(r)[-1] == "file" and message in r.text, (name, r.text)
        noise = np.random.default_rng(0).integers(0, 256, (8, 128, 128, 3), dtype=np.uint8)
        (big,) = write_outputs(noise, tmp_path / "big", ["mp4"], 8.0, crf=1)
        assert big.path.stat().st_size > settings.max_upload_bytes
        r = upload(client, big.path.read_bytes(), "big.mp4")
        assert r.status_code == 413 and "too large" in r.text
        assert not (settings.home / "assets").exists() or not list((settings.home / "assets").iterdir())
        for fmt in ("webm", "gif"):  # the other containers are taken
            r = upload(client, clip_bytes(tmp_path, fmt), f"clip.{fmt}")
            assert r.status_code == 201 and r.json()["content_type"] == {"webm": "video/webm", "gif": "image/gif"}[fmt]
        assert sorted(p.suffix for p in (settings.home / "assets").iterdir()) == [".gif", ".webm"]


def test_video_to_video_through_the_api_is_the_library_run_of_the_uploaded_file(client, tiny_model, tmp_path):
    """Strength 0 is the VAE round trip of the input: the job's frames are the library's from the same file, bit for
    bit (the record's frames_sha256), and those are the input through the VAE; the record names the asset."""
    from t2v import generate
    from t2v.requests import GenerationRequest
    from tests.sampling.test_v2v import round_trip

    data = clip_bytes(tmp_path, frames=6)
    asset = upload(client, data, "in.mp4").json()
    body = {"prompt": "a red ball", "seed": 2, "video": asset["id"], "strength": 0.0, **SMALL}
    job = wait_for(client, client.post("/v1/videos", json=body).json()["id"])
    assert job["status"] == "succeeded", job["error"]
    meta = client.get(f"/v1/videos/{job['id']}/metadata").json()
    assert meta["video"] == asset["id"] and meta["video_sha256"] == hashlib.sha256(data).hexdigest()
    assert meta["strength"] == 0.0
    path = tmp_path / "in.mp4"
    path.write_bytes(data)
    local = generate(GenerationRequest(**{**body, "video": str(path), "model": str(tiny_model)}, formats=()))
    assert meta["frames_sha256"] == local.record["frames_sha256"]
    # ... which is the input through the model's VAE (encode, decode), as the direct VAE call makes it
    expected = round_trip(str(tiny_model), "modelscope", fit_frames(decode_video(path)[0], width=32, height=32,
                                                                    num_frames=4), 2)
    assert np.abs(local.frames.astype(int) - expected.astype(int)).max() <= 2


def test_post_jobs_count_against_the_cost_limit_of_the_key(settings, tmp_path):
    """A key refused a 25-step video by its cost limit is refused heavy post-processing too: each step costs the
    frames x width x height it makes (8x interpolation of 5 frames of 32x32: 33 x 32 x 32 = 33,792)."""
    app = create_app(settings, start_workers=False)
    _, low = create_key(app.state.service.repo.keys, "low", max_cost=20_000)
    with TestClient(app) as client:
        video = upload(client, clip_bytes(tmp_path), "clip.mp4", low).json()
        r = client.post("/v1/post", json={"asset": video["id"], "post": {"interpolate": 8, "interpolation": "blend"}},
                        headers=bearer(low))
        assert r.status_code == 422 and loc(r)[-1] == "post", r.text
        assert "cost 33,792" in r.text and "this API key's limit of 20,000" in r.text
        r = client.post("/v1/post", json={"asset": video["id"], "post": BLEND2}, headers=bearer(low))
        assert r.status_code == 202, r.text  # 2x: 9 x 32 x 32 = 9,216, within it
