"""CogVideoX 1.0 / 1.5 on tiny random-weight models in the hub layout: the stock diffusers pipelines' frames for the
same seed (both CogVideoX schedulers), bitwise resume (DPM's previous prediction kept in the checkpoint), cancel
without decoding, request rules, LoRA, the planner and a job through the service.

Adds more than a minute: every mode is compared frame for frame with the stock pipeline, and resumed bitwise, on the
tiny model."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pytest
from PIL import Image

from t2v.sampling.base import CheckpointSpec
from t2v.sampling.vae import to_uint8
from t2v.errors import Cancelled, InvalidRequest
from t2v.requests import GenerationRequest
from t2v.families import family_of_folder
from tests.families.checks import (
    assert_two_stacked_loras_match_stock, random_lora,
    PROMPT, assert_periodic_checkpoints_resume_bitwise, assert_resume_after_cancel_is_bitwise, assert_scale_0_is_the_base,
    cancel_after, denoise_steps, run, time_on_gpu)
from tests.fixtures import count_real_calls

KINDS = ("cogvideox", "cogvideox-i2v", "cogvideox15", "cogvideox15-i2v")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from tests.tinymodels import make_tiny_model

    root = tmp_path_factory.mktemp("cogvideox-models")
    return {kind: make_tiny_model(kind, root / kind, seed=0) for kind in KINDS}


def image_for(kind, first_frame):
    return first_frame if kind.endswith("i2v") else None


def stock(model, result, image=None, prepare=None):
    """The stock diffusers pipeline's frames (uint8) for the request ``result`` ran."""
    import torch
    from diffusers import CogVideoXDDIMScheduler, CogVideoXDPMScheduler, CogVideoXImageToVideoPipeline, CogVideoXPipeline

    r = result.request
    pipe = (CogVideoXImageToVideoPipeline if image is not None else CogVideoXPipeline).from_pretrained(model)
    if r.scheduler != "model":
        cls = CogVideoXDPMScheduler if r.scheduler == "dpm++" else CogVideoXDDIMScheduler
        pipe.scheduler = cls.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    if prepare is not None:  # e.g. stacked adapters
        prepare(pipe)
    extra = {"image": Image.open(image).convert("RGB")} if image is not None else {}
    out = pipe(prompt=r.prompt, negative_prompt=r.negative_prompt, height=r.height, width=r.width, num_frames=r.num_frames,
               num_inference_steps=r.num_inference_steps, guidance_scale=r.guidance_scale,
               use_dynamic_cfg=bool(r.extras.get("use_dynamic_cfg")),
               generator=torch.Generator("cpu").manual_seed(r.seed), output_type="np", **extra)
    return to_uint8(out.frames[0])


CASES = [("cogvideox", "model", 9), ("cogvideox", "dpm++", 9), ("cogvideox-i2v", "model", 9),
         ("cogvideox15", "dpm++", 9), ("cogvideox15", "model", 17), ("cogvideox15-i2v", "ddim", 9)]


@pytest.mark.parametrize(("kind", "scheduler", "frames"), CASES, ids=[f"{k}-{s}-{f}" for k, s, f in CASES])
def test_frames_match_the_stock_pipeline(models, first_frame, kind, scheduler, frames):
    image = image_for(kind, first_frame)
    previews = []
    ours, result = run(models[kind], image, scheduler=scheduler, num_frames=frames,
                       on_preview=lambda step, img: previews.append(img))
    r = result.request
    assert ours.shape == (frames, r.height, r.width, 3) and ours.dtype == np.uint8
    assert ours.std() > 1  # not a blank clip
    assert np.abs(ours.astype(int) - stock(models[kind], result, image).astype(int)).max() <= 2
    assert len(previews) == r.num_inference_steps
    assert all(p.shape == (r.height, r.width, 3) and p.dtype == np.uint8 for p in previews)
    if image is not None:
        assert result.record["image_sha256"]


