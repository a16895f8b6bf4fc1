"""Every way into the queue is checked as a submit is: a ``post`` block inside ``POST /v1/videos`` counts its
steps against the key's cost limit and the memory budget, and ``PATCH`` of a queued job goes through the
submit's own checks (the post steps' cost, asset ownership, the decode budget), refused with the same status and
message as at submit; and every other route that queues a job (batches, the OpenAI-style create, remix and
extend) refuses what submit refuses, with submit's message."""

from __future__ import annotations

from fastapi.testclient import TestClient

from t2v.api import create_app
from t2v.service.keys import create_key
from t2v.service.worker import Worker
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


BIG = {"num_frames": 8, "width": 64, "height": 64, "num_inference_steps": 2}  # cost 65,536


def _said(answer) -> str:
    """The refusal's message after its field, whichever API answered (t2v's 422 body or OpenAI's error object)."""
    body = answer.json()
    text = body["error"]["message"] if "error" in body else body["detail"][0]["msg"]
    return text.split(": ", 1)[1]


def test_every_way_into_the_queue_refuses_what_submit_refuses(settings):
    """The same request over the key's cost limit, sent by each route that queues a job: refused at each with the
    submit's own message (422 on /v1, OpenAI's 400 error object on /openai/v1), and nothing queued."""
    app = create_app(settings, start_workers=False)
    _, low = create_key(app.state.service.repo.keys, "low", max_cost=20_000)
    with TestClient(app) as client:
        at_submit = client.post("/v1/videos", json={"prompt": "x", **BIG}, headers=bearer(low))
        assert at_submit.status_code == 422 and loc(at_submit)[-1] == "num_frames", at_submit.text
        said = _said(at_submit)
        assert "this API key's limit of 20,000" in said, said
        done = client.post("/v1/videos", json={"prompt": "x", **SMALL}, headers=bearer(low)).json()["id"]
        assert Worker(app.state.service, 0).run_one() == done  # a finished video to remix and extend
        source = client.post("/v1/videos", json={"prompt": "x", **SMALL}, headers=bearer(low)).json()["id"]
        answers = {
            "batch": client.post("/v1/batches", json={"requests": [{"prompt": "x", **BIG}]}, headers=bearer(low)),
            "openai create": client.post("/openai/v1/videos", json={"prompt": "x", **BIG}, headers=bearer(low)),
            "openai remix": client.post(f"/openai/v1/videos/{done}/remix", json={"prompt": "y", **BIG},
                                        headers=bearer(low)),
            "openai extend": client.post("/openai/v1/videos/extensions",
                                         json={"video": {"id": done}, "prompt": "z", "seconds": "4"},
                                         headers=bearer(low)),
            "patch": client.patch(f"/v1/videos/{source}", json=BIG, headers=bearer(low)),
        }
        for route, answer in answers.items():
            expected = 400 if route.startswith("openai") else 422
            assert answer.status_code == expected, (route, answer.text)
            if route != "openai extend":  # its own count (seconds of a longer video), checked below
                assert _said(answer) == said, (route, answer.text)
        assert "this API key's limit of 20,000" in _said(answers["openai extend"]), answers["openai extend"].text
        jobs = client.get("/v1/videos", headers=bearer(low)).json()["items"]
        assert sorted(j["id"] for j in jobs) == sorted([done, source]), "nothing refused was queued"
        assert all(j["request"]["num_frames"] == SMALL["num_frames"] for j in jobs), "the PATCH changed nothing"
