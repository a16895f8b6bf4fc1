"""Image mode on a tiny Stable Diffusion: keyframes, coherence methods, files, figures, records, replay."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from t2v.errors import InvalidRequest
from t2v.export import decode_video, read_embedded
from t2v.image.modes import METHODS, total_steps
from t2v.requests import METHODS as REQUEST_METHODS
from t2v.requests import SequenceRequest, parse_keyframes, request_from_fields
from t2v.runner import image as image_run
from t2v.settings import get_settings


def generate_sequence(request, **kwargs):
    return image_run.generate_sequence(request, settings=get_settings(), **kwargs)


def generate_images(request, **kwargs):
    return image_run.generate_images(request, settings=get_settings(), **kwargs)

KEYS = ["0: a red circle", "3: a blue square", "5: a green car"]
BASE = dict(width=32, height=32, num_inference_steps=3, seed=1, fps=6)


def _seq(model, method, output=None, **kw):
    req = SequenceRequest.create(keyframes=KEYS, method=method, model=str(model), **{**BASE, **kw})
    return generate_sequence(req, output=output)


def neighbour_mad(frames: np.ndarray) -> float:
    return float(np.abs(np.diff(frames.astype(np.float64), axis=0)).mean())


@pytest.fixture(scope="module")
def independent(tiny_sd_model):
    return _seq(tiny_sd_model, "independent", formats=())


@pytest.mark.parametrize("items, message", [
    (["a forest"], "is not 'INDEX: prompt'"),
    (["0: a", "x: b"], "keyframe 2: 'x: b' is not"),
    (["0: a", "8: b", "4: c"], "frame 4 comes after frame 8"),
    (["0: a", "8: b", "8: c"], "frame 8 appears twice"),
    (["0: a", "8:   "], "the prompt is empty"),
    (["2: a"], "the first keyframe must be frame 0"),
    ([], "at least one keyframe"),
])
def test_bad_keyframes_give_clear_errors(items, message):
    with pytest.raises(InvalidRequest, match=message) as e:
        SequenceRequest.create(keyframes=items)
    assert e.value.field == "keyframes"


def test_every_method_a_request_names_is_registered():
    assert set(METHODS) == set(REQUEST_METHODS) and all(m.name == name for name, m in METHODS.items())


def test_keyframe_forms_and_derived_fields():
    assert parse_keyframes(["0: spring", {"frame": 48, "prompt": "autumn"}, (96, "winter")]) == (
        (0, "spring"), (48, "autumn"), (96, "winter"))
    r = SequenceRequest.create(keyframes=["0: spring", "48: autumn"])
    assert r.num_frames == 49 and r.prompt == "spring | autumn" and r.method == "latent-walk"
    with pytest.raises(InvalidRequest, match="the keyframes make 49 frames, not 10"):
        SequenceRequest.create(keyframes=["0: spring", "48: autumn"], num_frames=10)
    with pytest.raises(InvalidRequest, match="unknown method"):
        SequenceRequest.create(keyframes=["0: a"], method="morph")
    assert request_from_fields({"mode": "sequence", "keyframes": ["0: a", "2: b"]}).num_frames == 3


def test_file_has_last_index_plus_one_frames_at_size_and_fps(tiny_sd_model, tmp_path):
    r = _seq(tiny_sd_model, "latent-walk", output=tmp_path / "walk.mp4", contact_sheet=True, denoise_grid="1,3")
    frames, fps = decode_video(tmp_path / "walk.mp4")
    assert frames.shape == (6, 32, 32, 3) and fps == pytest.approx(6)
    rec = read_embedded(tmp_path / "walk.mp4")
    assert rec["mode"] == "sequence" and rec["method"] == "latent-walk" and rec["seeds"] == [1, 2, 3]
    assert [k["frame"] for k in rec["keyframes"]] == [0, 3, 5]
    # contact sheet: 6 frames -> 2 rows x 3 columns of 32 px with 2 px padding
    assert r.record["figures"]["contact_sheet"] == {"file": "walk.contact.png", "rows": 2, "columns": 3}
    assert Image.open(tmp_path / "walk.contact.png").size == (3 * 34 + 2, 2 * 34 + 2)
    # denoise grid: one row per keyframe, one column per chosen step, 160 px cells
    grid = r.record["figures"]["denoise_grid"]
    assert (grid["rows"], grid["columns"], grid["steps"]) == (3, 2, [1, 3])
    assert Image.open(tmp_path / "walk.denoise.png").size == (2 * 160, 3 * 160)


@pytest.mark.parametrize("method", ["latent-walk", "prompt-interp", "img2img", "interpolate"])
def test_every_method_is_more_coherent_than_independent_seeds(tiny_sd_model, independent, method):
    r = _seq(tiny_sd_model, method, formats=())
    assert r.frames.shape == independent.frames.shape == (6, 32, 32, 3)
    assert r.record["model_steps"] == total_steps(r.request)  # the progress total is the steps the method made
    assert neighbour_mad(r.frames) < 0.6 * neighbour_mad(independent.frames), (method, neighbour_mad(r.frames))


def test_interpolate_saves_model_calls_and_camera_moves_apply(tiny_sd_model, independent):
    r = _seq(tiny_sd_model, "interpolate", formats=())
    assert r.record["model_steps"] == 3 * 3 < independent.record["model_steps"] == 6 * 3
    still = _seq(tiny_sd_model, "img2img", formats=(), strength=0.4)
    moving = _seq(tiny_sd_model, "img2img", formats=(), strength=0.4, zoom=1.2, rotate=10.0)
    assert np.array_equal(still.frames[0], moving.frames[0])  # frame 0 comes from text alone
    assert not np.array_equal(still.frames[-1], moving.frames[-1])
    assert moving.record["zoom"] == 1.2 and moving.record["strength"] == 0.4


def test_same_seed_same_frames(tiny_sd_model):
    a = _seq(tiny_sd_model, "img2img", formats=())
    b = _seq(tiny_sd_model, "img2img", formats=())
    assert np.array_equal(a.frames, b.frames) and a.record["frames_sha256"] == b.record["frames_sha256"]


def test_progress_counts_frames_times_steps_and_cancel_between_steps(tiny_sd_model):
    from t2v.errors import Cancelled

    events = []
    req = SequenceRequest.create(keyframes=KEYS, method="prompt-interp", model=str(tiny_sd_model), formats=(), **BASE)
    generate_sequence(req, on_progress=events.append)
    denoise = [e for e in events if e.stage == "denoise"]
    assert denoise[-1].step == denoise[-1].total == 6 * 3
    calls = []
    with pytest.raises(Cancelled):
        generate_sequence(req, should_cancel=lambda: calls.append(1) or len(calls) > 4)


def test_video_models_are_refused(tiny_model):
    with pytest.raises(InvalidRequest, match="cannot make images") as e:
        generate_sequence(SequenceRequest.create(keyframes=KEYS, model=str(tiny_model), formats=(), **BASE))
    assert e.value.field == "model"


def test_images_are_pngs_with_records(tiny_sd_model, tmp_path):
    from t2v.requests import ImageRequest

    req = ImageRequest.create(prompt="a red circle", count=2, model=str(tiny_sd_model), seed=7, width=32, height=32,
                              num_inference_steps=2)
    results = generate_images(req, output=tmp_path / "pic.png")
    assert [r.outputs[0].path.name for r in results] == ["pic-00.png", "pic-01.png"]
    for i, r in enumerate(results):
        img = Image.open(r.outputs[0].path)
        assert img.size == (32, 32)
        rec = read_embedded(r.outputs[0].path)
        assert rec["seed"] == 7 + i and rec["mode"] == "image" and rec["index"] == i
        assert r.sidecar.is_file()
    assert not np.array_equal(results[0].frames, results[1].frames)


@pytest.mark.parametrize("kind", ["sequence", "images"])
def test_outputs_that_cannot_be_written_are_refused_before_loading(tiny_sd_model, tmp_path, monkeypatch, kind):
    """A sidecar or figure path that is an existing folder stops the run before any weights load, and nothing is written."""
    from t2v.errors import OutputNotWritable
    from t2v.models import loader
    from t2v.requests import ImageRequest
    from t2v.runner import core

    def no_load(*a, **k):
        raise AssertionError("weights loaded before the output paths were checked")

    monkeypatch.setattr(core, "load_model", no_load)  # where the runner loads (image modes run through it)
    monkeypatch.setattr(loader, "load_model", no_load)
    if kind == "sequence":
        (tmp_path / "clip.contact.png").mkdir()
        with pytest.raises(OutputNotWritable, match="clip.contact.png is an existing folder"):
            generate_sequence(SequenceRequest.create(keyframes=KEYS, method="independent", model=str(tiny_sd_model),
                                                     contact_sheet=True, **BASE), output=tmp_path / "clip.mp4")
    else:
        (tmp_path / "pics-01.json").mkdir()
        with pytest.raises(OutputNotWritable, match="pics-01.json is an existing folder"):
            generate_images(ImageRequest.create(prompt="a cat", count=2, model=str(tiny_sd_model), width=32, height=32,
                                                num_inference_steps=2, seed=1), output=tmp_path / "pics.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.contact.png" if kind == "sequence" else "pics-01.json"]
