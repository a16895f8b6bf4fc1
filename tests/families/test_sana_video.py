"""SANA-Video on tiny random-weight models in the hub layout (480p with Wan 2.1's VAE, 720p with LTX-2's): the
stock ``SanaVideoPipeline`` and ``SanaImageToVideoPipeline`` frames for the same seed, bitwise resume through the
multistep solver, LoRA as the stock pipeline loads it, the request rules and the planner's dry run."""

from __future__ import annotations

import re

import numpy as np
import pytest

from t2v.errors import InvalidRequest
from t2v.sampling.vae import to_uint8
from tests.families.checks import (assert_a_lora_changes_the_frames_and_scale_0_is_the_base,
                                   assert_periodic_checkpoints_resume_bitwise, assert_resume_after_cancel_is_bitwise,
                                   assert_two_stacked_loras_match_stock, cancel_after, random_lora, run)

ATTENTION = ("to_q", "to_k", "to_v")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from tests.tinymodels import make_tiny_model

    return make_tiny_model("sana-video", tmp_path_factory.mktemp("sana-video") / "sana-video", seed=0)


@pytest.fixture(scope="module")
def model_720p(tmp_path_factory):
    from tests.tinymodels import make_tiny_model

    return make_tiny_model("sana-video-720p", tmp_path_factory.mktemp("sana-video-720p") / "sana-video-720p", seed=0)


@pytest.fixture(scope="module")
def first_frame(tmp_path_factory):
    """A first frame for image-to-video: a gradient, not the request's size."""
    from PIL import Image

    path = tmp_path_factory.mktemp("sana-video-image") / "first.png"
    yy, xx = np.mgrid[0:60, 0:80]
    Image.fromarray(np.stack([xx * 3, yy * 4, (xx + yy) * 2], -1).astype(np.uint8)).save(path)
    return path


def stock(model, result, prepare=None, image=None):
    """The stock pipeline's frames (uint8) for the request ``result`` ran (``image``: the image-to-video pipeline
    on the same folder), at the size asked (no resolution binning, as t2v runs it)."""
    import torch
    from diffusers import SanaImageToVideoPipeline, SanaVideoPipeline
    from PIL import Image

    r = result.request
    cls, extra = SanaVideoPipeline, {}
    if image is not None:
        cls, extra = SanaImageToVideoPipeline, {"image": Image.open(image).convert("RGB")}
    pipe = cls.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    if prepare is not None:
        prepare(pipe)
    out = pipe(prompt=r.prompt, negative_prompt=r.negative_prompt or "", height=r.height, width=r.width,
               frames=r.num_frames, num_inference_steps=r.num_inference_steps, guidance_scale=r.guidance_scale,
               generator=torch.Generator("cpu").manual_seed(r.seed), output_type="np", use_resolution_binning=False,
               **extra)
    return to_uint8(out.frames[0])


@pytest.mark.parametrize("fields", [{}, {"guidance_scale": 1.0}, {"negative_prompt": "blurry", "num_inference_steps": 3},
                                    {"width": 96, "height": 64, "num_frames": 5}],
                         ids=["guidance-6", "no-guidance", "negative", "wide"])
def test_frames_match_the_stock_pipeline(model, fields):
    previews = []
    frames, result = run(model, on_preview=lambda step, img: previews.append(img), **fields)
    r = result.request
    assert frames.shape == (r.num_frames, r.height, r.width, 3) and frames.dtype == np.uint8
    assert frames.std() > 1
    assert np.abs(frames.astype(int) - stock(model, result).astype(int)).max() <= 1
    assert len(previews) == r.num_inference_steps and previews[0].shape[:2] == (r.height, r.width)


def test_the_720p_layout_with_ltx2s_vae_matches_the_stock_pipeline(model_720p, first_frame):
    frames, result = run(model_720p)
    r = result.request
    assert frames.shape == (9, 64, 64, 3) and frames.std() > 1
    assert np.abs(frames.astype(int) - stock(model_720p, result).astype(int)).max() <= 1
    frames, result = run(model_720p, image=first_frame, guidance_scale=1.0)
    assert np.abs(frames.astype(int) - stock(model_720p, result, image=first_frame).astype(int)).max() <= 1


def test_the_prompt_and_guidance_change_the_frames(model):
    base = run(model)[0]
    assert np.abs(run(model, prompt="a blue whale under the sea")[0].astype(int) - base.astype(int)).max() > 20
    assert not np.array_equal(run(model, guidance_scale=1.0)[0], base)


def test_resume_after_a_cancel_and_after_a_crash_is_bitwise(model, tmp_path):
    """The DPM-Solver++ history (the last model outputs) is in the checkpoint: a resume takes the same steps."""
    whole = run(model)[0]
    assert_resume_after_cancel_is_bitwise(run, tmp_path / "cancel", 2, model, whole=whole)
    assert_periodic_checkpoints_resume_bitwise(run, tmp_path / "crash", model, whole=whole, crash_at=2)


