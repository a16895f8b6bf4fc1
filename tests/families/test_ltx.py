"""LTX-Video 0.9.x on tiny random-weight models in the hub layout: the stock diffusers pipelines' frames for the
same seed (LTXPipeline, LTXImageToVideoPipeline, LTXConditionPipeline), bitwise resume, cancel without decoding,
request rules, a job through the service, the planner and LoRA."""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
from PIL import Image

from t2v.sampling.base import CheckpointSpec
from t2v.sampling.vae import to_uint8
from t2v.errors import Cancelled, InvalidRequest, ModelUnavailable
from t2v.requests import GenerationRequest
from t2v.families import family_of_folder
from tests.families.checks import (
    assert_two_stacked_loras_match_stock, random_lora,
    PROMPT, assert_periodic_checkpoints_resume_bitwise, assert_resume_after_cancel_is_bitwise, assert_scale_0_is_the_base, run,
    time_on_gpu)
from tests.fixtures import count_real_calls

KINDS = ("ltx", "ltx-097")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from tests.tinymodels import make_tiny_model

    root = tmp_path_factory.mktemp("ltx-models")
    return {kind: make_tiny_model(kind, root / kind, seed=0) for kind in KINDS}


def stock(model, result, image=None, prepare=None):
    """The stock pipeline's frames (uint8) for the request ``result`` ran, with the folder's extra defaults
    (decode timestep and noise, custom timesteps) and torch's global RNG seeded as t2v seeds it for decoding."""
    import torch
    from diffusers import LTXConditionPipeline, LTXImageToVideoPipeline, LTXPipeline

    r = result.request
    defaults = json.loads((model / "t2v.json").read_text())["defaults"]
    index = json.loads((model / "model_index.json").read_text())
    extra = {"image": Image.open(image).convert("RGB")} if image is not None else {}
    if index["_class_name"] == "LTXConditionPipeline":
        cls = LTXConditionPipeline
        if len(defaults.get("timesteps") or ()) == r.num_inference_steps:
            extra["timesteps"] = defaults["timesteps"]
    else:
        cls = LTXImageToVideoPipeline if image is not None else LTXPipeline
    pipe = cls.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    if prepare is not None:  # e.g. stacked adapters
        prepare(pipe)
    torch.manual_seed(r.seed)  # the 0.9.1 decoder injects noise from the global RNG
    out = pipe(prompt=r.prompt, negative_prompt=r.negative_prompt, height=r.height, width=r.width, num_frames=r.num_frames,
               frame_rate=r.fps, num_inference_steps=r.num_inference_steps, guidance_scale=r.guidance_scale,
               decode_timestep=defaults["decode_timestep"], decode_noise_scale=defaults["decode_noise_scale"],
               guidance_rescale=defaults.get("guidance_rescale", 0.0), generator=torch.Generator("cpu").manual_seed(r.seed), output_type="np", **extra)
    return to_uint8(out.frames[0])


CASES = [("ltx", False, {}), ("ltx", True, {}), ("ltx-097", False, {}), ("ltx-097", True, {}),
         ("ltx-097", True, {"num_inference_steps": 3, "guidance_scale": 1.0}), ("ltx", False, {"fps": 8.0})]


@pytest.mark.parametrize(("kind", "i2v", "fields"), CASES,
                         ids=["ltx", "ltx-i2v", "ltx097", "ltx097-i2v", "ltx097-i2v-default-schedule", "ltx-8fps"])
def test_frames_match_the_stock_pipeline(models, first_frame, kind, i2v, fields):
    image = first_frame if i2v else None
    previews = []
    frames, result = run(models[kind], image, on_preview=lambda step, img: previews.append(img), **fields)
    r = result.request
    assert frames.shape == (r.num_frames, r.height, r.width, 3) and frames.dtype == np.uint8
    assert frames.std() > 1  # not a blank clip
    assert np.abs(frames.astype(int) - stock(models[kind], result, image).astype(int)).max() <= 2
    assert len(previews) == r.num_inference_steps
    assert all(p.shape == (r.height, r.width, 3) and p.dtype == np.uint8 for p in previews)
    if i2v:
        assert result.record["image_sha256"]
    if kind == "ltx-097" and r.num_inference_steps == 3:  # the folder's custom timesteps are for 4
        assert any("custom timesteps are for 4 steps" in w for w in result.record["warnings"])


