"""Every way into the queue is checked as a submit is: a ``post`` block inside ``POST /v1/videos`` counts its
steps against the key's cost limit and the memory budget, and ``PATCH`` of a queued job goes through the
submit's own checks (the post steps' cost, asset ownership, the decode budget), refused with the same status and
message as at submit."""

from __future__ import annotations

from fastapi.testclient import TestClient

from t2v.api import create_app
from t2v.service.keys import create_key
from tests.api.test_post_api import BLEND2, bearer, clip_bytes, loc, upload

SMALL = {"num_frames": 4, "width": 32, "height": 32, "num_inference_steps": 2}  # cost 8,192
HEAVY_POST = {"interpolate": 8, "interpolation": "blend"}  # on 4 frames of 32x32: 25 frames, cost 25,600


def test_a_post_block_inside_a_video_request_counts_against_the_cost_limit(settings):
    app = create_app(settings, start_workers=False)
    _, low = create_key(app.state.service.repo.keys, "low", max_cost=20_000)
    with TestClient(app) as client:
        r = client.post("/v1/videos", json={"prompt": "x", **SMALL, "post": HEAVY_POST}, headers=bearer(low))
        assert r.status_code == 422 and loc(r)[-1] == "post", r.text
        assert "costs 8,192" in r.text and "25,600" in r.text and "33,792 in all" in r.text, r.text
        r = client.post("/v1/videos", json={"prompt": "x", **SMALL, "post": BLEND2}, headers=bearer(low))
        assert r.status_code == 202, r.text  # 7 frames: 7,168 more, 15,360 in all


def test_a_post_block_inside_a_video_request_is_held_against_the_memory_budget(settings, monkeypatch):
    app = create_app(settings, start_workers=False)
    monkeypatch.setattr(app.state.service.assets, "decode_budget", lambda: 20 * 32 * 32 * 3)  # 20 frames
    with TestClient(app) as client:
        r = client.post("/v1/videos", json={"prompt": "x", **SMALL, "post": HEAVY_POST})
        assert r.status_code == 422 and loc(r)[-1] == "post" and "memory budget" in r.text, r.text
        assert client.get("/v1/videos").json()["items"] == []


def test_patch_goes_through_the_submits_checks(settings, tmp_path):
    app = create_app(settings, start_workers=False)
    keys = app.state.service.repo.keys
    _, low = create_key(keys, "low", max_cost=20_000)
    _, other = create_key(keys, "other")
    with TestClient(app) as client:
        mine = upload(client, clip_bytes(tmp_path), "clip.mp4", low).json()
        theirs = upload(client, clip_bytes(tmp_path), "clip.mp4", other).json()
        # A post job within the limit, then PATCHed to steps its submit refuses: the same 422.
        post = client.post("/v1/post", json={"asset": mine["id"], "post": BLEND2}, headers=bearer(low))
        assert post.status_code == 202, post.text
        at_submit = client.post("/v1/post", json={"asset": mine["id"], "post": HEAVY_POST}, headers=bearer(low))
        patched = client.patch(f"/v1/videos/{post.json()['id']}", json={"post": HEAVY_POST}, headers=bearer(low))
        assert at_submit.status_code == patched.status_code == 422, patched.text
        assert loc(patched)[-1] == "post" and "this API key's limit of 20,000" in patched.text, patched.text
        # A video-to-video job PATCHed to another key's asset: refused as at submit, the job unchanged.
        v2v = client.post("/v1/videos", json={"prompt": "x", **SMALL, "video": mine["id"]}, headers=bearer(low))
        assert v2v.status_code == 202, v2v.text
        at_submit = client.post("/v1/videos", json={"prompt": "x", **SMALL, "video": theirs["id"]}, headers=bearer(low))
        patched = client.patch(f"/v1/videos/{v2v.json()['id']}", json={"video": theirs["id"]}, headers=bearer(low))
        assert patched.status_code == at_submit.status_code and patched.status_code in (404, 422), patched.text
        assert patched.json() == at_submit.json()
        job = client.get(f"/v1/videos/{v2v.json()['id']}", headers=bearer(low)).json()
        assert job["request"]["video"] == mine["id"] and job["status"] == "queued"
