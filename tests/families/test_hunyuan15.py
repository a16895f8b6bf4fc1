"""HunyuanVideo 1.5 on a tiny random-weight model in the hub layout: the stock ``HunyuanVideo15Pipeline``'s frames for
the same seed (with and without guidance, with quoted text for the glyph encoder), bitwise resume, the request
rules and a job through the service."""

from __future__ import annotations

import re

import numpy as np
import pytest

from t2v.errors import InvalidRequest
from t2v.sampling.vae import to_uint8
from tests.families.checks import assert_checkpoint_is_the_images, assert_periodic_checkpoints_resume_bitwise, cancel_after, run


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from tests.tinymodels import make_tiny_model

    return make_tiny_model("hunyuan15", tmp_path_factory.mktemp("hunyuan15") / "hunyuan15", seed=0)


def stock(model, result, prepare=None):
    """The stock pipeline's frames (uint8) for the request ``result`` ran; its guider at the request's scale."""
    import torch
    from diffusers import HunyuanVideo15Pipeline

    r = result.request
    pipe = HunyuanVideo15Pipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    if prepare is not None:
        prepare(pipe)
    pipe.guider = pipe.guider.new(guidance_scale=r.guidance_scale)
    out = pipe(prompt=r.prompt, negative_prompt=r.negative_prompt, height=r.height, width=r.width, num_frames=r.num_frames,
               num_inference_steps=r.num_inference_steps, generator=torch.Generator("cpu").manual_seed(r.seed),
               output_type="np")
    return to_uint8(out.frames[0])


@pytest.mark.parametrize("fields", [{}, {"guidance_scale": 1.0}, {"prompt": 'a shop sign that says "OPEN" at night'},
                                    {"negative_prompt": "blurry", "num_inference_steps": 3}],
                         ids=["guidance-6", "no-guidance", "glyph-text", "negative"])
def test_frames_match_the_stock_pipeline(model, fields):
    previews = []
    frames, result = run(model, on_preview=lambda step, img: previews.append(img), **fields)
    r = result.request
    assert frames.shape == (r.num_frames, r.height, r.width, 3) and frames.dtype == np.uint8
    assert frames.std() > 1
    assert np.abs(frames.astype(int) - stock(model, result).astype(int)).max() <= 1
    assert len(previews) == r.num_inference_steps


def test_guidance_and_the_quoted_text_change_the_frames(model):
    base = run(model)[0]
    assert not np.array_equal(run(model, guidance_scale=1.0)[0], base)
    assert not np.array_equal(run(model, prompt='a panda surfing a big wave at sunset, "SURF"')[0], base)


def test_resume_after_cancel_is_bitwise(model, tmp_path):
    frames = run(model)[0]
    spec = cancel_after(run, tmp_path / "ckpt.pt", 2, model)
    resumed, result = run(model, checkpoint=spec)
    assert result.record["resumed_from_step"] == 2 and np.array_equal(resumed, frames)


@pytest.mark.parametrize(("fields", "message"), [
    ({"width": 72}, "width: 72 is not a multiple of 16, which this model needs; nearest valid: 64"),
    ({"num_frames": 10}, "num_frames: 10 is not 4k+1, which this model needs; nearest valid: 9"),
])
def test_requests_it_cannot_run_are_refused_naming_the_field(model, fields, message):
    with pytest.raises(InvalidRequest, match=re.escape(message)):
        run(model, **fields)


def test_a_job_through_the_service(model, tmp_path):
    """As `t2v serve --model ./hunyuan15` runs it: the record names the family and the file has the frames."""
    import av
    from fastapi.testclient import TestClient

    from t2v.api import create_app
    from tests.api.conftest import make_settings, wait_for

    with TestClient(create_app(make_settings(tmp_path / "home", model))) as client:
        r = client.post("/v1/videos", json={"prompt": "a red fox", "num_frames": 5, "width": 32, "height": 32,
                                            "num_inference_steps": 2, "seed": 7})
        assert r.status_code == 202, r.text
        job = wait_for(client, r.json()["id"])
        assert job["status"] == "succeeded", job
        assert client.get(f"/v1/videos/{job['id']}/metadata").json()["family"] == "hunyuan15"
        path = tmp_path / "out.mp4"
        path.write_bytes(client.get(f"/v1/videos/{job['id']}/content").content)
        with av.open(str(path)) as f:
            assert sum(1 for _ in f.decode(video=0)) == 5
        bad = client.post("/v1/videos", json={"prompt": "x", "num_frames": 6, "width": 32, "height": 32})
        assert bad.status_code == 422 and "nearest valid: 5" in bad.text