def test_dynamic_cfg_matches_the_stock_pipeline_and_is_refused_elsewhere(models, tiny_model):
    ours, result = run(models["cogvideox"], scheduler="dpm++", num_frames=9, extras={"use_dynamic_cfg": True})
    plain, _ = run(models["cogvideox"], scheduler="dpm++", num_frames=9)
    assert result.record["extras"] == {"use_dynamic_cfg": True} and not np.array_equal(ours, plain)
    assert np.abs(ours.astype(int) - stock(models["cogvideox"], result).astype(int)).max() <= 2
    with pytest.raises(InvalidRequest, match="extras.use_dynamic_cfg: the modelscope family has no such setting") as e:
        run(tiny_model, extras={"use_dynamic_cfg": True})
    assert e.value.field == "extras.use_dynamic_cfg"


@pytest.mark.parametrize(("kind", "scheduler", "at"), [("cogvideox", "dpm++", 1), ("cogvideox", "dpm++", 3),
                                                        ("cogvideox15-i2v", "dpm++", 2), ("cogvideox-i2v", "model", 2)])
def test_resume_after_cancel_is_bitwise(models, first_frame, tmp_path, kind, scheduler, at):
    """Cancel after ``at`` steps (DPM has its previous prediction by then), resume: an uninterrupted run's frames."""
    import torch

    image = image_for(kind, first_frame)
    spec = assert_resume_after_cancel_is_bitwise(run, tmp_path, at, models[kind], image, scheduler=scheduler)
    extra = torch.load(spec.path, weights_only=True)["extra"]  # the state at the cancel (the resume ran on)
    assert ("old_pred_original_sample" in extra) == (scheduler == "dpm++")


def test_dpm_resume_needs_the_previous_prediction(models, tmp_path):
    """Without the loop state kept beside the scheduler's, a DPM resume computes other frames."""
    import torch

    whole, _ = run(models["cogvideox"], scheduler="dpm++")
    spec = cancel_after(run, tmp_path / "ckpt.pt", 2, models["cogvideox"], scheduler="dpm++")
    saved = torch.load(spec.path, weights_only=True)
    torch.save({**saved, "extra": {}}, spec.path)
    resumed, result = run(models["cogvideox"], scheduler="dpm++", checkpoint=spec)
    assert result.record["resumed_from_step"] == 2 and not np.array_equal(resumed, whole)


def test_periodic_checkpoints_resume_bitwise(models, tmp_path):
    assert_periodic_checkpoints_resume_bitwise(run, tmp_path, models["cogvideox15"], scheduler="dpm++")


def test_cancel_never_decodes_and_leaves_nothing(models, tmp_path, monkeypatch):
    from diffusers import AutoencoderKLCogVideoX

    decodes = []
    count_real_calls(monkeypatch, AutoencoderKLCogVideoX, "decode", decodes)
    out, done = tmp_path / "out", []
    for stop_after in (1, 4):  # between steps, and after the last step (before decoding)
        done.clear()
        with pytest.raises(Cancelled):
            run(models["cogvideox15"], formats=("mp4",), output=out / "clip.mp4", should_cancel=lambda: len(done) >= stop_after,
                on_progress=denoise_steps(done))
        assert decodes == [] and not (out.exists() and any(out.rglob("*")))
    spec = CheckpointSpec(tmp_path / "ckpts" / "job.pt")
    done.clear()
    with pytest.raises(Cancelled):
        run(models["cogvideox15"], checkpoint=spec, should_cancel=lambda: len(done) >= 4, on_progress=denoise_steps(done))
    assert decodes == [] and [p.name for p in spec.path.parent.iterdir()] == ["job.pt"]  # no partial files
    resumed, result = run(models["cogvideox15"], checkpoint=spec)  # straight to decoding
    assert result.record["resumed_from_step"] == 4 and len(decodes) == 1
    assert np.array_equal(resumed, run(models["cogvideox15"])[0])


