"""Wan-Animate on a tiny ``WanAnimatePipeline`` folder: the stock pipeline's frames for the same character image,
pose and face videos and seed (one segment, segments padded by reflection, five frames carried over, guidance,
replace mode with a background and a mask); every input counting; bitwise resume inside a segment, at a segment's
end and from periodic checkpoints; each segment streamed as it is decoded; stacked LoRAs as the stock pipeline
loads them; refusals naming the field before any weights load; the planner's dry run; the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from t2v.errors import InvalidRequest
from t2v.export import decode_video
from t2v.export.writers import write_video
from t2v.sampling.vae import to_uint8
from tests.families.checks import (assert_close_to_stock, assert_periodic_checkpoints_resume_bitwise,
                                   assert_resume_after_cancel_is_bitwise, assert_two_stacked_loras_match_stock,
                                   cancel_after, random_lora, run, without_ftfy)

W = H = 32  # the tiny model's defaults: 9-frame segments, one frame carried over, 4 steps


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from tests.tinymodels import make_tiny_model

    return make_tiny_model("wan-animate", tmp_path_factory.mktemp("wan-animate") / "m", seed=0)


def clip(n, h, w, shift=0):
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([np.stack([(xx * 7 + i * 20 + shift) % 256, (yy * 5 + i * 9) % 256, ((xx + yy) * 3 + i) % 256], -1)
                     for i in range(n)]).astype(np.uint8)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A character image (not of the output's size), pose videos (17 frames, and 9 and 13), face videos of another
    size than the model's (24x24 for 16x16) and a second face, a background and a mask (gif: a block moving right)."""
    root = tmp_path_factory.mktemp("animate-inputs")
    for n in (9, 13, 17):
        write_video(clip(n, H, W), root / f"pose{n}.mp4", "mp4", 8, crf=4)
        write_video(clip(n, 24, 24, 50), root / f"face{n}.mp4", "mp4", 8, crf=4)
        write_video(clip(n, 24, 24, 150), root / f"otherface{n}.mp4", "mp4", 8, crf=4)
        write_video(clip(n, H, W, 90)[:, ::-1], root / f"background{n}.mp4", "mp4", 8, crf=4)
        mask = np.zeros((n, H, W, 3), np.uint8)
        for i in range(n):
            mask[i, 6:26, 2 * i % 16:2 * i % 16 + 14] = 255
        write_video(mask, root / f"mask{n}.gif", "gif", 8)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 24, 3), dtype=np.uint8)).save(root / "character.png")
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(root / "other.png")
    return root


def animate(inputs, n=9, *, replace=False, face="face", **fields):
    return {"image": str(inputs / "character.png"), "control_video": str(inputs / f"pose{n}.mp4"),
            "face_video": str(inputs / f"{face}{n}.mp4"), "num_frames": n,
            **({"background_video": str(inputs / f"background{n}.mp4"), "mask_video": str(inputs / f"mask{n}.gif")}
               if replace else {}), **fields}


def go(model, image=None, **fields):
    """The family's runner: the character image is a request field here (``run``'s image argument too)."""
    return run(model, image=image, **fields)


def stock(model, result, inputs, *, replace=False, face="face", prepare=None):
    import torch
    import diffusers.pipelines.wan.pipeline_wan_animate as module
    from diffusers import WanAnimatePipeline

    without_ftfy(module)
    r, n = result.request, result.request.num_frames
    pipe = WanAnimatePipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    if prepare is not None:
        prepare(pipe)
    frames = lambda name: [Image.fromarray(f) for f in decode_video(inputs / name)[0]]  # noqa: E731
    extra = {}
    if replace:  # t2v's binary mask, as the stock pipeline reads one (white: the character)
        masks = [Image.fromarray(((f.mean(-1) >= 128) * 255).astype(np.uint8)) for f in
                 decode_video(inputs / f"mask{n}.gif")[0]]
        extra = {"mode": "replace", "background_video": frames(f"background{n}.mp4"), "mask_video": masks}
    out = pipe(image=Image.open(inputs / "character.png").convert("RGB"), pose_video=frames(f"pose{n}.mp4"),
               face_video=frames(f"{face}{n}.mp4"), prompt=r.prompt, negative_prompt=r.negative_prompt,
               height=r.height, width=r.width, segment_frame_length=r.extras["segment_frames"],
               prev_segment_conditioning_frames=r.extras["segment_overlap"], num_inference_steps=r.num_inference_steps,
               guidance_scale=r.guidance_scale, generator=torch.Generator("cpu").manual_seed(r.seed),
               output_type="np", **extra)
    return to_uint8(out.frames[0])