@pytest.mark.parametrize("strength", [0.5, 1.0])
def test_video_to_video_on_0_9_7_matches_stock_denoise_strength(models, tmp_path, strength):
    """LTXConditionPipeline video-to-video: t2v's frames are stock's with the clip's normalised latents as
    ``latents`` and the strength as ``denoise_strength`` (the noise, the sigma it is mixed at and the steps kept)."""
    import torch
    from diffusers import AutoencoderKLLTXVideo, LTXConditionPipeline

    from t2v.export import decode_video, write_video
    from t2v.inputs import fit_frames

    yy, xx = np.mgrid[0:64, 0:96]
    clip = np.stack([np.stack([(xx * 3 + i * 12) % 256, (yy * 4) % 256, (xx + yy + i * 5) % 256], -1)
                     for i in range(9)]).astype(np.uint8)
    path = tmp_path / "in.mp4"
    write_video(clip, path, "mp4", 8, crf=4)
    frames, result = run(models["ltx-097"], video=str(path), strength=strength)
    r = result.request
    assert frames.shape == (r.num_frames, r.height, r.width, 3) and result.record["strength"] == strength

    vae = AutoencoderKLLTXVideo.from_pretrained(models["ltx-097"], subfolder="vae")
    pixels = fit_frames(decode_video(path)[0], width=r.width, height=r.height, num_frames=r.num_frames)
    x = torch.from_numpy(pixels).float().div(127.5).sub(1).permute(3, 0, 1, 2)[None]
    with torch.inference_mode():
        z = vae.encode(x).latent_dist.mode()
    latents = LTXConditionPipeline._normalize_latents(z, vae.latents_mean, vae.latents_std, vae.config.scaling_factor)
    defaults = json.loads((models["ltx-097"] / "t2v.json").read_text())["defaults"]
    pipe = LTXConditionPipeline.from_pretrained(models["ltx-097"])
    pipe.set_progress_bar_config(disable=True)
    torch.manual_seed(r.seed)
    extra = {"timesteps": defaults["timesteps"]} if len(defaults.get("timesteps") or ()) == r.num_inference_steps else {}
    out = pipe(prompt=r.prompt, negative_prompt=r.negative_prompt, height=r.height, width=r.width,
               num_frames=r.num_frames, frame_rate=r.fps, num_inference_steps=r.num_inference_steps,
               guidance_scale=r.guidance_scale, decode_timestep=defaults["decode_timestep"],
               decode_noise_scale=defaults["decode_noise_scale"], guidance_rescale=defaults.get("guidance_rescale", 0.0),
               latents=latents, denoise_strength=strength, generator=torch.Generator("cpu").manual_seed(r.seed),
               output_type="np", **extra)
    assert np.abs(frames.astype(int) - to_uint8(out.frames[0]).astype(int)).max() <= 2


def test_seed_decides_the_decoder_noise_and_the_global_rng_is_left_alone(models):
    import torch

    state = torch.get_rng_state()
    a, _ = run(models["ltx"])
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(1234)  # whatever the global RNG holds, the same seed gives the same frames
    assert np.array_equal(run(models["ltx"])[0], a)
    assert not np.array_equal(run(models["ltx"], seed=4)[0], a)


def test_low_memory_plan(models):
    base, _ = run(models["ltx"])
    assert np.array_equal(run(models["ltx"], memory="low")[0], base)  # 2 latent frames, 96 px: nothing tiled
    frames, result = run(models["ltx"], memory="low", num_frames=17)  # 3 latent frames: decoded frame-wise
    assert frames.shape == (17, 64, 96, 3) and result.record["memory_plan"]["plan"] == "low"


@pytest.mark.parametrize(("kind", "i2v", "at"), [("ltx", False, 1), ("ltx", True, 2), ("ltx-097", False, 3),
                                                  ("ltx-097", True, 2)])
def test_resume_after_cancel_is_bitwise(models, first_frame, tmp_path, kind, i2v, at):
    """Cancel after ``at`` steps, resume from the checkpoint: the same frames as an uninterrupted run (with an
    image on 0.9.7, each step draws conditioning noise from the generator the checkpoint keeps)."""
    image = first_frame if i2v else None
    assert_resume_after_cancel_is_bitwise(run, tmp_path, at, models[kind], image)


def test_periodic_checkpoints_resume_bitwise(models, tmp_path):
    assert_periodic_checkpoints_resume_bitwise(run, tmp_path, models["ltx-097"])