@pytest.mark.parametrize(("kind", "field", "value", "message"), [
    ("cogvideox", "width", 40, "nearest valid: 32"), ("cogvideox", "height", 56, "nearest valid: 64"),
    ("cogvideox", "num_frames", 13, "nearest valid: 9"), ("cogvideox15", "num_frames", 15, "nearest valid: 17"),
    ("cogvideox", "num_frames", 5, "8k+1"), ("cogvideox", "scheduler", "unipc", "model, ddim, dpm++"),
    ("cogvideox15", "width", 80, "rotary position table covers; nearest valid: 64"),
    ("cogvideox-i2v", "width", 48, "learned position embeddings for 64 only; nearest valid: 64"),
])
def test_bad_requests_name_the_field_and_nearest_value(models, first_frame, kind, field, value, message):
    with pytest.raises(InvalidRequest) as e:
        run(models[kind], image_for(kind, first_frame), **{field: value})
    assert e.value.field == field and message in str(e.value)


def test_modes_and_long_prompts(models, first_frame):
    with pytest.raises(InvalidRequest) as e:
        run(models["cogvideox15-i2v"])  # an image-to-video model needs the first frame
    assert e.value.field == "model" and "text-to-video" in str(e.value)
    with pytest.raises(InvalidRequest) as e:
        run(models["cogvideox"], first_frame)
    assert e.value.field == "image"
    base, _ = run(models["cogvideox"])
    assert np.array_equal(run(models["cogvideox"], memory="low")[0], base)  # tiling starts above 240x360
    _, result = run(models["cogvideox"], prompt=PROMPT + ", " + "very " * 40 + "detailed")  # 245 bytes: ByT5 tokens
    assert any("truncated to 226 tokens" in w for w in result.record["warnings"])
    frames, result = run(models["cogvideox-i2v"], first_frame, num_frames=17)  # past the learned positions' 9
    assert frames.shape[0] == 17 and any("learned position embeddings" in w for w in result.record["warnings"])


@pytest.fixture(scope="module")
def lora(models, tmp_path_factory):
    """A random rank-4 LoRA on the tiny 1.5 transformer's attention, in diffusers' CogVideoX LoRA format."""
    import torch
    from diffusers import CogVideoXPipeline, CogVideoXTransformer3DModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    transformer = CogVideoXTransformer3DModel.from_pretrained(models["cogvideox15"], subfolder="transformer")
    torch.manual_seed(0)
    transformer.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"],
                                       init_lora_weights=False))
    out = tmp_path_factory.mktemp("cogvideox-lora")
    CogVideoXPipeline.save_lora_weights(out, transformer_lora_layers=get_peft_model_state_dict(transformer))
    return out


def test_lora_changes_frames_and_scale_0_is_the_base(models, lora):
    model = models["cogvideox15"]
    base, plain = run(model)
    with_lora, result = run(model, lora=str(lora))
    assert not np.array_equal(with_lora, base) and result.record["model_hash"] != plain.record["model_hash"]
    assert np.array_equal(run(model, lora=str(lora / "pytorch_lora_weights.safetensors"))[0], with_lora)
    assert_scale_0_is_the_base(run(model, lora=str(lora), lora_scale=0.0)[0], base, with_lora)
    with pytest.raises(InvalidRequest) as e:
        run(model, lora=str(model / "vae"))
    assert e.value.field == "loras.0.path"


