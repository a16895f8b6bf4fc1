"""POST /v1/sequences: image-mode jobs through the same service, queue, files and records."""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from t2v.api import create_app
from t2v.export import decode_video
from tests.api.conftest import make_settings, wait_for

BODY = {"keyframes": ["0: a red circle", "2: a blue square"], "width": 32, "height": 32, "num_inference_steps": 2,
        "seed": 3, "fps": 6, "contact_sheet": True, "denoise_grid": [1, 2]}


@pytest.fixture
def sd_client(tiny_model, tiny_sd_model, tmp_path):
    settings = make_settings(tmp_path / "home", tiny_model, default_image_model=str(tiny_sd_model))
    with TestClient(create_app(settings)) as c:
        yield c


def test_sequence_job_runs_to_a_video_with_figures_and_record(sd_client, tmp_path):
    r = sd_client.post("/v1/sequences", json={**BODY, "method": "img2img", "strength": 0.5})
    assert r.status_code == 202 and r.headers["Location"].endswith(r.json()["id"])
    job = wait_for(sd_client, r.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    assert job["request"]["mode"] == "sequence" and job["progress"]["total"] == 2 + 2 * 1  # frames x steps
    video = sd_client.get(f"/v1/videos/{job['id']}/content")
    assert video.status_code == 200
    (tmp_path / "v.mp4").write_bytes(video.content)
    frames, fps = decode_video(tmp_path / "v.mp4")
    assert frames.shape == (3, 32, 32, 3) and fps == pytest.approx(6)
    formats = {f["format"]: f for f in job["result"]["files"]}
    assert {"mp4", "json", "contact_sheet", "denoise_grid"} <= set(formats)
    sheet = sd_client.get(formats["contact_sheet"]["url"])
    assert sheet.status_code == 200 and sheet.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(sheet.content)).size == (2 * 34 + 2, 2 * 34 + 2)
    meta = sd_client.get(f"/v1/videos/{job['id']}/metadata").json()
    assert meta["method"] == "img2img" and meta["strength"] == 0.5 and meta["seeds"] == [3]


def test_missing_figure_is_404(sd_client):
    job = wait_for(sd_client, sd_client.post("/v1/sequences", json={**BODY, "contact_sheet": False, "denoise_grid": []}).json()["id"])
    r = sd_client.get(f"/v1/videos/{job['id']}/figures/contact_sheet")
    assert r.status_code == 404 and "ask for them" in r.json()["detail"]


@pytest.mark.parametrize("body, field", [
    ({**BODY, "keyframes": ["0: a", "0: b"]}, "keyframes"),
    ({**BODY, "keyframes": ["1: a"]}, "keyframes"),
    ({**BODY, "method": "morph"}, "method"),
    ({**BODY, "strength": 0}, "strength"),
    ({**BODY, "unknown": 1}, "unknown"),
])
def test_bad_sequence_bodies_are_422_naming_the_field(sd_client, body, field):
    r = sd_client.post("/v1/sequences", json=body)
    assert r.status_code == 422 and field in r.text


def test_a_video_model_is_refused_at_submit(sd_client, tiny_model):
    r = sd_client.post("/v1/sequences", json={**BODY, "model": str(tiny_model)})
    assert r.status_code == 422 and "cannot make images" in r.text
    assert sd_client.get("/v1/videos").json()["items"] == []  # nothing was queued