def test_cancel_never_decodes_and_leaves_nothing(models, tmp_path, monkeypatch):
    from diffusers import AutoencoderKLLTXVideo

    decodes = []
    count_real_calls(monkeypatch, AutoencoderKLLTXVideo, "decode", decodes)
    out = tmp_path / "out"
    steps = []
    for stop_after in (1, 4):  # between steps, and after the last step (before decoding)
        steps.clear()
        with pytest.raises(Cancelled):
            run(models["ltx"], formats=("mp4",), output=out / "clip.mp4", should_cancel=lambda: len(steps) >= stop_after,
                on_progress=lambda e: steps.append(e.step) if e.stage == "denoise" and e.step else None)
        assert decodes == [] and not (out.exists() and any(out.rglob("*")))
    spec = CheckpointSpec(tmp_path / "ckpts" / "job.pt")
    steps.clear()
    with pytest.raises(Cancelled):
        run(models["ltx"], checkpoint=spec, should_cancel=lambda: len(steps) >= 4,
            on_progress=lambda e: steps.append(e.step) if e.stage == "denoise" and e.step else None)
    assert decodes == [] and [p.name for p in spec.path.parent.iterdir()] == ["job.pt"]
    resumed, result = run(models["ltx"], checkpoint=spec)  # straight to decoding
    assert result.record["resumed_from_step"] == 4 and len(decodes) == 1
    assert np.array_equal(resumed, run(models["ltx"])[0])


@pytest.mark.parametrize(("field", "value", "nearest"), [
    ("width", 104, "nearest valid: 96"), ("height", 72, "nearest valid: 64"), ("num_frames", 10, "nearest valid: 9"),
    ("num_frames", 14, "nearest valid: 17"), ("scheduler", "unipc", "choose one of: model"),
    ("num_inference_steps", 1, "needs at least 2 steps"),  # one sigma stretched to shift_terminal: 0/0 in stock too
])
def test_bad_requests_name_the_field_and_nearest_value(models, field, value, nearest):
    with pytest.raises(InvalidRequest) as e:
        run(models["ltx"], **{field: value})
    assert e.value.field == field and nearest in str(e.value)


def test_rules_long_prompts_and_the_upscaler(models, tmp_path):
    import shutil

    from t2v.families import get_family

    ltx = get_family("ltx")
    assert (ltx.rules(None).size_multiple, ltx.rules(None).frame_step, ltx.rules(None).text_tokens) == (32, 8, 128)
    assert ltx.rules(models["ltx"]).text_tokens == 128 and ltx.rules(models["ltx-097"]).text_tokens == 256
    assert all(ltx.rules(m).modes == ("video", "i2v") and ltx.frames_per_latent(m) == 8 for m in models.values())
    _, result = run(models["ltx"], prompt=PROMPT + ", " + "very " * 30 + "detailed")  # > 128 ByT5 tokens
    assert any("truncated to 128 tokens" in w for w in result.record["warnings"])
    upscaler = tmp_path / "upscaler"
    shutil.copytree(models["ltx"] / "vae", upscaler / "vae")
    (upscaler / "model_index.json").write_text(json.dumps({"_class_name": "LTXLatentUpsamplePipeline",
                                                           "vae": ["diffusers", "AutoencoderKLLTXVideo"]}))
    with pytest.raises(ModelUnavailable, match="latent upscaler"):
        run(upscaler)


def test_hub_models_carry_their_licence_and_distilled_settings():
    from t2v.models.registry import lookup

    for model_id, licence in (("Lightricks/LTX-Video", "OpenRAIL-M"), ("Lightricks/LTX-Video-0.9.5", "OpenRAIL-M"),
                              ("Lightricks/LTX-Video-0.9.7-dev", "Open Weights"),
                              ("Lightricks/LTX-Video-0.9.8-13B-distilled", "Open Weights")):
        spec = lookup(model_id)
        assert spec.family == "ltx" and licence in spec.license and spec.license_url.startswith("https://")
        assert spec.tasks == ("t2v", "i2v")
    main = lookup("ltx").defaults
    assert (main["width"], main["height"], main["num_frames"], main["fps"]) == (704, 512, 161, 25)
    assert (main["num_inference_steps"], main["guidance_scale"]) == (50, 3.0) and "decode_timestep" not in main
    distilled = lookup("Lightricks/LTX-Video-0.9.7-distilled").defaults
    assert distilled["guidance_scale"] == 1.0 and len(distilled["timesteps"]) == distilled["num_inference_steps"] == 8
    assert (lookup("ltx-0.9.1").defaults["decode_timestep"], lookup("ltx-0.9.1").defaults["decode_noise_scale"]) == (0.05, 0.025)