def test_periodic_checkpoints_resume_bitwise(model, tmp_path):
    assert_periodic_checkpoints_resume_bitwise(run, tmp_path, model, crash_at=2)


def test_the_planner_estimates_the_default_size(model):
    from t2v.families import get_family

    m = get_family("hunyuan15").measure(model, 9, 48, 64, 1, False, 9)
    assert {"transformer", "text_encoder", "text_encoder_2", "vae"} <= set(m["params"])
    assert m["step_flops"] > 0 and m["acts"]["transformer"] > 0 and m["acts"]["text"] > 0


def test_the_dry_run_makes_the_vaes_causal_mask_as_diffusers_does_and_counts_the_same():
    """The dry run's VAE masks are made a frame at a time: the same tensor as diffusers' row-at-a-time loop, and
    the same peak, FLOPs and operator results counted of a decode."""
    import torch
    from diffusers.models.autoencoders.autoencoder_kl_hunyuanvideo15 import HunyuanVideo15AttnBlock

    from t2v.families.hunyuan15 import causal_mask_by_frame, frame_masks
    from t2v.planner.counting import meta_cost

    for args in ((3, 4, torch.float32, "cpu"), (1, 6, torch.bfloat16, "cpu", 2), (5, 1, torch.float16, "cpu", 1)):
        ours, theirs = causal_mask_by_frame(*args), HunyuanVideo15AttnBlock.prepare_causal_attention_mask(*args)
        assert ours.dtype == theirs.dtype and torch.equal(ours, theirs), args
    block = HunyuanVideo15AttnBlock(8).to("meta")
    x = torch.zeros(1, 8, 3, 4, 4, device="meta")
    plain, by_frame = meta_cost(lambda: block(x), "vae"), meta_cost(lambda: frame_masks(lambda: block(x)), "vae")
    assert by_frame.peak == plain.peak and by_frame.flops == plain.flops and by_frame.ops < plain.ops


@pytest.fixture(scope="module")
def i2v_model(tmp_path_factory):
    from tests.tinymodels import make_tiny_model

    return make_tiny_model("hunyuan15-i2v", tmp_path_factory.mktemp("hunyuan15-i2v") / "i2v", seed=0)


@pytest.mark.parametrize("guidance", [6.0, 1.0])
def test_image_to_video_matches_the_stock_pipeline(i2v_model, tmp_path, guidance):
    """An image-to-video folder: the stock pipeline's frames, at the size it picks from the image."""
    import torch
    from diffusers import HunyuanVideo15ImageToVideoPipeline
    from PIL import Image

    yy, xx = np.mgrid[0:60, 0:80]
    path = tmp_path / "first.png"
    Image.fromarray(np.stack([xx * 3, yy * 4, (xx + yy) * 2], -1).astype(np.uint8)).save(path)
    pipe = HunyuanVideo15ImageToVideoPipeline.from_pretrained(i2v_model)
    pipe.set_progress_bar_config(disable=True)
    pipe.guider = pipe.guider.new(guidance_scale=guidance)
    height, width = pipe.video_processor.calculate_default_height_width(height=60, width=80,
                                                                       target_size=pipe.target_size)
    frames, result = run(i2v_model, image=str(path), width=width, height=height, guidance_scale=guidance)
    r = result.request
    out = pipe(image=Image.open(path).convert("RGB"), prompt=r.prompt, negative_prompt=r.negative_prompt,
               num_frames=r.num_frames, num_inference_steps=r.num_inference_steps,
               generator=torch.Generator("cpu").manual_seed(r.seed), output_type="np")
    assert frames.shape == (r.num_frames, height, width, 3) and result.record["image_sha256"]
    assert np.abs(frames.astype(int) - to_uint8(out.frames[0]).astype(int)).max() <= 1


def test_an_image_to_video_folder_needs_an_image(i2v_model):
    with pytest.raises(InvalidRequest, match="cannot make text-to-video; it supports: i2v"):
        run(i2v_model)


