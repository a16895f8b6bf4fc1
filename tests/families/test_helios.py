"""Helios on a tiny random-weight model in the hub layout: the stock ``HeliosPipeline`` frames for the same seed over
one and several chunks (text- and image-to-video), bitwise resume inside a chunk and across chunks, the clip
streamed chunk by chunk (tests/export/test_stream.py), LoRA as the stock pipeline loads it, the request rules and the planner's dry run."""

from __future__ import annotations

import re

import numpy as np
import pytest

from t2v.errors import InvalidRequest
from t2v.sampling.vae import to_uint8
from tests.families.checks import (assert_a_lora_changes_the_frames_and_scale_0_is_the_base,
                                   assert_periodic_checkpoints_resume_bitwise, assert_resume_after_cancel_is_bitwise,
                                   assert_two_stacked_loras_match_stock, cancel_after, random_lora, run, without_ftfy)

ATTENTION = ("attn1.to_q", "attn1.to_k", "attn1.to_v")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from tests.tinymodels import make_tiny_model

    return make_tiny_model("helios", tmp_path_factory.mktemp("helios") / "helios", seed=0)


@pytest.fixture(scope="module")
def first_frame(tmp_path_factory):
    """A first frame for image-to-video: a gradient, not the request's size."""
    from PIL import Image

    path = tmp_path_factory.mktemp("helios-image") / "first.png"
    yy, xx = np.mgrid[0:60, 0:80]
    Image.fromarray(np.stack([xx * 3, yy * 4, (xx + yy) * 2], -1).astype(np.uint8)).save(path)
    return path


def stock(model, result, prepare=None, image=None):
    """The stock pipeline's frames (uint8) for the request ``result`` ran (``image``: from that first frame). The
    stock prompt cleaning calls ftfy unguarded; t2v (Wan's cleaning) skips it where it is not installed."""
    import torch
    from diffusers import HeliosPipeline
    from diffusers.pipelines.helios import pipeline_helios
    from PIL import Image

    without_ftfy(pipeline_helios)
    r = result.request
    pipe = HeliosPipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    if prepare is not None:
        prepare(pipe)
    extra = {"image": Image.open(image).convert("RGB")} if image is not None else {}
    out = pipe(prompt=r.prompt, negative_prompt=r.negative_prompt, height=r.height, width=r.width,
               num_frames=r.num_frames, num_inference_steps=r.num_inference_steps, guidance_scale=r.guidance_scale,
               generator=torch.Generator("cpu").manual_seed(r.seed), output_type="np", **extra)
    return to_uint8(out.frames[0])


@pytest.mark.parametrize("fields", [{}, {"guidance_scale": 1.0}, {"num_frames": 65, "width": 96}],
                         ids=["one-chunk", "no-guidance", "two-chunks-wide"])