def test_planner_numbers(models):
    from t2v.families import get_family
    from t2v.planner.memory import choose, estimate

    ltx = get_family("ltx")
    for kind, model in models.items():
        frames, side = ltx.reference_shape(model)
        assert (frames, side) == (17, 64)
        dry = ltx.measure(model, frames, side, side, 2, False, 1)
        assert set(dry["acts"]) == {"text", "transformer", "vae"} and all(v > 0 for v in dry["acts"].values())
        assert set(dry["params"]) == {"text_encoder", "transformer", "vae"} and all(dry["params"].values())
        assert dry["step_flops"] > 0 and dry["decode_flops"] > 0 and dry["roles"]["denoise"] == ["transformer"]
    request = GenerationRequest(prompt=PROMPT, model=str(models["ltx"]), width=96, height=64, num_frames=9,
                                num_inference_steps=4, guidance_scale=3.0, seed=0)
    prediction = estimate(models["ltx"], request, family=family_of_folder(models["ltx"]), plan="speed", device="cpu", dtype="fp32")
    assert prediction.peak_bytes > 0 and prediction.flops_per_step > 0
    plan, predictions = choose(models["ltx"], request, family=family_of_folder(models["ltx"]), requested="auto", device="cpu", dtype="fp32", budget=None)
    assert plan.name in {p.plan for p in predictions}


@pytest.fixture(scope="module")
def lora(models, tmp_path_factory):
    """A random rank-4 LoRA on the tiny transformer's attention, in diffusers' LTX LoRA format."""
    import torch
    from diffusers import LTXPipeline, LTXVideoTransformer3DModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    transformer = LTXVideoTransformer3DModel.from_pretrained(models["ltx"], subfolder="transformer")
    torch.manual_seed(0)
    transformer.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"],
                                       init_lora_weights=False))
    out = tmp_path_factory.mktemp("ltx-lora")
    LTXPipeline.save_lora_weights(out, transformer_lora_layers=get_peft_model_state_dict(transformer))
    return out


def test_lora_changes_frames_and_scale_0_is_the_base(models, lora):
    base, plain = run(models["ltx"])
    with_lora, result = run(models["ltx"], lora=str(lora))
    assert not np.array_equal(with_lora, base) and result.record["model_hash"] != plain.record["model_hash"]
    assert np.array_equal(run(models["ltx"], lora=str(lora / "pytorch_lora_weights.safetensors"))[0], with_lora)
    assert_scale_0_is_the_base(run(models["ltx"], lora=str(lora), lora_scale=0.0)[0], base, with_lora)
    with pytest.raises(InvalidRequest) as e:
        run(models["ltx"], lora=str(models["ltx"] / "vae"))
    assert e.value.field == "loras.0.path"


def test_bad_sizes_exit_2_on_the_cli_and_are_422_on_the_api(models, tmp_path):
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from t2v.api import create_app
    from t2v.cli import app
    from t2v.settings import Settings

    for flags, message in ((["--width", "104"], "nearest valid: 96"), (["--frames", "12"], "nearest valid: 9")):
        r = CliRunner().invoke(app, ["generate", "a cat", "--model", str(models["ltx"]), *flags, "-o", str(tmp_path / "x.mp4")])
        assert r.exit_code == 2 and message in r.stderr, r.output
    assert not (tmp_path / "x.mp4").exists()
    with TestClient(create_app(Settings(home=tmp_path / "home", default_model=str(models["ltx"])), start_workers=False)) as c:
        for body, field in (({"width": 104}, "width"), ({"num_frames": 12}, "num_frames"), ({"height": 48}, "height")):
            r = c.post("/v1/videos", json={"prompt": "a cat", "model": str(models["ltx"]), **body})
            assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == field, r.text


def test_a_job_through_the_service(models, tmp_path):
    import av
    from fastapi.testclient import TestClient

    from t2v.api import create_app
    from t2v.settings import Settings

    settings = Settings(home=tmp_path / "home", default_model=str(models["ltx-097"]), checkpoint_every=1)
    with TestClient(create_app(settings)) as client:
        r = client.post("/v1/videos", json={"prompt": "a cat", "seed": 5, "num_frames": 17, "formats": ["mp4"]})
        assert r.status_code == 202, r.text
        deadline = time.time() + 120
        while (job := client.get(f"/v1/videos/{r.json()['id']}").json())["status"] not in ("succeeded", "failed"):
            assert time.time() < deadline, job
            time.sleep(0.1)
        assert job["status"] == "succeeded", job["error"]
        assert job["progress"]["step"] == 4
        content = client.get(f"/v1/videos/{job['id']}/content?format=mp4")
        with av.open(io.BytesIO(content.content)) as container:
            frames = list(container.decode(video=0))
        assert len(frames) == 17 and (frames[0].width, frames[0].height) == (96, 64)