def full_size(folder, device: str, dtype: str):
    """HunyuanVideo 1.5's 8.3B transformer and its VAE at full size with random weights, with one-layer Qwen2.5-VL
    and ByT5 encoders of the real widths: the denoising and decoding cost of the real model, built in seconds."""
    import torch
    from diffusers import AutoencoderKLHunyuanVideo15, FlowMatchEulerDiscreteScheduler, HunyuanVideo15Transformer3DModel
    from diffusers.guiders import ClassifierFreeGuidance
    from transformers import ByT5Tokenizer, Qwen2_5_VLTextConfig, Qwen2_5_VLTextModel, T5Config, T5EncoderModel

    from t2v.models.tiny import hunyuan15 as tiny
    from tests.families.checks import full_size_model

    tokenizer, glyph = tiny.tokenizer(), ByT5Tokenizer()
    with torch.device(device):
        torch.manual_seed(0)
        modules = {
            "transformer": ("diffusers", HunyuanVideo15Transformer3DModel(task_type="t2v")),
            "vae": ("diffusers", AutoencoderKLHunyuanVideo15()),
            "text_encoder": ("transformers", Qwen2_5_VLTextModel(Qwen2_5_VLTextConfig(
                vocab_size=len(tokenizer), hidden_size=3584, intermediate_size=18944, num_hidden_layers=3,
                num_attention_heads=28, num_key_value_heads=4, rope_theta=1000000.0,
                rope_scaling={"mrope_section": [16, 24, 24], "rope_type": "default", "type": "default"}))),
            "text_encoder_2": ("transformers", T5EncoderModel(T5Config(
                vocab_size=len(glyph), d_model=1472, d_kv=64, d_ff=3584, num_layers=1, num_heads=6,
                feed_forward_proj="gated-gelu"))),
        }
    others = {"tokenizer": ("transformers", tokenizer), "tokenizer_2": ("transformers", glyph),
              "guider": ("diffusers", ClassifierFreeGuidance(guidance_scale=6.0))}
    return full_size_model(folder, device, dtype, family="hunyuan15", pipeline="HunyuanVideo15Pipeline",
                           modules=modules, others=others, scheduler=FlowMatchEulerDiscreteScheduler(shift=5.0))


@pytest.mark.gpu
@pytest.mark.slow
def test_gpu_full_size_steps(tmp_path, record_property):
    """Full-size HunyuanVideo 1.5 (random bf16 weights) at 848x480, 121 frames: three guided steps and the decode."""
    from t2v.requests import GenerationRequest
    from tests.families.checks import time_on_gpu

    model = full_size(tmp_path, "cuda", "bf16")
    request = GenerationRequest(prompt="a red fox in snow", negative_prompt="", width=848, height=480, num_frames=121,
                                num_inference_steps=3, guidance_scale=6.0, seed=0, scheduler="model", fps=24)
    out, figures = time_on_gpu("hunyuan15", model, request)
    assert out.frames.shape == (121, 480, 848, 3)
    record_property("hunyuan15", figures)
    print("hunyuan 1.5 480x848x121 bf16:", figures)


def test_a_checkpoint_resumes_only_from_its_own_image(i2v_model, tmp_path):
    assert_checkpoint_is_the_images(run, tmp_path, i2v_model, at=2, width=64, height=48)


def test_two_stacked_loras_match_the_stock_transformer_with_set_adapters(model, tmp_path):
    """Two diffusers-layout LoRA files at 0.9 and 0.5: stock's transformer with ``load_lora_adapter`` and
    ``set_adapters`` (the pipeline has no loader mixin) gives the same frames; a file of another model is refused."""
    import torch
    from diffusers import HunyuanVideo15Transformer3DModel, HunyuanVideoPipeline
    from safetensors.torch import load_file, save_file

    from tests.families.checks import assert_close_to_stock, random_lora

    first, second = (random_lora(HunyuanVideo15Transformer3DModel, model, tmp_path / name, seed=seed,
                                 pipeline_cls=HunyuanVideoPipeline) for name, seed in (("first", 0), ("second", 1)))
    ours, result = run(model, loras=[f"{first}:0.9", f"{second}:0.5"])

    def stack(pipe):
        for name, file in (("a0", first), ("a1", second)):
            pipe.transformer.load_lora_adapter(load_file(str(file)), prefix="transformer", adapter_name=name)
        pipe.transformer.set_adapters(["a0", "a1"], weights=[0.9, 0.5])

    assert_close_to_stock(ours, stock(model, result, prepare=stack))
    assert np.abs(ours.astype(int) - run(model, loras=[f"{first}:0.9"])[0].astype(int)).max() > 2, "both count"
    assert np.abs(ours.astype(int) - run(model)[0].astype(int)).max() > 2
    assert [a["scale"] for a in result.record["adapters"]] == [0.9, 0.5]
    save_file({"transformer.blocks.0.attn.nope.lora_A.weight": torch.zeros(4, 8)}, tmp_path / "other.safetensors")
    with pytest.raises(InvalidRequest, match="loras.0.path: other.safetensors does not fit"):
        run(model, loras=[str(tmp_path / "other.safetensors")])
