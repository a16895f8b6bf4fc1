"""The library's front door: ``t2v.generate(prompt, model=..., seed=..., **fields)`` returns a Video; every request
type raises InvalidRequest naming the field and the nearest valid value; ``import t2v`` stays light."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import t2v
from t2v import InvalidRequest
from t2v.export import decode_video, read_embedded
from t2v.requests import GenerationRequest, ImageRequest, PostRequest, PostSpec, SequenceRequest


def test_the_one_liner_returns_frames_and_a_record_and_writes_nothing_until_saved(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    video = t2v.generate("a red circle moving right", model="t2v-shapes", seed=1, num_frames=8, progress=False)
    assert isinstance(video, t2v.Video)
    assert video.frames.shape == (8, 64, 64, 3) and video.frames.dtype == np.uint8
    assert video.record["seed"] == 1 and video.record["prompt"] == "a red circle moving right"
    assert video.outputs == [] and not list(work.iterdir())  # nothing written from a prompt alone
    paths = video.save(work / "out" / "circle.mp4", formats=["gif"])
    assert [p.name for p in paths] == ["circle.mp4", "circle.gif", "circle.json"]
    frames, fps = decode_video(work / "out" / "circle.mp4")
    assert frames.shape == (8, 64, 64, 3) and fps == pytest.approx(video.fps)
    embedded = read_embedded(work / "out" / "circle.mp4")
    sidecar = json.loads((work / "out" / "circle.json").read_text())
    assert embedded["frames_sha256"] == sidecar["frames_sha256"] == video.record["frames_sha256"]
    assert [o["format"] for o in sidecar["outputs"]] == ["mp4", "gif"] and sidecar["formats"] == ["mp4", "gif"]


def test_the_one_liner_gives_the_same_frames_as_a_request_object(tmp_path):
    request = GenerationRequest(prompt="a blue square moving up", model="t2v-shapes", seed=3, num_inference_steps=4)
    old = t2v.generate(request, output=tmp_path / "a.mp4")
    new = t2v.generate("a blue square moving up", model="t2v-shapes", seed=3, num_inference_steps=4, progress=False)
    assert (tmp_path / "a.mp4").is_file() and old.sidecar == tmp_path / "a.json"
    assert np.array_equal(old.frames, new.frames)


def test_the_one_liner_shows_a_progress_bar_unless_asked_not_to(capsys):
    t2v.generate("a red circle", model="t2v-shapes", seed=0, num_inference_steps=2, progress=True)
    assert "denoise" in capsys.readouterr().err
    t2v.generate("a red circle", model="t2v-shapes", seed=0, num_inference_steps=2, progress=False)
    assert "denoise" not in capsys.readouterr().err


@pytest.mark.parametrize("call, field, text", [
    (lambda: t2v.generate("x", model="t2v-shapes", num_frames=-1), "num_frames", "nearest valid: 1"),
    (lambda: t2v.generate("x", model="t2v-shapes", width=70), "width", "nearest valid: 72"),
    (lambda: t2v.generate("x", model="t2v-shapes", colour="red"), "colour", "unknown field"),
    (lambda: t2v.generate(GenerationRequest(prompt="x"), seed=2), "seed", "give the fields in the request"),
    (lambda: GenerationRequest(prompt="x", num_inference_steps=9999), "num_inference_steps", "nearest valid: 500"),
    (lambda: GenerationRequest.model_validate({"prompt": "x", "fps": 0}), "fps", "greater than 0"),
    (lambda: SequenceRequest(keyframes=["0: a", "4: b"], zoom=9), "zoom", "nearest valid: 2"),
    (lambda: ImageRequest(prompt="x", count=0), "count", "nearest valid: 1"),
    (lambda: PostSpec(upscale=3), "upscale", "nearest valid: 2"),
    (lambda: GenerationRequest(prompt="x", post={"upscale": 3}), "post.upscale", "nearest valid: 2"),
    (lambda: PostRequest(job="j", asset="a", post={"deflicker": True}), "asset", "exactly one source"),
])
def test_every_request_refuses_a_bad_value_with_invalid_request_naming_the_field(call, field, text):
    with pytest.raises(InvalidRequest) as e:
        call()
    assert e.value.field == field and text in str(e.value)


def test_import_t2v_is_light_and_imports_no_family():
    code = ("import sys, t2v; heavy = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]; "
            "fams = [m for m in sys.modules if m.startswith('t2v.families.')]; print(heavy, fams)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] []"


def test_a_run_imports_only_the_family_it_runs():
    """Of the modules that hold a family (the cards' references), only the one run is imported."""
    code = ("import sys, t2v; from t2v.models.hub import CARDS; t2v.generate('a red circle', model='t2v-shapes', "
            "seed=0, num_inference_steps=1, progress=False); "
            "print(sorted({c.ref.partition(':')[0] for c in CARDS} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['t2v.families.modelscope']", out
