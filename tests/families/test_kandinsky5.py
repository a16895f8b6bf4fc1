"""Kandinsky 5.0 Video on a tiny random-weight model in the hub layout: the stock ``Kandinsky5T2VPipeline``'s frames
for the same seed (with and without guidance, the pipeline's own negative prompt), bitwise resume, LoRA as the
stock pipeline loads it, the request rules and the planner's dry run."""

from __future__ import annotations

import re

import numpy as np
import pytest

from t2v.errors import InvalidRequest
from t2v.sampling.vae import to_uint8
from tests.families.checks import (assert_periodic_checkpoints_resume_bitwise, assert_resume_after_cancel_is_bitwise,
                                   assert_a_lora_changes_the_frames_and_scale_0_is_the_base,
                                   assert_two_stacked_loras_match_stock, assert_close_to_stock, cancel_after, random_lora,
                                   run)

ATTENTION = ("to_query", "to_key", "to_value")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from tests.tinymodels import make_tiny_model

    return make_tiny_model("kandinsky5", tmp_path_factory.mktemp("kandinsky5") / "kandinsky5", seed=0)


def stock(model, result, prepare=None, image=None):
    """The stock pipeline's frames (uint8) for the request ``result`` ran (``image``: the image-to-video pipeline
    from that file). The folder's tokenizer is a ``Qwen2VLProcessor``, whose video half needs torchvision: the
    stock pipeline gets its text tokenizer, which is all it calls."""
    import torch
    from diffusers import Kandinsky5I2VPipeline, Kandinsky5T2VPipeline
    from PIL import Image
    from transformers import AutoTokenizer

    r = result.request
    cls, extra = Kandinsky5T2VPipeline, {}
    if image is not None:
        cls, extra = Kandinsky5I2VPipeline, {"image": Image.open(image).convert("RGB")}
    pipe = cls.from_pretrained(model, tokenizer=None)
    pipe.tokenizer = AutoTokenizer.from_pretrained(model, subfolder="tokenizer")
    pipe.set_progress_bar_config(disable=True)
    if prepare is not None:
        prepare(pipe)
    out = pipe(prompt=r.prompt, negative_prompt=r.negative_prompt, height=r.height, width=r.width, num_frames=r.num_frames,
               num_inference_steps=r.num_inference_steps, guidance_scale=r.guidance_scale,
               generator=torch.Generator("cpu").manual_seed(r.seed), output_type="np", **extra)
    return to_uint8(out.frames[0])


@pytest.mark.parametrize("fields", [{}, {"guidance_scale": 1.0}, {"negative_prompt": "", "num_inference_steps": 3},
                                    {"width": 96, "height": 32, "num_frames": 5}],
                         ids=["guidance-5", "no-guidance", "empty-negative", "wide"])
def test_frames_match_the_stock_pipeline(model, fields):
    previews = []
    frames, result = run(model, on_preview=lambda step, img: previews.append(img), **fields)
    r = result.request
    assert frames.shape == (r.num_frames, r.height, r.width, 3) and frames.dtype == np.uint8
    assert frames.std() > 1
    assert np.abs(frames.astype(int) - stock(model, result).astype(int)).max() <= 1
    assert len(previews) == r.num_inference_steps and previews[0].shape[:2] == (r.height, r.width)


def test_the_prompt_and_guidance_change_the_frames(model):
    """The tiny transformer's modulation is not the zeros a fresh one starts with, so the text reaches the frames."""
    base = run(model)[0]
    assert np.abs(run(model, prompt="a blue whale under the sea")[0].astype(int) - base.astype(int)).max() > 20
    assert not np.array_equal(run(model, guidance_scale=1.0)[0], base)


def test_resume_after_a_cancel_and_after_a_crash_is_bitwise(model, tmp_path):
    whole = run(model)[0]
    assert_resume_after_cancel_is_bitwise(run, tmp_path / "cancel", 2, model, whole=whole)
    assert_periodic_checkpoints_resume_bitwise(run, tmp_path / "crash", model, whole=whole, crash_at=2)


@pytest.mark.parametrize(("fields", "message"), [
    ({"width": 72}, "width: 72 is not a multiple of 16, which this model needs; nearest valid: 64"),
    ({"num_frames": 10}, "num_frames: 10 is not 4k+1, which this model needs; nearest valid: 9"),
    ({"cache": "fbc"}, "cache: "),
    ({"image": "x.png"}, "image: "),
])
def test_requests_it_cannot_run_are_refused_naming_the_field(model, fields, message):
    from t2v.settings import Settings
    from t2v.requests import GenerationRequest
    from t2v.runner.plan import plan_run

    with pytest.raises(InvalidRequest, match=re.escape(message)) as e:  # as a run plans it, before loading
        plan_run(GenerationRequest(prompt="x", model=str(model), **fields), Settings())
    assert e.value.field == message.split(":")[0]


@pytest.fixture(scope="module")
def lora(model, tmp_path_factory):
    from diffusers import Kandinsky5T2VPipeline, Kandinsky5Transformer3DModel

    return random_lora(Kandinsky5Transformer3DModel, model, tmp_path_factory.mktemp("k5-lora"), seed=0,
                       pipeline_cls=Kandinsky5T2VPipeline, targets=ATTENTION)


def test_lora_changes_the_frames_and_scale_0_is_the_base(model, lora):
    assert_a_lora_changes_the_frames_and_scale_0_is_the_base(run, model, lora)


def test_two_stacked_loras_match_the_stock_pipeline_with_set_adapters(model, lora, tmp_path):
    from diffusers import Kandinsky5T2VPipeline, Kandinsky5Transformer3DModel

    second = random_lora(Kandinsky5Transformer3DModel, model, tmp_path / "second", seed=1,
                         pipeline_cls=Kandinsky5T2VPipeline, targets=("to_query", "to_value"))
    assert_two_stacked_loras_match_stock(run, stock, model, lora, second)