def test_frames_match_the_stock_pipeline(model, fields):
    previews = []
    frames, result = run(model, on_preview=lambda step, img: previews.append(img), **fields)
    r = result.request
    assert frames.shape == (r.num_frames, r.height, r.width, 3) and frames.std() > 1
    assert np.abs(frames.astype(int) - stock(model, result).astype(int)).max() <= 1
    chunks = -(-r.num_frames // 33)
    assert len(previews) == chunks * r.num_inference_steps and previews[0].shape[:2] == (r.height, r.width)


def test_image_to_video_over_three_chunks_matches_the_stock_pipeline(model, first_frame):
    """The image's latent starts every chunk's short memory; 97 frames: 3 chunks, the last two with a history."""
    frames, result = run(model, image=first_frame, num_frames=97, num_inference_steps=2)
    assert frames.shape == (97, 64, 64, 3) and result.record["image_sha256"]
    assert np.abs(frames.astype(int) - stock(model, result, image=first_frame).astype(int)).max() <= 1


def test_the_prompt_and_the_history_change_the_frames(model):
    base = run(model, num_frames=65)[0]
    assert np.abs(run(model, prompt="a blue whale under the sea", num_frames=65)[0].astype(int)
                  - base.astype(int)).max() > 5
    alone = run(model)[0]
    assert np.array_equal(base[:33], alone), "the first chunk has no history: the same alone"


def test_resume_inside_a_chunk_and_across_chunks_is_bitwise(model, tmp_path):
    """Cancelled in the second chunk's steps (5 of 2 x 3), or crashed after the first chunk: the same frames."""
    whole = run(model, num_frames=65)[0]
    assert_resume_after_cancel_is_bitwise(run, tmp_path / "cancel", 5, model, whole=whole, num_frames=65)
    assert_periodic_checkpoints_resume_bitwise(run, tmp_path / "crash", model, whole=whole, crash_at=3, num_frames=65)


@pytest.mark.parametrize(("fields", "message"), [
    ({"width": 72}, "width: 72 is not a multiple of 16, which this model needs; nearest valid: 64"),
    ({"num_frames": 61}, "num_frames: 61 is not whole chunks of 33 frames trimmed to 4k+1, which this model makes; "
                         "nearest valid: 65"),
    ({"num_frames": 10}, "num_frames: 10 is not whole chunks of 33 frames trimmed to 4k+1, which this model makes; "
                         "nearest valid: 33"),
    ({"num_frames": 150}, "num_frames: 150 is not whole chunks of 33 frames trimmed to 4k+1, which this model makes; "
                          "nearest valid: 165"),
    ({"cache": "fbc"}, "cache: "),
    ({"seconds": 3, "prompt_schedule": "0:a cat"}, "prompt_schedule: "),
])
def test_requests_it_cannot_run_are_refused_naming_the_field(model, fields, message):
    from t2v.requests import GenerationRequest
    from t2v.runner.plan import plan_run
    from t2v.settings import Settings

    with pytest.raises(InvalidRequest, match=re.escape(message)) as e:  # as a run plans it, before loading
        plan_run(GenerationRequest(prompt="x", model=str(model), **fields), Settings())
    assert e.value.field == message.split(":")[0]


def test_seconds_are_one_run_of_whole_chunks(model):
    """--seconds 3 at 24 fps (72 frames): three chunks (97 frames) in one run, not segments."""
    frames, result = run(model, seconds=3, num_inference_steps=1)
    assert frames.shape[0] == 97 and result.record["num_frames"] == 97
    assert result.record["long"] == {"method": "autoregressive chunks", "seconds": 3, "frames": 97}


@pytest.fixture(scope="module")
def lora(model, tmp_path_factory):
    from diffusers import HeliosPipeline, HeliosTransformer3DModel

    return random_lora(HeliosTransformer3DModel, model, tmp_path_factory.mktemp("helios-lora"), seed=0,
                       pipeline_cls=HeliosPipeline, targets=ATTENTION)


def test_lora_changes_the_frames_and_scale_0_is_the_base(model, lora):
    assert_a_lora_changes_the_frames_and_scale_0_is_the_base(run, model, lora)


def test_two_stacked_loras_match_the_stock_pipeline_with_set_adapters(model, lora, tmp_path):
    from diffusers import HeliosPipeline, HeliosTransformer3DModel

    second = random_lora(HeliosTransformer3DModel, model, tmp_path / "second", seed=1, pipeline_cls=HeliosPipeline,
                         targets=("attn1.to_q", "attn1.to_v"))
    assert_two_stacked_loras_match_stock(run, stock, model, lora, second)


def test_the_planner_estimates_a_chunk_whatever_the_length(model):
    from t2v.families import get_family

    family = get_family("helios")
    short, long = (family.measure(model, n, 64, 64, 1, False, 9) for n in (33, 129))
    assert {"transformer", "text_encoder", "vae"} <= set(short["params"])
    assert short["step_flops"] == long["step_flops"] > 0 and short["acts"]["transformer"] == long["acts"]["transformer"]
