"""The Image sequence tab's handlers (t2v.ui.sequence) against a real JobService on the tiny SD model."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from t2v.export import decode_video
from t2v.service import build_services
from t2v.ui import handlers as H
from t2v.ui import history as HI
from t2v.ui import sequence as S
from t2v.ui.handlers import UIError
from tests.api.conftest import make_settings

KEYS = "0: a red circle\n\n3: a blue square\n5: a green car\n"  # a blank line is fine: 6 frames
SMALL = {"width": 32, "height": 32, "num_inference_steps": 2, "fps": 6}


def form(service, keyframes=KEYS, **changes):
    return {**S.default_form(service), "keyframes": keyframes, **SMALL, **changes}


def run_to_end(service, job_id, timeout=180.0):
    import time

    deadline, seen = time.time() + timeout, []
    for v in S.poll(service, job_id, interval=0.05, keep_going=lambda: time.time() < deadline):
        seen.append(v)
    assert seen and seen[-1].finished, f"job {job_id} is still {seen[-1].status} after {timeout}s"
    return seen


@pytest.fixture
def idle(tiny_sd_model, tmp_path):
    """Workers not started: jobs stay queued. The tiny SD model is both defaults (no video model needed)."""
    svc = build_services(make_settings(tmp_path / "home", tiny_sd_model, default_image_model=str(tiny_sd_model)))
    yield svc
    svc.stop()


@pytest.fixture
def service(idle):
    return idle.start()


def test_default_form_is_the_servers_image_model_within_limits(idle):
    idle.settings.max_side = 256
    f = S.default_form(idle)
    assert f["model"] == str(idle.settings.default_image_model) and f["method"] == "latent-walk"
    assert f["width"] <= 256 and f["height"] <= 256 and f["width"] % 8 == 0
    assert (f["contact_sheet"], f["denoise_grid"], f["grid_steps"]) == (True, False, "auto")
    fields = S.request_fields(form(idle))
    assert fields["mode"] == "sequence" and fields["keyframes"] == ["0: a red circle", "3: a blue square", "5: a green car"]
    assert fields["formats"] == ["mp4", "webm"] and "seed" not in fields and "zoom" not in fields
    assert "denoise_grid" not in fields  # unchecked: no grid, whatever the steps box says


def test_bad_input_names_the_problem_and_queues_nothing(idle):
    cases = [
        (dict(keyframes="0: a\n8: b\n4: c"), "keyframes", "Keyframes: keyframe 3: frame 4 comes after frame 8"),
        (dict(keyframes="0: a\n8: b\n8: c"), "keyframes", "Keyframes: keyframe 3: frame 8 appears twice"),
        (dict(keyframes="2: a forest"), "keyframes", "Keyframes: the first keyframe must be frame 0, not 2"),
        (dict(keyframes="0: a\na forest"), "keyframes", "Keyframes: keyframe 2: 'a forest' is not 'INDEX: prompt'"),
        (dict(keyframes="0: a\n4:   "), "keyframes", "Keyframes: keyframe 2 (frame 4): the prompt is empty"),
        (dict(keyframes="  \n "), "keyframes", "Keyframes: write one 'INDEX: prompt' per line"),
        (dict(method="morph"), "method", "Method: unknown method 'morph'"),
        (dict(width=52), "width", "Width: must be a multiple of 8, got 52"),
        (dict(seed="2.5"), "seed", "Seed: must be a whole number"),
        (dict(seed="abc"), "seed", "Seed: 'abc' is not a number"),
        (dict(num_inference_steps="many"), "num_inference_steps", "Steps: 'many' is not a number"),
        (dict(method="img2img", zoom=3), "zoom", "Zoom:"),
        (dict(denoise_grid=True, grid_steps="x, 2"), "grid_steps", "Denoise grid steps: 'x, 2' is not 'auto'"),
        (dict(denoise_grid=True, grid_steps="1,9"), "denoise_grid", "Denoise grid steps: step 9 is past the last step (2)"),
        (dict(model="/no/such/model-folder"), "model", "Model unavailable: this model is not available on this server"),
    ]
    for changes, field, text in cases:
        with pytest.raises(UIError) as e:
            S.submit(idle, form(idle, **changes))
        assert e.value.field == field, (changes, e.value.field, str(e.value))
        assert str(e.value).startswith(text), (changes, str(e.value))
        assert "Traceback" not in str(e.value)
    assert idle.list() == []


def test_frames_note_and_frame_position():
    assert S.frames_note(KEYS, 6) == "3 keyframes → 6 frames, 1.0 s at 6 fps"
    assert S.frames_note("0: a\n8: b\n4: c", 6).startswith("⚠ keyframe 3: frame 4 comes after frame 8")
    assert S.frames_note("", 6) == ""
    walk = {"method": "latent-walk", "num_frames": 6, "num_inference_steps": 4}
    assert [S.frame_position(walk, s)[1] for s in (0, 3, 4, 23, 24)] == [1, 1, 2, 6, 6]
    img = {"method": "img2img", "num_frames": 6, "num_inference_steps": 10, "strength": 0.5}  # 10, then 5 per frame
    assert [S.frame_position(img, s)[1] for s in (0, 9, 10, 14, 15, 34)] == [1, 1, 2, 2, 3, 6]
    interp = {"method": "interpolate", "num_frames": 6, "num_inference_steps": 2, "keyframes": [[0, "a"], [5, "b"]]}
    assert S.frame_position(interp, 3) == ("keyframe", 2, 2)


def test_img2img_camera_goes_into_the_request_only_for_img2img(idle):
    cam = dict(strength=0.4, zoom=1.05, pan_x=2, pan_y=-1.5, rotate=3)
    jid, _ = S.submit(idle, form(idle, method="img2img", seed=7, **cam))
    r = idle.get(jid).request
    assert (r["mode"], r["method"], r["seed"], r["num_frames"]) == ("sequence", "img2img", 7, 6)
    assert {k: r[k] for k in cam} == cam
    jid, _ = S.submit(idle, form(idle, method="prompt-interp", **cam))
    r = idle.get(jid).request
    assert (r["zoom"], r["pan_x"], r["rotate"]) == (1.0, 0.0, 0.0)  # not sent: the request's defaults


def test_remix_of_a_sequence_job_fills_the_sequence_form_and_remakes_the_same_request(idle, tiny_model):
    cam = dict(strength=0.4, zoom=1.05, pan_x=2.0, pan_y=-1.5, rotate=3.0)
    jid, seed = S.submit(idle, form(idle, method="img2img", seed="", negative_prompt="blurry", guidance_scale=6.5,
                                    denoise_grid=True, grid_steps="1,2", contact_sheet=False, **cam))
    tab, values = S.remix_any(idle, jid)
    assert tab == "sequence" and set(values) == set(S.FORM_KEYS)  # not "p1 | p2" in the video form (#20)
    assert values["keyframes"] == "0: a red circle\n3: a blue square\n5: a green car"
    assert (values["method"], values["seed"], values["negative_prompt"]) == ("img2img", str(seed), "blurry")
    assert {k: values[k] for k in cam} == cam and values["guidance_scale"] == 6.5
    assert (values["contact_sheet"], values["denoise_grid"], values["grid_steps"]) == (False, True, "1,2")
    again, again_seed = S.submit(idle, values)
    assert again_seed == seed and idle.get(again).request == idle.get(jid).request

    auto, _ = S.submit(idle, form(idle, denoise_grid=True, grid_steps="auto"))  # recorded as the steps it chose
    assert idle.get(S.submit(idle, S.remix(idle, auto))[0]).request == idle.get(auto).request
    plain, _ = S.submit(idle, form(idle))
    assert (S.remix(idle, plain)["denoise_grid"], S.remix(idle, plain)["contact_sheet"]) == (False, True)

    video_id, _ = H.submit(idle, {**H.default_form(idle), "prompt": "a fox", "model": str(tiny_model)})
    tab, values = S.remix_any(idle, video_id)  # a video job still fills the Video tab
    assert tab == "video" and values["prompt"] == "a fox" and set(values) == set(H.FORM_KEYS)
    with pytest.raises(UIError, match="remix it in the Video tab"):
        S.remix(idle, video_id)


def test_sequence_job_succeeds_with_video_contact_sheet_grid_and_downloads(service):
    jid, seed = S.submit(service, form(service, contact_sheet=True, denoise_grid=True, grid_steps="auto"))
    views = run_to_end(service, jid)
    done = views[-1]
    assert done.status == "succeeded", done.error
    assert done.total == 6 * 2 and '<progress value="12" max="12">' in S.progress_html(done)  # frames x steps
    assert done.message.startswith("Done in") and f"Seed {seed}." in done.message
    assert "latent-walk" in done.summary and "3: a blue square" in done.summary

    frames, fps = decode_video(done.video)  # the player's file: last keyframe + 1 frames
    assert done.video.suffix == ".webm" and frames.shape == (6, 32, 32, 3) and fps == pytest.approx(6)
    assert decode_video(done.downloads["mp4"])[0].shape[0] == 6
    assert set(done.downloads) == {"mp4", "webm", "json"}
    record = json.loads(done.downloads["json"].read_text())
    assert record["seed"] == seed and record["num_frames"] == 6 and [k["frame"] for k in record["keyframes"]] == [0, 3, 5]

    # contact sheet: 6 frames of 32 px in 2 rows x 3 columns with 2 px padding
    assert Image.open(done.contact_sheet).size == (3 * 34 + 2, 2 * 34 + 2)
    # denoise grid "auto" at 2 steps: steps 1 and 2, one row per keyframe, 160 px cells
    assert Image.open(done.denoise_grid).size == (2 * 160, 3 * 160)
    assert any(item.job_id == jid for item in HI.items(service))  # the same history as video jobs
    picked = S.view_any(service, jid)  # picked from the history: with its figures (#20)
    assert isinstance(picked, S.SequenceView)
    assert (picked.contact_sheet, picked.denoise_grid, picked.video) == (done.contact_sheet, done.denoise_grid, done.video)


def test_progress_in_frames_and_steps_then_cancel(service):
    jid, _ = S.submit(service, form(service, num_inference_steps=200, contact_sheet=False))
    for v in S.poll(service, jid, interval=0.05):
        if v.finished or (v.stage == "denoise" and v.step >= 1):
            break
    assert v.status == "running" and v.total == 6 * 200
    assert f"Denoising frame 1 of 6: step {v.step} of 1200" in v.message
    bar = S.progress_html(v)
    assert 'max="1200"' in bar and "frame 1 of 6 · step" in bar and "(6 frames × 200 steps)" in bar

    assert H.cancel(service, jid).startswith("Cancelling")
    v = run_to_end(service, jid)[-1]
    assert v.status == "cancelled" and v.step < 1200 and v.contact_sheet is None