def test_rules_defaults_specs_and_planner_numbers(models):
    from t2v.families import get_family
    from t2v.planner.memory import choose, estimate
    from t2v.models.registry import lookup

    cog = get_family("cogvideox")
    assert (cog.rules(None).size_multiple, cog.rules(None).frame_step, cog.rules(None).text_tokens) == (16, 8, 226)
    assert cog.rules(models["cogvideox-i2v"]).modes == ("i2v",) and cog.rules(models["cogvideox15"]).modes == ("video",)
    assert cog.folder_defaults(models["cogvideox15"]) == {**cog.defaults, "width": 64, "height": 32, "num_frames": 9,
                                                          "fps": 16}
    for kind in KINDS:
        frames, side = cog.reference_shape(models[kind])
        dry = cog.measure(models[kind], frames, side, side, 2, False, 1)
        assert set(dry["acts"]) == {"text", "transformer", "vae"} and all(v > 0 for v in dry["acts"].values())
        assert set(dry["params"]) == {"text_encoder", "transformer", "vae"} and dry["step_flops"] > 0
        assert dry["decode_flops"] > 0 and cog.frames_per_latent(models[kind]) == 4
    request = GenerationRequest(prompt=PROMPT, model=str(models["cogvideox15"]), num_frames=17, width=64, height=32,
                                guidance_scale=6.0)
    small = estimate(models["cogvideox15"], request, family=family_of_folder(models["cogvideox15"]), plan="speed", device="cpu", dtype="fp32")
    longer = estimate(models["cogvideox15"], request.model_copy(update={"num_frames": 33}), family=family_of_folder(models["cogvideox15"]), plan="speed", device="cpu",
                      dtype="fp32")
    assert 0 < small.activation_bytes["transformer"] < longer.activation_bytes["transformer"]
    plan, predictions = choose(models["cogvideox15"], request, family=family_of_folder(models["cogvideox15"]), requested="auto", device="cpu", dtype="fp32")
    assert plan.name == "speed" and predictions[0].fits
    spec = lookup("THUDM/CogVideoX1.5-5B")
    assert spec.id == "zai-org/CogVideoX1.5-5B" and spec.family == "cogvideox" and spec.license == "CogVideoX License"
    assert [spec.defaults[k] for k in ("width", "height", "num_frames", "fps")] == [1360, 768, 81, 16]
    assert lookup("cogvideox-2b").license == "Apache-2.0" and lookup("THUDM/CogVideoX-5b-I2V").tasks == ("i2v",)
    assert lookup("cogvideox-5b").license_notice and not lookup("cogvideox-2b").license_notice


def test_bad_requests_exit_2_on_the_cli_and_are_422_on_the_api(models, tmp_path):
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from t2v.api import create_app
    from t2v.cli import app
    from t2v.settings import Settings

    model = str(models["cogvideox15"])
    for flags, message in ((["--width", "40"], "nearest valid: 32"), (["--frames", "13"], "nearest valid: 9"),
                           (["--width", "80"], "nearest valid: 64"), (["--scheduler", "euler"], "model, ddim, dpm++")):
        r = CliRunner().invoke(app, ["generate", "a cat", "--model", model, *flags, "-o", str(tmp_path / "x.mp4")])
        assert r.exit_code == 2 and message in r.stderr, r.output
    assert not (tmp_path / "x.mp4").exists()
    with TestClient(create_app(Settings(home=tmp_path / "home", default_model=model), start_workers=False)) as c:
        for body, field in (({"width": 40}, "width"), ({"num_frames": 13}, "num_frames"), ({"height": 48}, "height"),
                            ({"scheduler": "unipc"}, "scheduler")):
            r = c.post("/v1/videos", json={"prompt": "a cat", "model": model, **body})
            assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == field, r.text


def test_an_image_to_video_job_runs_through_the_service(models, first_frame, tmp_path):
    """`t2v serve` with a 1.5 I2V folder: upload the first frame, queue the job; its file decodes to the frames and
    size asked and its record keeps the image's sha256."""
    import av
    from fastapi.testclient import TestClient

    from t2v.api import create_app
    from tests.api.conftest import make_settings, wait_for

    data = first_frame.read_bytes()
    with TestClient(create_app(make_settings(tmp_path / "home", models["cogvideox15-i2v"]))) as client:
        asset = client.post("/v1/assets", files={"file": ("first.png", io.BytesIO(data), "image/png")}).json()
        r = client.post("/v1/videos", json={"prompt": "a red ball", "image": asset["id"], "num_frames": 17, "seed": 7,
                                            "num_inference_steps": 2, "scheduler": "dpm++"})
        assert r.status_code == 202, r.text
        job = wait_for(client, r.json()["id"])
        assert job["status"] == "succeeded", job
        record = client.get(f"/v1/videos/{job['id']}/metadata").json()
        assert record["family"] == "cogvideox" and record["scheduler"] == "dpm++"
        assert record["image_sha256"] == hashlib.sha256(data).hexdigest()
        path = tmp_path / "out.mp4"
        path.write_bytes(client.get(f"/v1/videos/{job['id']}/content").content)
    with av.open(str(path)) as f:
        frames = [fr.to_ndarray(format="rgb24") for fr in f.decode(video=0)]
    assert len(frames) == 17 and frames[0].shape == (32, 64, 3)