@pytest.mark.parametrize(("fields", "message"), [
    ({"width": 80}, "width: 80 is not a multiple of 32, which this model needs; nearest valid: 64"),
    ({"num_frames": 10}, "num_frames: 10 is not 4k+1, which this model needs; nearest valid: 9"),
    ({"cache": "fbc"}, "cache: "),
    ({"last_image": "x.png", "image": "y.png"}, "last_image: "),
])
def test_requests_it_cannot_run_are_refused_naming_the_field(model, fields, message):
    from t2v.requests import GenerationRequest
    from t2v.runner.plan import plan_run
    from t2v.settings import Settings

    with pytest.raises(InvalidRequest, match=re.escape(message)) as e:  # as a run plans it, before loading
        plan_run(GenerationRequest(prompt="x", model=str(model), **fields), Settings())
    assert e.value.field == message.split(":")[0]


def test_the_720p_layout_takes_8k_plus_1_frames(model_720p):
    from t2v.requests import GenerationRequest
    from t2v.runner.plan import plan_run
    from t2v.settings import Settings

    with pytest.raises(InvalidRequest, match=re.escape("num_frames: 13 is not 8k+1, which this model needs; "
                                                       "nearest valid: 9")):
        plan_run(GenerationRequest(prompt="x", model=str(model_720p), num_frames=13), Settings())


@pytest.fixture(scope="module")
def lora(model, tmp_path_factory):
    from diffusers import SanaVideoPipeline, SanaVideoTransformer3DModel

    return random_lora(SanaVideoTransformer3DModel, model, tmp_path_factory.mktemp("sana-lora"), seed=0,
                       pipeline_cls=SanaVideoPipeline, targets=ATTENTION)


def test_lora_changes_the_frames_and_scale_0_is_the_base(model, lora):
    assert_a_lora_changes_the_frames_and_scale_0_is_the_base(run, model, lora)


def test_two_stacked_loras_match_the_stock_pipeline_with_set_adapters(model, lora, tmp_path):
    from diffusers import SanaVideoPipeline, SanaVideoTransformer3DModel

    second = random_lora(SanaVideoTransformer3DModel, model, tmp_path / "second", seed=1,
                         pipeline_cls=SanaVideoPipeline, targets=("to_q", "to_v"))
    assert_two_stacked_loras_match_stock(run, stock, model, lora, second)


def test_the_planner_estimates_the_default_size(model):
    from t2v.families import get_family

    m = get_family("sana-video").measure(model, 9, 32, 64, 2, False, 9)
    assert {"transformer", "text_encoder", "vae"} <= set(m["params"])
    assert m["step_flops"] > 0 and m["acts"]["transformer"] > 0 and m["acts"]["text"] > 0


@pytest.mark.parametrize("fields", [{}, {"guidance_scale": 1.0, "num_frames": 13}], ids=["guidance-6", "no-guidance"])
def test_image_to_video_matches_the_stock_pipeline(model, first_frame, fields):
    """The image's latent frame starts the clip at timestep 0 and is never stepped, as SanaImageToVideoPipeline
    does; another seed gives other frames after the first."""
    frames, result = run(model, image=first_frame, **fields)
    r = result.request
    assert frames.shape == (r.num_frames, r.height, r.width, 3) and result.record["image_sha256"]
    assert np.abs(frames.astype(int) - stock(model, result, image=first_frame).astype(int)).max() <= 1
    assert not np.array_equal(frames, run(model, image=first_frame, seed=4, **fields)[0])


def test_image_to_video_resumes_bitwise(model, first_frame, tmp_path):
    frames = run(model, image=first_frame)[0]
    spec = cancel_after(run, tmp_path / "ckpt.pt", 2, model, image=first_frame)
    resumed, result = run(model, image=first_frame, checkpoint=spec)
    assert result.record["resumed_from_step"] == 2 and np.array_equal(resumed, frames)


def test_the_planner_estimates_the_720p_layout_from_its_reference_dry_run(model_720p):
    """The planner's reference shape is at least 64 px a side: at the 720p layout's 32 px, LTX-2's VAE would pad a
    1x1 latent and the dry run fail."""
    from t2v.families import get_family
    from t2v.planner.memory import estimate
    from t2v.requests import GenerationRequest

    family = get_family("sana-video")
    frames, side = family.reference_shape(model_720p)
    assert side >= 64 and family.measure(model_720p, frames, side, side, 1, False, frames)["step_flops"] > 0
    request = GenerationRequest(prompt="x", model=str(model_720p), num_frames=9, width=64, height=64, seed=1,
                                guidance_scale=1.0, num_inference_steps=2, device="cpu", dtype="fp32")
    assert estimate(model_720p, request, family=family, plan="speed", device="cpu", dtype="fp32").peak_bytes > 0
