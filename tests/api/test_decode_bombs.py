"""Inputs are measured before they are decoded: a few KB of GIF that decodes to hundreds of MiB is refused at
submit when what a job would hold does not fit the memory budget (a post job decodes the whole clip; video-to-video
only the frames it makes), and nothing is queued."""

from __future__ import annotations

import json
import subprocess
import sys

import psutil
import pytest
from fastapi.testclient import TestClient

from t2v.api import create_app
from t2v.errors import InvalidRequest
from t2v.inputs import probe_video
from tests.api.conftest import make_settings
from t2v.errors import ExportError
from t2v.export import decode_video
from tests.fixtures import apng_big_screen, gif_big_screen, mp4_big, mp4_lying, webm_lying, webm_lying_keyframes

SIDE, FRAMES = 1024, 256  # 768 MiB decoded, from about 6 KB
FRAME_BYTES = SIDE * SIDE * 3


def upload(client, data: bytes, name: str):
    return client.post("/v1/assets", files={"file": (name, data, "application/octet-stream")})


@pytest.fixture
def bomb_app(tiny_model, tmp_path):
    settings = make_settings(tmp_path / "home", tiny_model, memory_budget_gb=0.25)
    app = create_app(settings, start_workers=False)
    with TestClient(app) as client:
        r = upload(client, gif_big_screen(SIDE, FRAMES), "bomb.gif")
        assert r.status_code == 201, r.text
        yield client, app.state.service, r.json()


def test_the_probe_measures_a_clip_from_its_header_and_first_frame(tmp_path):
    path = tmp_path / "bomb.gif"
    path.write_bytes(gif_big_screen(SIDE, FRAMES))
    frames, width, height, _ = probe_video(path)
    assert (frames, width, height) == (FRAMES, SIDE, SIDE) and path.stat().st_size < 10_000


def test_a_post_job_whose_frames_do_not_fit_is_refused_at_submit(bomb_app):
    client, service, asset = bomb_app
    assert (asset["kind"], asset["width"], asset["height"]) == ("video", SIDE, SIDE)
    r = client.post("/v1/post", json={"asset": asset["id"], "post": {"deflicker": True}})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"][0]
    assert detail["loc"][-1] == "post" and "memory budget of 0.2 GiB" in detail["msg"], detail
    assert "at most" in detail["msg"] and f"{FRAMES} frames of {SIDE}x{SIDE}" in detail["msg"]
    assert client.get("/v1/videos").json()["items"] == []  # nothing queued


def test_video_to_video_counts_only_the_frames_it_makes(bomb_app, monkeypatch):
    """8 frames of the 256 are decoded for an 8-frame job: a budget of exactly 8 frames admits it, one byte less
    refuses it naming the field and the frames that would fit."""
    client, service, asset = bomb_app
    monkeypatch.setattr(service.settings, "memory_budget_gb", None)  # the model's own plan fits as usual
    fields = {"prompt": "a square", "video": asset["id"], "num_frames": 8, "width": 32, "height": 32,
              "num_inference_steps": 2}
    monkeypatch.setattr(service.assets, "decode_budget", lambda: 8 * FRAME_BYTES - 1)
    with pytest.raises(InvalidRequest) as e:
        service.submit(fields)
    assert e.value.field == "video" and "8 frames of 1024x1024" in str(e.value) and "at most 7 frames" in str(e.value)
    monkeypatch.setattr(service.assets, "decode_budget", lambda: 8 * FRAME_BYTES)
    job, created = service.submit(fields)
    assert created and job.status == "queued"


@pytest.mark.parametrize("make, name", [(gif_big_screen, "bomb.gif"), (mp4_big, "bomb.mp4")])
def test_a_gif_and_an_mp4_of_the_bombs_shape_are_both_refused_at_submit(tiny_model, tmp_path, make, name):
    """The same shape (256 frames of 1024x1024, 768 MiB decoded) from a few KB, as GIF and as H.264: measured
    from its headers, refused for a post job and for video-to-video asking for all its frames, nothing queued."""
    data = make(SIDE, FRAMES)
    assert len(data) < 20_000
    settings = make_settings(tmp_path / "home", tiny_model, memory_budget_gb=0.25)
    with TestClient(create_app(settings, start_workers=False)) as client:
        r = upload(client, data, name)
        assert r.status_code == 201, r.text
        asset = r.json()
        assert (asset["kind"], asset["width"], asset["height"]) == ("video", SIDE, SIDE)
        post = client.post("/v1/post", json={"asset": asset["id"], "post": {"deflicker": True}})
        assert post.status_code == 422 and "memory budget" in post.json()["detail"][0]["msg"], post.text
        v2v = client.post("/v1/videos", json={"prompt": "a square", "video": asset["id"], "num_frames": FRAMES,
                                              "width": SIDE, "height": SIDE, "num_inference_steps": 2})
        assert v2v.status_code == 422, v2v.text
        assert client.get("/v1/videos").json()["items"] == []


