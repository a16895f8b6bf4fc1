"""Helios-Mid and Helios-Distilled (``HeliosPyramidPipeline``) on tiny random-weight models in their hub layouts:
the stock pipeline's frames for the same seed (one and two chunks, text and image, CFG-Zero* for Mid, the DMD
scheduler with the first chunk amplified for Distilled); bitwise resume inside a stage, across the stages' resizes
and across chunks; previews at each stage's size; the requests it cannot run refused with the nearest valid value."""

from __future__ import annotations

import json

import numpy as np
import pytest

from t2v.errors import InvalidRequest
from t2v.sampling.vae import to_uint8
from tests.families.checks import (assert_periodic_checkpoints_resume_bitwise, cancel_after, noise_image, run,
                                   without_ftfy)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from tests.tinymodels import make_tiny_model

    root = tmp_path_factory.mktemp("helios-pyramid")
    return {kind: make_tiny_model(f"helios-{kind}", root / kind, seed=0) for kind in ("mid", "distilled")}


@pytest.fixture(scope="module")
def first_frame(tmp_path_factory):
    return noise_image(tmp_path_factory.mktemp("pyramid-image"), seed=1)


def stock(model, result, image=None):
    """HeliosPyramidPipeline's frames (uint8) for the request ``result`` ran: its steps split evenly over the three
    stages, the folder's amplified first chunk. Its CFG-Zero* views the transformer's output, which is not
    contiguous at these sizes; the stock transformer's outputs are made contiguous (the same values) so it runs."""
    import torch
    from diffusers import HeliosPyramidPipeline
    from diffusers.pipelines.helios import pipeline_helios_pyramid
    from PIL import Image

    without_ftfy(pipeline_helios_pyramid)
    r = result.request
    defaults = json.loads((model / "t2v.json").read_text())["defaults"]
    pipe = HeliosPyramidPipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    pipe.transformer.register_forward_hook(lambda m, i, o: tuple(x.contiguous() for x in o))
    extra = {"image": Image.open(image).convert("RGB")} if image is not None else {}
    out = pipe(prompt=r.prompt, negative_prompt=r.negative_prompt, height=r.height, width=r.width,
               num_frames=r.num_frames, guidance_scale=r.guidance_scale,
               pyramid_num_inference_steps_list=[r.num_inference_steps // 3] * 3,
               is_amplify_first_chunk=defaults.get("amplify_first_chunk", False),
               generator=torch.Generator("cpu").manual_seed(r.seed), output_type="np", **extra)
    return to_uint8(out.frames[0])


@pytest.mark.parametrize("kind,fields", [("mid", {}), ("mid", {"num_frames": 65, "width": 128}),
                                         ("distilled", {}), ("distilled", {"num_frames": 65})])
def test_frames_match_the_stock_pyramid_pipeline(models, kind, fields):
    frames, result = run(models[kind], **fields)
    r = result.request
    assert frames.shape == (r.num_frames, r.height, r.width, 3) and frames.std() > 1
    assert np.abs(frames.astype(int) - stock(models[kind], result).astype(int)).max() <= 1


@pytest.mark.parametrize("kind", ["mid", "distilled"])
def test_image_to_video_matches_the_stock_pyramid_pipeline(models, first_frame, kind):
    frames, result = run(models[kind], image=first_frame, num_frames=65 if kind == "distilled" else 33)
    assert np.abs(frames.astype(int) - stock(models[kind], result, image=first_frame).astype(int)).max() <= 1


@pytest.mark.parametrize("kind,at", [("mid", 1), ("mid", 2), ("mid", 7), ("distilled", 4), ("distilled", 13)],
                         ids=["mid-in-stage", "mid-at-a-resize", "mid-next-chunk", "distilled-amplified",
                              "distilled-next-chunk"])
def test_a_cancelled_run_resumes_bitwise(models, tmp_path, kind, at):
    whole, _ = run(models[kind], num_frames=65)
    spec = cancel_after(run, tmp_path / "ckpt.pt", at, models[kind], num_frames=65)
    resumed, result = run(models[kind], checkpoint=spec, num_frames=65)
    assert result.record["resumed_from_step"] == at and np.array_equal(resumed, whole)


def test_periodic_checkpoints_resume_bitwise(models, tmp_path):
    assert_periodic_checkpoints_resume_bitwise(run, tmp_path, models["distilled"], crash_at=5)


def test_progress_counts_every_stage_and_previews_have_each_stages_size(models):
    previews, totals = [], set()
    run(models["distilled"], num_frames=65, on_preview=lambda step, img: previews.append(img.shape[:2]),
        on_progress=lambda e: totals.add(e.total) if e.stage == "denoise" else None)
    # the amplified first chunk: 4 steps a stage (its scheduler's 2 * 2 + 1 sigmas), then 2 a stage: 12 + 6
    assert totals == {18} and len(previews) == 18
    assert previews[:4] == [previews[0]] * 4 and previews[4] != previews[0]
    assert previews[0][0] * 4 == previews[11][0] == previews[-1][0] == 64


@pytest.mark.parametrize("fields,field,message", [
    ({"num_inference_steps": 7}, "num_inference_steps", "evenly over its 3 pyramid stages; nearest valid: 6"),
    ({"width": 96}, "width", "multiples of 64; nearest valid: 128"),
])
def test_requests_it_cannot_run_are_refused_with_the_nearest(models, fields, field, message):
    with pytest.raises(InvalidRequest) as e:
        run(models["mid"], **fields)
    assert e.value.field == field and message in str(e.value)
