"""t2v's own Stable Diffusion loop gives the frames diffusers' pipelines give (SD 1.x and SDXL)."""

from __future__ import annotations

import numpy as np
import pytest

from t2v.requests import ImageRequest, SequenceRequest
from t2v.runner import image as image_run
from t2v.settings import get_settings


def generate_sequence(request, **kwargs):
    return image_run.generate_sequence(request, settings=get_settings(), **kwargs)


def generate_images(request, **kwargs):
    return image_run.generate_images(request, settings=get_settings(), **kwargs)


@pytest.fixture(scope="module")
def tiny_sdxl_model(tmp_path_factory):
    from tests.tinymodels import make_tiny

    return make_tiny(tmp_path_factory.mktemp("models") / "tiny-sdxl", family="sdxl", fp16_variant=False)


def _diffusers_image(pipeline_cls, path, **kw):
    import torch
    from diffusers import DDIMScheduler

    pipe = pipeline_cls.from_pretrained(path)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(generator=torch.Generator("cpu").manual_seed(3), output_type="np", **kw).images[0]
    return np.round(out * 255).astype(int)


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_txt2img_matches_diffusers(family, tiny_sd_model, tiny_sdxl_model, tmp_path):
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    path, cls = (tiny_sd_model, StableDiffusionPipeline) if family == "sd" else (tiny_sdxl_model, StableDiffusionXLPipeline)
    kw = dict(prompt="a red circle", num_inference_steps=3, height=64, width=64, guidance_scale=5.0)
    ours = generate_images(ImageRequest.create(model=str(path), seed=3, scheduler="ddim", negative_prompt="", **{
        "prompt": kw["prompt"], "num_inference_steps": 3, "height": 64, "width": 64, "guidance_scale": 5.0}),
        output=tmp_path / "img.png")[0]
    ref = _diffusers_image(cls, path, **kw)
    assert ours.frames.shape == (1, 64, 64, 3)
    diff = np.abs(ours.frames[0].astype(int) - ref)
    assert diff.max() <= 1 and diff.mean() < 0.05, (diff.max(), diff.mean())  # uint8 rounding only
    assert ours.record["family"] == family


def test_sdxl_sequence_runs(tiny_sdxl_model):
    req = SequenceRequest.create(keyframes=["0: a red circle", "2: a blue square"], method="prompt-interp",
                                 model=str(tiny_sdxl_model), width=32, height=32, num_inference_steps=2, seed=0, formats=())
    r = generate_sequence(req)
    assert r.frames.shape == (3, 32, 32, 3) and r.record["model_steps"] == 6