def test_an_animated_png_is_an_image_of_its_first_frame_never_a_video(tiny_model, tmp_path):
    """An APNG of the same shape is taken as an image (its first frame, 3 MiB decoded) and cannot be named
    as a clip to decode: no route decodes its 256 frames."""
    settings = make_settings(tmp_path / "home", tiny_model, memory_budget_gb=0.25)
    with TestClient(create_app(settings, start_workers=False)) as client:
        r = upload(client, apng_big_screen(SIDE, FRAMES), "bomb.png")
        assert r.status_code == 201, r.text
        asset = r.json()
        assert asset["kind"] == "image" and (asset["width"], asset["height"]) == (SIDE, SIDE)
        bad = client.post("/v1/videos", json={"prompt": "x", "video": asset["id"], "num_frames": 8})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][-1] == "video", bad.text
        bad = client.post("/v1/post", json={"asset": asset["id"], "post": {"deflicker": True}})
        assert bad.status_code == 422, bad.text
        assert client.get("/v1/videos").json()["items"] == []


def test_the_reported_gif_is_refused_for_post_and_admitted_for_8_frames_of_video_to_video(tiny_model, tmp_path):
    """The report's file: a 2048x2048 screen and 512 one-pixel frames, about 12 KB, 6 GiB decoded. With 2 GiB to
    spare a post job (the whole clip) is refused at submit; video-to-video asking for 8 frames (96 MiB) is queued
    and decodes only those (tests/test_inputs.py checks load_video stops there)."""
    data = gif_big_screen(2048, 512)
    assert len(data) < 16_000
    # 2 GiB over what this process holds already: on the CPU the planner counts the process's own memory, which
    # in a test worker that has run hundreds of tests is itself a few GiB.
    held = psutil.Process().memory_info().rss / 2**30
    settings = make_settings(tmp_path / "home", tiny_model, memory_budget_gb=held + 2)
    with TestClient(create_app(settings, start_workers=False)) as client:
        asset = upload(client, data, "report.gif").json()
        assert (asset["kind"], asset["width"], asset["height"]) == ("video", 2048, 2048)
        post = client.post("/v1/post", json={"asset": asset["id"], "post": {"deflicker": True}})
        assert post.status_code == 422 and "512 frames of 2048x2048" in post.text, post.text
        v2v = client.post("/v1/videos", json={"prompt": "a square", "video": asset["id"], "num_frames": 8,
                                              "width": 32, "height": 32, "num_inference_steps": 2})
        assert v2v.status_code == 202, v2v.text
        assert [j["status"] for j in client.get("/v1/videos").json()["items"]] == ["queued"]


def test_a_webm_whose_header_understates_its_frames_is_refused_at_upload_and_never_decoded_whole(tiny_model, tmp_path):
    """A WebM whose header says 64x64 while its VP8 frames are 512x512 (and one honest at first, then a keyframe
    at 512x512): the budget counts the header's size, so such a file is refused at upload naming the frame and
    both sizes; one already stored is refused by the submit's probe, and the decoder stops at the first frame
    that differs, before converting or keeping it."""
    lying, late = webm_lying(64, 512), webm_lying(64, 512, first_true=2)
    settings = make_settings(tmp_path / "home", tiny_model, memory_budget_gb=0.25)
    with TestClient(create_app(settings, start_workers=False)) as client:
        for data, number in ((lying, 1), (late, 3)):
            r = upload(client, data, "liar.webm")
            assert r.status_code == 422, r.text
            msg = r.json()["detail"][0]["msg"]
            assert f"frame {number} is 512x512 pixels while its container says 64x64" in msg, msg
        home = tmp_path / "home"
        assert [p for p in home.rglob("*") if p.is_file() and "liar" in p.name or p.suffix == ".webm"] == []
    for data, number in ((lying, 1), (late, 3)):
        path = tmp_path / f"stored-{number}.webm"
        path.write_bytes(data)
        with pytest.raises(ExportError, match=f"frame {number} is 512x512 pixels while its container says 64x64"):
            decode_video(path)
    path = tmp_path / "stored-1.webm"
    with pytest.raises(InvalidRequest, match="frame 1 is 512x512 pixels while its container says 64x64") as e:
        probe_video(path, field="video")
    assert e.value.field == "video"


