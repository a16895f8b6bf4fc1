"""AnyFlow on a tiny random-weight model in the hub layout: the stock ``AnyFlowPipeline``'s frames for the same
seed (any step count, with and without guidance), bitwise resume, LoRA, the request rules and the planner."""

from __future__ import annotations

import re

import numpy as np
import pytest

from t2v.errors import InvalidRequest
from t2v.sampling.vae import to_uint8
from tests.families.checks import (assert_periodic_checkpoints_resume_bitwise, assert_resume_after_cancel_is_bitwise,
                                   assert_scale_0_is_the_base, random_lora, run, without_ftfy)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from tests.tinymodels import make_tiny_model

    return make_tiny_model("anyflow", tmp_path_factory.mktemp("anyflow") / "anyflow", seed=0)


def stock(model, result, prepare=None):
    """The stock pipeline's frames (uint8) for the request ``result`` ran (torch's global generator seeded too:
    the stock pipeline's prompt cleaning calls ftfy where it is installed, nothing random)."""

    import torch
    from diffusers import AnyFlowPipeline
    from diffusers.pipelines.anyflow import pipeline_anyflow as module

    without_ftfy(module)  # the stock pipeline calls ftfy unguarded
    r = result.request
    pipe = AnyFlowPipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    if prepare is not None:
        prepare(pipe)
    out = pipe(prompt=r.prompt, negative_prompt=r.negative_prompt, height=r.height, width=r.width,
               num_frames=r.num_frames, num_inference_steps=r.num_inference_steps, guidance_scale=r.guidance_scale,
               generator=torch.Generator("cpu").manual_seed(r.seed), output_type="np")
    return to_uint8(out.frames[0])


@pytest.mark.parametrize("fields", [{}, {"num_inference_steps": 1}, {"num_inference_steps": 2, "guidance_scale": 3.0,
                                                                      "negative_prompt": "blurry"},
                                    {"width": 96, "num_frames": 5}], ids=["4-steps", "1-step", "guidance", "wide"])
def test_frames_match_the_stock_pipeline(model, fields):
    previews = []
    frames, result = run(model, on_preview=lambda step, img: previews.append(img), **fields)
    r = result.request
    assert frames.shape == (r.num_frames, r.height, r.width, 3) and frames.std() > 1
    assert np.abs(frames.astype(int) - stock(model, result).astype(int)).max() <= 1
    assert len(previews) == r.num_inference_steps


def test_the_prompt_and_the_step_count_change_the_frames(model):
    base = run(model)[0]
    assert not np.array_equal(run(model, prompt="a blue whale under the sea")[0], base)
    assert not np.array_equal(run(model, num_inference_steps=2)[0], base)


def test_resume_after_a_cancel_and_after_a_crash_is_bitwise(model, tmp_path):
    whole = run(model)[0]
    assert_resume_after_cancel_is_bitwise(run, tmp_path / "cancel", 2, model, whole=whole)
    assert_periodic_checkpoints_resume_bitwise(run, tmp_path / "crash", model, whole=whole, crash_at=2)


@pytest.mark.parametrize(("fields", "message"), [
    ({"width": 72}, "width: 72 is not a multiple of 16, which this model needs; nearest valid: 64"),
    ({"num_frames": 10}, "num_frames: 10 is not 4k+1, which this model needs; nearest valid: 9"),
    ({"cache": "fbc"}, "cache: "),
    ({"scheduler": "unipc"}, "scheduler: unipc does not work with"),
])
def test_requests_it_cannot_run_are_refused_naming_the_field(model, fields, message):
    with pytest.raises(InvalidRequest, match=re.escape(message)):
        run(model, **fields)


def test_a_lora_in_wans_layout_changes_the_frames_as_stock_loads_it(model, tmp_path):
    from diffusers import AnyFlowPipeline, AnyFlowTransformer3DModel

    lora = random_lora(AnyFlowTransformer3DModel, model, tmp_path / "lora", seed=0, pipeline_cls=AnyFlowPipeline)
    base = run(model)[0]
    with_lora, result = run(model, lora=str(lora))
    assert not np.array_equal(with_lora, base)
    assert np.abs(with_lora.astype(int) - stock(model, result, prepare=lambda p: p.load_lora_weights(str(lora)))
                  .astype(int)).max() <= 2
    assert_scale_0_is_the_base(run(model, lora=str(lora), lora_scale=0.0)[0], base, with_lora)


def test_the_planner_estimates_the_default_size(model):
    from t2v.families import get_family

    m = get_family("anyflow").measure(model, 9, 32, 64, 1, False, 9)
    assert {"transformer", "text_encoder", "vae"} <= set(m["params"])
    assert m["step_flops"] > 0 and m["acts"]["transformer"] > 0 and m["acts"]["text"] > 0