@pytest.mark.parametrize("n, fields", [
    (9, {}),  # one segment
    (13, {"guidance_scale": 3.0}),  # two segments, the pose and face padded by reflection; guidance, the face blanked
    (17, {"extras": {"segment_frames": 13, "segment_overlap": 5}}),  # five frames carried over, two segments
])
def test_animation_matches_the_stock_pipeline(model, inputs, n, fields):
    ours, result = go(model, **animate(inputs, n, **fields))
    assert ours.shape == (n, H, W, 3)
    rec = result.record
    assert rec["control_video_sha256"] and rec["face_video_sha256"] and rec["image_sha256"]
    assert rec["extras"]["segment_frames"] == fields.get("extras", {}).get("segment_frames", 9)
    assert_close_to_stock(ours, stock(model, result, inputs))


def test_replace_mode_matches_the_stock_pipeline(model, inputs):
    ours, result = go(model, **animate(inputs, 13, replace=True))
    assert result.record["background_video_sha256"] and result.record["mask_video_sha256"]
    assert_close_to_stock(ours, stock(model, result, inputs, replace=True))


def test_every_input_changes_the_frames(model, inputs):
    base = go(model, **animate(inputs, 9))[0]
    for fields in (animate(inputs, 9, face="otherface"), animate(inputs, 9, image=str(inputs / "other.png")),
                   animate(inputs, 9, control_video=str(inputs / "background9.mp4")),
                   animate(inputs, 9, replace=True), animate(inputs, 9, prompt="a dancer in a red coat")):
        other = go(model, **fields)[0]
        assert np.abs(other.astype(int) - base.astype(int)).max() > 2, fields


@pytest.mark.parametrize("at", [5, 4])  # inside the second segment, and at the first one's end
def test_a_cancelled_run_resumes_bitwise_across_segments(model, inputs, tmp_path, at):
    assert_resume_after_cancel_is_bitwise(go, tmp_path, at, model, **animate(inputs, 13, guidance_scale=3.0))


def test_periodic_checkpoints_resume_bitwise_and_only_on_the_same_inputs(model, inputs, tmp_path):
    assert_periodic_checkpoints_resume_bitwise(go, tmp_path, model, crash_at=6, **animate(inputs, 13))
    spec = cancel_after(go, tmp_path / "face.pt", 5, model, **animate(inputs, 13))
    other = go(model, checkpoint=spec, **animate(inputs, 13, face="otherface"))[1]
    assert other.record.get("resumed_from_step") is None  # another face video: the checkpoint is not this run's


def test_each_segment_streams_when_it_is_decoded(model, inputs, tmp_path, monkeypatch):
    """Two segments (17 frames, 9 a segment, one carried over): the clip so far goes out after each (9, then 17
    frames), while the second segment is made; the streamed frames are the run's, and the unstreamed run's."""
    from t2v import generate
    from t2v.export.stream import ClipStream
    from t2v.requests import GenerationRequest

    parts, steps, real = [], [], ClipStream.frames
    monkeypatch.setattr(ClipStream, "frames", lambda s, given: parts.append(np.array(given)) or real(s, given))
    request = GenerationRequest(model=str(model), prompt="a dancer", seed=4, formats=(), **animate(inputs, 17))
    result = generate(request, stream=tmp_path / "live.mp4",
                      on_progress=lambda e: steps.append((e.step, len(parts))) if e.stage == "denoise" else None)
    assert [len(p) for p in parts][:2] == [9, 17] and all(np.array_equal(p, result.frames[:len(p)]) for p in parts)
    assert next(step for step, k in steps if k >= 1) == 4  # the first segment went out before the second was made
    monkeypatch.undo()
    assert np.array_equal(generate(request).frames, result.frames)


def test_two_stacked_loras_match_the_stock_pipeline(model, inputs, tmp_path):
    from diffusers import WanAnimatePipeline, WanAnimateTransformer3DModel

    first, second = (random_lora(WanAnimateTransformer3DModel, model, tmp_path / f"l{i}", seed=i,
                                 pipeline_cls=WanAnimatePipeline) for i in (1, 2))
    fields = animate(inputs, 9)
    assert_two_stacked_loras_match_stock(
        lambda m, **kw: go(m, **fields, **kw),
        lambda m, result, prepare: stock(m, result, inputs, prepare=prepare), model, first, second)