def test_an_uploads_decoding_time_is_bounded_by_a_setting(tiny_model, tmp_path):
    """Every frame of an upload is decoded to check it, on one core, for at most T2V_UPLOAD_DECODE_S seconds of
    CPU: past that the upload is refused naming the setting, and nothing is stored."""
    data = mp4_big(SIDE, FRAMES)
    settings = make_settings(tmp_path / "home", tiny_model, upload_decode_s=0.01)
    with TestClient(create_app(settings, start_workers=False)) as client:
        r = upload(client, data, "slow.mp4")
        assert r.status_code == 422, r.text
        assert "of CPU to decode" in r.text and "T2V_UPLOAD_DECODE_S" in r.text, r.text
    settings = make_settings(tmp_path / "home2", tiny_model)  # the default, 2 s: this clip decodes well within it
    with TestClient(create_app(settings, start_workers=False)) as client:
        assert upload(client, data, "slow.mp4").status_code == 201


def test_an_mp4_is_measured_from_its_coded_frames_and_one_that_changes_size_is_refused(tiny_model, tmp_path):
    """The same lie in an H.264 MP4: the track header says 64x64, the frames' sequence parameters 512x512. The
    probe reads the coded size, so the asset is stored (and budgeted) at 512x512; a clip whose later keyframe
    changes the size is refused at upload naming the frame, and nothing is stored."""
    settings = make_settings(tmp_path / "home", tiny_model)
    app = create_app(settings, start_workers=False)
    with TestClient(app) as client:
        r = upload(client, mp4_lying(64, 512), "liar.mp4")
        assert r.status_code == 201 and (r.json()["width"], r.json()["height"]) == (512, 512), r.text
        late = upload(client, mp4_lying(64, 512, first_true=2), "late.mp4")
        assert late.status_code == 422, late.text
        assert "frame 3 is 512x512 pixels while its container says 64x64" in late.json()["detail"][0]["msg"]
        from sqlalchemy import func, select

        from t2v.store.tables import Asset
        with app.state.service.repo.db.read() as conn:
            assert conn.execute(select(func.count()).select_from(Asset)).scalar() == 1, "the refused one not stored"


# Peak RSS from the process's own memory map (VmHWM): ru_maxrss would carry the forking test worker's peak
# across exec.
DECODE_IN_A_FRESH_PROCESS = """
import json, re, sys
from t2v.inputs import probe_video
from t2v.export import decode_video
said = []
for step in (lambda: probe_video(sys.argv[1], field="video"), lambda: decode_video(sys.argv[1])):
    try:
        step()
        said.append("decoded")
    except Exception as e:
        said.append(f"{type(e).__name__}: {e}")
peak_kb = int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
print(json.dumps({"said": said, "peak_mb": peak_kb / 1024}))
"""


def test_the_reported_webm_is_refused_at_upload_and_a_worker_decoding_it_stays_small(tiny_model, tmp_path):
    """The report's file: the header says 64x64 and its 200 frames are 4096x4096 (9.4 GiB decoded). Refused at
    upload at its first frame; stored anyway (an older server's asset, a file in the bucket), the submit's probe
    and the worker's decode both stop at that frame: a fresh process doing both peaks under 400 MB."""
    data = webm_lying_keyframes(64, 4096, 200)
    settings = make_settings(tmp_path / "home", tiny_model)
    with TestClient(create_app(settings, start_workers=False)) as client:
        r = upload(client, data, "report.webm")
        assert r.status_code == 422, r.text
        assert "frame 1 is 4096x4096 pixels while its container says 64x64" in r.json()["detail"][0]["msg"]
    path = tmp_path / "stored.webm"
    path.write_bytes(data)
    child = subprocess.run([sys.executable, "-c", DECODE_IN_A_FRESH_PROCESS, str(path)], capture_output=True,
                           text=True, timeout=300)
    assert child.returncode == 0, child.stderr[-2000:]
    out = json.loads(child.stdout.strip().splitlines()[-1])
    assert [s.split(":")[0] for s in out["said"]] == ["InvalidRequest", "ExportError"], out
    assert all("frame 1 is 4096x4096 pixels while its container says 64x64" in s for s in out["said"]), out
    assert out["peak_mb"] < 400, out