def full_size_ltx(folder, device: str, dtype: str):
    """LTX-Video 0.9.1's 2B transformer and VAE at full size with random weights (configs only on disk), with a
    one-layer T5 of the real width: the denoising and decoding cost of the real model, loaded in seconds."""
    import torch
    from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXVideoTransformer3DModel
    from transformers import ByT5Tokenizer, T5Config, T5EncoderModel

    from t2v.models.device import DevicePlan
    from t2v.models.loader import LoadedModel
    from t2v.models.source import ModelSource

    plan = DevicePlan(device, dtype)
    tokenizer = ByT5Tokenizer(model_max_length=128)
    with torch.device(device):
        torch.manual_seed(0)
        transformer = LTXVideoTransformer3DModel()  # 0.9.0 / 0.9.1 / 0.9.5: 28 layers, 32 heads x 64
        vae = AutoencoderKLLTXVideo(
            decoder_block_out_channels=(256, 512, 1024), decoder_layers_per_block=(5, 6, 7, 8),
            decoder_spatio_temporal_scaling=(True, True, True), decoder_inject_noise=(True, True, True, False),
            upsample_residual=(True, True, True), upsample_factor=(2, 2, 2), timestep_conditioning=True)
        text = T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=4096, d_kv=64, d_ff=10240, num_heads=64,
                                       num_layers=1, feed_forward_proj="gated-gelu"))
    scheduler = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05,
                                                base_image_seq_len=1024, max_image_seq_len=4096, shift_terminal=0.1)
    components = {"tokenizer": tokenizer, "scheduler": scheduler}
    for name, module in (("transformer", transformer), ("vae", vae), ("text_encoder", text)):
        module.save_config(folder / name) if name != "text_encoder" else module.config.save_pretrained(folder / name)
        components[name] = module.to(plan.torch_dtype).eval().requires_grad_(False)
    scheduler.save_config(folder / "scheduler")
    index = {"_class_name": "LTXPipeline", "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
             "text_encoder": ["transformers", "T5EncoderModel"], "tokenizer": ["transformers", "ByT5Tokenizer"],
             "transformer": ["diffusers", "LTXVideoTransformer3DModel"], "vae": ["diffusers", "AutoencoderKLLTXVideo"]}
    (folder / "model_index.json").write_text(json.dumps(index))
    source = ModelSource(id="ltx-2b-random", path=folder, kind="folder", family="ltx",
                         defaults={"decode_timestep": 0.05, "decode_noise_scale": 0.025})
    return LoadedModel(source=source, plan=plan, variant=None, components=components,
                       scheduler_config=dict(scheduler.config), content_hash="random", load_s=0.0)


@pytest.mark.gpu
@pytest.mark.slow
def test_gpu_full_size_2b_steps(tmp_path, record_property):
    """Full-size LTX-Video 2B (random bf16 weights) at 512x704, 161 frames: three steps and the decode."""
    model = full_size_ltx(tmp_path, "cuda", "bf16")
    request = GenerationRequest(prompt=PROMPT, negative_prompt="", width=704, height=512, num_frames=161,
                                num_inference_steps=3, guidance_scale=3.0, seed=0, scheduler="model", fps=25)
    out, figures = time_on_gpu("ltx", model, request)
    assert out.frames.shape == (161, 512, 704, 3)
    record_property("ltx2b", figures)
    print("ltx 2B 512x704x161 bf16:", figures)


def test_two_stacked_loras_match_the_stock_pipeline_with_set_adapters(models, lora, tmp_path):
    from diffusers import LTXPipeline, LTXVideoTransformer3DModel

    model, first = models["ltx"], lora / "pytorch_lora_weights.safetensors"
    second = random_lora(LTXVideoTransformer3DModel, model, tmp_path / "second", seed=1, pipeline_cls=LTXPipeline,
                         targets=("to_q", "to_v"))
    assert_two_stacked_loras_match_stock(run, stock, model, first, second)