def test_requests_it_cannot_run_are_refused_by_name_before_loading(model, inputs, monkeypatch):
    from t2v.models import loader

    monkeypatch.setattr(loader, "load_model", lambda *a, **k: pytest.fail("loaded weights"))
    full = animate(inputs, 9)
    for fields, field, said in (
        ({**full, "image": None}, "image", "character"),
        ({**full, "face_video": None}, "face_video", "face video"),
        ({**full, "mask_video": str(inputs / "mask9.gif")}, "background_video", "scene"),
        ({**full, "extras": {"segment_frames": 10}}, "extras.segment_frames", "nearest valid: 9"),
        ({**full, "extras": {"segment_overlap": 3}}, "extras.segment_overlap", "nearest valid: 1"),
        ({**full, "extras": {"segment_overlap": 5}}, "extras.segment_frames", "nearest valid: 13"),
        ({**full, "num_frames": 1}, "num_frames", "nearest valid: 2"),
        ({**full, "reference_images": (str(inputs / "other.png"),)}, "reference_images", "one character image"),
        ({**full, "control_scale": 0.5}, "control_scale", "no control strength"),
        ({**full, "cache": "fbc"}, "cache", "fbc"),
        ({**full, "last_image": str(inputs / "other.png")}, "last_image", "last"),
        ({**full, "face_video": str(inputs / "face13.mp4")}, "face_video", "more than 9 frames; this run makes 9"),
        ({**full, "face_video": str(inputs / "missing.mp4")}, "face_video", "missing.mp4"),
        ({**full, "control_video": str(inputs / "pose13.mp4")}, "control_video", "9 frames"),
    ):
        with pytest.raises(InvalidRequest) as e:
            go(model, **fields)
        assert e.value.field == field and said in str(e.value), (fields, str(e.value))
    with pytest.raises(InvalidRequest) as e:  # a model without a face input
        go("t2v-shapes", **{k: v for k, v in full.items() if k not in ("image", "control_video")},
           control_video=str(inputs / "pose9.mp4"))
    assert e.value.field in ("control_video", "face_video")
    with pytest.raises(ValueError, match="give mask_video too"):  # the request alone says it
        go(model, **{**full, "background_video": str(inputs / "background9.mp4")})


def test_fit_loops_a_short_pose_video_and_scales_the_face(model, inputs):
    frames, result = go(model, **animate(inputs, 9, control_video=str(inputs / "pose13.mp4"),
                                         face_video=str(inputs / "face13.mp4"), fit=True))
    assert frames.shape == (9, H, W, 3) and result.request.fit


def test_the_planner_measures_a_segment(model):
    from t2v.families import get_family

    family = get_family("wan-animate")
    one, two = (family.measure(model, f, H, W, 1, False, 1) for f in (9, 17))
    assert 0 < one["step_flops"] < two["step_flops"] and one["acts"]["transformer"] > 0
    assert set(one["roles"]["text"]) == {"text_encoder", "image_encoder"}


def test_the_cli_animates_from_make_tiny_and_streams(inputs, tmp_path, monkeypatch):
    from t2v.cli import app

    monkeypatch.setenv("T2V_HOME", str(tmp_path / "home"))
    folder = tmp_path / "animate"
    r = CliRunner().invoke(app, ["models", "make-tiny", str(folder), "--family", "wan-animate"])
    assert r.exit_code == 0, r.output
    out = tmp_path / "dance.mp4"
    r = CliRunner().invoke(app, ["generate", "a dancer", "--model", str(folder), "--image", str(inputs / "character.png"),
                                 "--control-video", str(inputs / "pose13.mp4"), "--face-video",
                                 str(inputs / "face13.mp4"), "--frames", "13", "--segment-overlap", "1", "--stream",
                                 "-o", str(out), "-q"])
    assert r.exit_code == 0, r.output
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["family"] == "wan-animate" and record["num_frames"] == 13
    assert len(decode_video(out)[0]) == 13
    r = CliRunner().invoke(app, ["generate", "a dancer", "--model", str(folder), "--image", str(inputs / "character.png"),
                                 "--control-video", str(inputs / "pose9.mp4"), "--frames", "9"])
    assert r.exit_code == 2 and "face_video" in r.output