def full_size_cogvideox5b(folder, device: str, dtype: str):
    """CogVideoX-5B's transformer and VAE at full size with random weights (configs only on disk), with a one-layer
    T5 of the real width: the denoising and decoding cost of the real model, built in seconds."""
    import torch
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXTransformer3DModel
    from transformers import ByT5Tokenizer, T5Config, T5EncoderModel

    from t2v.models.device import DevicePlan
    from t2v.models.loader import LoadedModel
    from t2v.models.source import ModelSource
    from t2v.models.tiny.cogvideox import scheduler as tiny_scheduler

    plan = DevicePlan(device, dtype)
    tokenizer = ByT5Tokenizer(model_max_length=226)
    with torch.device(device):
        torch.manual_seed(0)
        transformer = CogVideoXTransformer3DModel(num_attention_heads=48, num_layers=42, use_rotary_positional_embeddings=True)
        vae = AutoencoderKLCogVideoX(scaling_factor=1.15258426)
        text = T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=4096, d_kv=64, d_ff=10240, num_heads=64,
                                       num_layers=1, feed_forward_proj="gated-gelu"))
    scheduler: CogVideoXDDIMScheduler = tiny_scheduler()
    for name, module in (("transformer", transformer), ("vae", vae)):
        module.save_config(folder / name)
    text.config.save_pretrained(folder / "text_encoder")
    scheduler.save_config(folder / "scheduler")
    index = {"_class_name": "CogVideoXPipeline", "scheduler": ["diffusers", "CogVideoXDDIMScheduler"],
             "text_encoder": ["transformers", "T5EncoderModel"], "tokenizer": ["transformers", "ByT5Tokenizer"],
             "transformer": ["diffusers", "CogVideoXTransformer3DModel"], "vae": ["diffusers", "AutoencoderKLCogVideoX"]}
    (folder / "model_index.json").write_text(json.dumps(index))
    components = {"tokenizer": tokenizer, "scheduler": scheduler}
    for name, module in (("transformer", transformer), ("vae", vae), ("text_encoder", text)):
        components[name] = module.to(plan.torch_dtype).eval().requires_grad_(False)
    return LoadedModel(source=ModelSource(id="cogvideox-5b-random", path=folder, kind="folder", family="cogvideox"),
                       plan=plan, variant=None, components=components, scheduler_config=dict(scheduler.config),
                       content_hash="random", load_s=0.0)


@pytest.mark.gpu
@pytest.mark.slow
def test_gpu_full_size_5b_steps(tmp_path, record_property):
    """Full-size CogVideoX-5B (random bf16 weights) at 720x480, 49 frames: three steps and the decode."""
    model = full_size_cogvideox5b(tmp_path, "cuda", "bf16")
    request = GenerationRequest(prompt=PROMPT, negative_prompt="", width=720, height=480, num_frames=49,
                                num_inference_steps=3, guidance_scale=6.0, seed=0, scheduler="dpm++", fps=8)
    out, figures = time_on_gpu("cogvideox", model, request)
    assert out.frames.shape == (49, 480, 720, 3)
    record_property("cogvideox5b", figures)
    print("cogvideox 5B 720x480x49 bf16:", figures)


def test_two_stacked_loras_match_the_stock_pipeline_with_set_adapters(models, lora, tmp_path):
    from diffusers import CogVideoXPipeline, CogVideoXTransformer3DModel

    model, first = models["cogvideox15"], lora / "pytorch_lora_weights.safetensors"
    second = random_lora(CogVideoXTransformer3DModel, model, tmp_path / "second", seed=1, pipeline_cls=CogVideoXPipeline,
                         targets=("to_q", "to_v"))
    assert_two_stacked_loras_match_stock(run, stock, model, first, second)