def test_the_planner_estimates_the_default_size(model):
    from t2v.families import get_family

    m = get_family("kandinsky5").measure(model, 9, 48, 64, 1, False, 9)
    assert {"transformer", "text_encoder", "text_encoder_2", "vae"} <= set(m["params"])
    assert m["step_flops"] > 0 and m["acts"]["transformer"] > 0 and m["acts"]["text"] > 0


@pytest.fixture(scope="module")
def i2v(tmp_path_factory):
    """The tiny image-to-video folder and a first frame (a gradient, not the request's size)."""
    from PIL import Image

    from tests.tinymodels import make_tiny_model

    out = tmp_path_factory.mktemp("kandinsky5-i2v")
    yy, xx = np.mgrid[0:60, 0:80]
    Image.fromarray(np.stack([xx * 3, yy * 4, (xx + yy) * 2], -1).astype(np.uint8)).save(out / "first.png")
    return make_tiny_model("kandinsky5-i2v", out / "i2v", seed=0), out / "first.png"


@pytest.mark.parametrize("fields", [{}, {"guidance_scale": 1.0, "num_frames": 21}], ids=["guidance-5", "no-guidance"])
def test_image_to_video_matches_the_stock_pipeline(i2v, fields):
    """The image's latent frame starts the clip and is never stepped; the first four latent frames are normalised
    against the next ones after the loop, as Kandinsky5I2VPipeline does."""
    model, image = i2v
    frames, result = run(model, image=image, **fields)
    r = result.request
    assert frames.shape == (r.num_frames, r.height, r.width, 3) and result.record["image_sha256"]
    assert np.abs(frames.astype(int) - stock(model, result, image=image).astype(int)).max() <= 1
    assert not np.array_equal(frames, run(model, image=image, seed=4, **fields)[0])


def test_image_to_video_resumes_bitwise_and_a_short_clip_runs(i2v, tmp_path):
    """A cancel mid-run resumes to the same frames; a clip of fewer than five latent frames, whose first frames
    have no later ones to be normalised against (the stock pipeline's frames are NaN there), runs without that
    step."""
    model, image = i2v
    frames = run(model, image=image)[0]
    spec = cancel_after(run, tmp_path / "ckpt.pt", 2, model, image=image)
    resumed, result = run(model, image=image, checkpoint=spec)
    assert result.record["resumed_from_step"] == 2 and np.array_equal(resumed, frames)
    short = run(model, image=image, num_frames=9)[0]
    assert short.shape[0] == 9 and short.std() > 1


def test_an_image_to_video_folder_needs_an_image(i2v):
    with pytest.raises(InvalidRequest, match="cannot make text-to-video; it supports: i2v"):
        run(i2v[0])


# -- sparse (NABLA) attention: the 10 s models -------------------------------------------------------------------
@pytest.fixture(scope="module")
def nabla(tmp_path_factory):
    from tests.tinymodels import make_tiny_model

    return make_tiny_model("kandinsky5-nabla", tmp_path_factory.mktemp("kandinsky5") / "nabla", seed=0)


def test_a_nabla_model_runs_with_flex_by_default_and_matches_the_stock_pipeline_on_flex(nabla, monkeypatch):
    """Its sparse attention is a flex BlockMask, which SDPA cannot read (the stock pipeline fails with it on
    SDPA): ``auto`` resolves to flex, recorded, and the frames are the stock pipeline's with diffusers' flex."""
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    # the reference flex on both sides (tests/conftest.py); diffusers' set_attention_backend also sets its
    # process-wide active back-end: put it back afterwards
    monkeypatch.setattr(_AttentionBackendRegistry, "_active_backend", _AttentionBackendRegistry._active_backend)
    frames, result = run(nabla, num_frames=5, num_inference_steps=2)
    assert result.record["attention"] == "flex" and not result.record.get("warnings")
    assert frames.shape == (5, 256, 256, 3) and frames.std() > 1
    with pytest.raises(AttributeError):  # what SDPA does with the sparse mask (why auto is flex here)
        stock(nabla, result)
    theirs = stock(nabla, result, prepare=lambda pipe: pipe.transformer.set_attention_backend("flex"))
    assert_close_to_stock(frames, theirs)


@pytest.mark.parametrize("kernel", ["sdpa", "sdpa-math"])
def test_a_nabla_model_refuses_other_kernels(nabla, kernel):
    with pytest.raises(InvalidRequest, match=r"sparse \(NABLA\) attention, which only the flex kernel takes; "
                                             r"nearest valid: flex") as info:
        run(nabla, attention=kernel, num_frames=5)
    assert info.value.field == "attention"


def test_a_nabla_model_whose_config_is_first_read_at_load_still_runs_with_flex(nabla, monkeypatch):
    """A hub id downloaded by this run: resolving saw no config, so the run itself puts flex on its view of the
    transformer and says so; the frames are those of the run that resolved to flex."""
    import dataclasses

    from t2v.families import get_family
    family = type(get_family("kandinsky5"))
    rules = family.rules
    monkeypatch.setattr(family, "rules", lambda self, path: dataclasses.replace(rules(self, path), kernel=None))
    frames, result = run(nabla, num_frames=5, num_inference_steps=2)
    assert result.record["attention"] == "auto"
    assert any("ran with flex" in w for w in result.record["warnings"])
    monkeypatch.setattr(family, "rules", rules)
    resolved, _ = run(nabla, num_frames=5, num_inference_steps=2)
    assert np.array_equal(frames, resolved)
