"""AnimateDiff on tiny random-weight models: a saved AnimateDiffPipeline folder and the tiny SD model composed
with a tiny motion adapter give the stock diffusers pipeline's frames for the same seed; bitwise resume,
cancel without decoding, request rules, compose() itself, SD / motion LoRAs, the service and the planner."""

from __future__ import annotations

import io
import json
import os
import shutil
import threading

import numpy as np
import pytest

from t2v.sampling.base import CheckpointSpec
from t2v.sampling.vae import to_uint8
from t2v.errors import Cancelled, InvalidRequest, ModelUnavailable
from t2v import generate
from t2v.requests import GenerationRequest
from t2v.families import family_of_folder
from tests.families.checks import (
    assert_periodic_checkpoints_resume_bitwise, assert_resume_after_cancel_is_bitwise, assert_scale_0_is_the_base, time_on_gpu)
from tests.fixtures import count_real_calls

PROMPT = "a panda surfing a big wave at sunset"
# diffusers' AnimateDiff examples: DDIMScheduler.from_pretrained(sd_model, subfolder="scheduler", **DOCS_DDIM)
DOCS_DDIM = dict(clip_sample=False, timestep_spacing="linspace", beta_schedule="linear", steps_offset=1)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """"saved": a saved AnimateDiffPipeline; "sd" + "adapter": the tiny SD model and a motion adapter alone;
    "composed": compose() of those two."""
    from tests.tinymodels import make_tiny_model
    from t2v.models.compose import compose

    root = tmp_path_factory.mktemp("animatediff-models")
    out = {kind: make_tiny_model(name, root / kind, seed=0) for kind, name in
           (("saved", "animatediff"), ("sd", "sd"), ("adapter", "animatediff-adapter"))}
    out["composed"] = compose(out["sd"], out["adapter"], root / "composed")
    return out


def run(model, **fields):
    """t2v's frames (uint8) and result for ``model`` with its tiny defaults (t2v.json)."""
    fields = {"prompt": PROMPT, "seed": 3, "formats": (), **fields}
    kw = {k: fields.pop(k) for k in ("should_cancel", "checkpoint", "on_preview", "on_progress", "output") if k in fields}
    result = generate(GenerationRequest.create(model=str(model), **fields), **kw)
    return result.frames, result


BASELINES: dict[tuple, np.ndarray] = {}


def baseline(model, **fields) -> np.ndarray:
    """:func:`run`'s frames for a plain run, computed once per model and fields."""
    key = (str(model), tuple(sorted(fields.items())))
    if key not in BASELINES:
        BASELINES[key] = run(model, **fields)[0]
    return BASELINES[key]


def stock_pipeline(models, kind: str, scheduler: str):
    """The stock AnimateDiffPipeline: loaded from the saved folder, or built from the SD model's parts and the
    adapter (``unet`` a UNet2DConditionModel: the pipeline makes the motion UNet) with the examples' DDIM."""
    from diffusers import (AnimateDiffPipeline, AutoencoderKL, DDIMScheduler, DPMSolverMultistepScheduler, MotionAdapter,
                           UNet2DConditionModel)
    from transformers import CLIPTextModel, CLIPTokenizer

    if kind == "saved":
        pipe = AnimateDiffPipeline.from_pretrained(models["saved"])
    else:
        sd = models["sd"]
        pipe = AnimateDiffPipeline(
            vae=AutoencoderKL.from_pretrained(sd, subfolder="vae"),
            text_encoder=CLIPTextModel.from_pretrained(sd, subfolder="text_encoder"),
            tokenizer=CLIPTokenizer.from_pretrained(sd, subfolder="tokenizer"),
            unet=UNet2DConditionModel.from_pretrained(sd, subfolder="unet"),
            motion_adapter=MotionAdapter.from_pretrained(models["adapter"]),
            scheduler=DDIMScheduler.from_pretrained(sd, subfolder="scheduler", **DOCS_DDIM))
    if scheduler == "dpm++":
        pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config, algorithm_type="dpmsolver++",
                                                                 solver_order=2)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def stock(pipe, r):
    import torch

    out = pipe(prompt=r.prompt, negative_prompt=r.negative_prompt, height=r.height, width=r.width, num_frames=r.num_frames,
               num_inference_steps=r.num_inference_steps, guidance_scale=r.guidance_scale,
               generator=torch.Generator("cpu").manual_seed(r.seed), output_type="np")
    return to_uint8(out.frames[0])


CASES = [("saved", "model"), ("composed", "model"), ("composed", "dpm++")]


@pytest.mark.parametrize(("kind", "scheduler"), CASES, ids=[f"{k}-{s}" for k, s in CASES])
def test_frames_match_the_stock_pipeline(models, kind, scheduler):
    previews = []
    frames, result = run(models[kind], scheduler=scheduler, on_preview=lambda step, img: previews.append(img))
    r = result.request
    assert frames.shape == (r.num_frames, r.height, r.width, 3) and frames.dtype == np.uint8
    assert frames.std() > 1 and not np.array_equal(frames[0], frames[-1])
    theirs = stock(stock_pipeline(models, kind, scheduler), r)
    assert np.abs(frames.astype(int) - theirs.astype(int)).max() <= 2
    assert len(previews) == r.num_inference_steps
    assert all(p.shape == (r.height, r.width, 3) and p.dtype == np.uint8 for p in previews)


def test_motion_adapter_request_composes_the_folder(models, tmp_path):
    """``--model SD --motion-adapter ADAPTER``: the runner composes the two (under the cache) and runs them."""
    frames, result = run(models["sd"], motion_adapter=str(models["adapter"]), scheduler="model")
    assert np.array_equal(frames, baseline(models["composed"], scheduler="model")) and result.request.motion_adapter


@pytest.mark.parametrize(("kind", "scheduler", "at"), [("saved", "model", 1), ("composed", "dpm++", 2)])
def test_resume_after_cancel_is_bitwise(models, tmp_path, kind, scheduler, at):
    """Cancel after ``at`` steps (DPM++ has multistep history by then), resume from the checkpoint: the same
    frames as an uninterrupted run."""
    assert_resume_after_cancel_is_bitwise(run, tmp_path, at, models[kind], scheduler=scheduler,
                                          whole=baseline(models[kind], scheduler=scheduler))


def test_periodic_checkpoints_resume_bitwise(models, tmp_path):
    assert_periodic_checkpoints_resume_bitwise(run, tmp_path, models["composed"], whole=baseline(models["composed"]))


def test_cancel_never_decodes_and_leaves_nothing(models, tmp_path, monkeypatch):
    from diffusers import AutoencoderKL

    decodes = []
    count_real_calls(monkeypatch, AutoencoderKL, "decode", decodes)
    out, spec, steps = tmp_path / "out", CheckpointSpec(tmp_path / "ckpts" / "job.pt"), []
    for stop_after in (1, 4):  # between steps, and after the last step (before decoding)
        steps.clear()
        with pytest.raises(Cancelled):
            run(models["saved"], formats=("mp4",), output=out / "clip.mp4", checkpoint=spec if stop_after == 4 else None,
                should_cancel=lambda: len(steps) >= stop_after,
                on_progress=lambda e: steps.append(e.step) if e.stage == "denoise" and e.step else None)
        assert decodes == [] and not (out.exists() and any(out.rglob("*")))
    assert [p.name for p in spec.path.parent.iterdir()] == ["job.pt"]  # no partial files
    resumed, result = run(models["saved"], checkpoint=spec)  # straight to decoding
    assert result.record["resumed_from_step"] == 4 and len(decodes) > 0
    assert np.array_equal(resumed, baseline(models["saved"]))


@pytest.mark.parametrize(("field", "value", "message"), [
    ("num_frames", 33, "nearest valid: 32"), ("num_frames", 100, "nearest valid: 32"),  # the motion modules' positions
    ("width", 62, "multiple of 8"), ("height", 50, "multiple of 8"),
])
def test_bad_requests_name_the_field_and_nearest_value(models, field, value, message):
    for kind in ("saved", "composed"):
        with pytest.raises(InvalidRequest) as e:
            run(models[kind], **{field: value})
        assert e.value.field == field and message in str(e.value)


def test_bad_requests_exit_2_on_the_cli_and_are_422_on_the_api(models, tmp_path):
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from t2v.api import create_app
    from t2v.cli import app
    from t2v.settings import Settings

    model = str(models["composed"])
    for flags, message in ((["--width", "62"], "multiple of 8"), (["--frames", "33"], "nearest valid: 32")):
        r = CliRunner().invoke(app, ["generate", "a cat", "--model", model, *flags, "-o", str(tmp_path / "x.mp4")])
        assert r.exit_code == 2 and message in r.stderr, r.output
    assert not (tmp_path / "x.mp4").exists()
    with TestClient(create_app(Settings(home=tmp_path / "home", default_model=model), start_workers=False)) as c:
        for body, field in (({"width": 62}, "width"), ({"num_frames": 33}, "num_frames"), ({"height": 50}, "height")):
            r = c.post("/v1/videos", json={"prompt": "a cat", "model": model, **body})
            assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == field, r.text


def test_a_job_through_the_service(models, tmp_path):
    import av
    from fastapi.testclient import TestClient

    from t2v.api import create_app
    from tests.api.conftest import make_settings, wait_for

    with TestClient(create_app(make_settings(tmp_path / "home", models["composed"]))) as client:
        r = client.post("/v1/videos", json={"prompt": PROMPT, "num_frames": 6, "width": 48, "height": 40,
                                            "num_inference_steps": 2})
        assert r.status_code == 202, r.text
        done = wait_for(client, r.json()["id"])
        assert done["status"] == "succeeded", done["error"]
        content = client.get(f"/v1/videos/{done['id']}/content?format=mp4")
    with av.open(io.BytesIO(content.content)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 6 and frames[0].shape == (40, 48, 3)


def test_compose_reuses_its_folder_and_refuses_what_it_cannot_animate(models, tmp_path):
    from tests.tinymodels import make_tiny_model
    from t2v.models.compose import compose

    composed = models["composed"]
    assert compose(models["sd"], models["adapter"], composed.parent) == composed  # reused
    assert [p.name for p in composed.parent.iterdir()] == [composed.name]  # no second folder, no leftovers
    assert json.loads((composed / "model_index.json").read_text())["unet"] == ["diffusers", "UNet2DConditionModel"]
    meta = json.loads((composed / "t2v.json").read_text())
    assert meta["family"] == "animatediff" and meta["motion_adapter"] == str(models["adapter"].resolve())
    assert meta["defaults"]["num_frames"] == 8 and meta["defaults"]["fps"] == 8  # the tiny SD model's own
    linked = composed / "unet" / "diffusion_pytorch_model.safetensors"
    assert linked.is_symlink() and not (composed / "unet").is_symlink()  # per-file links in real folders
    assert linked.resolve() == (models["sd"] / "unet" / "diffusion_pytorch_model.safetensors").resolve()
    assert composed / "motion_adapter" / "config.json" in set(composed.rglob("*"))

    adapter, root = shutil.copytree(models["adapter"], tmp_path / "adapter"), tmp_path / "root"
    (adapter / "diffusion_pytorch_model.fp16.safetensors").unlink()  # a download of the full-precision file only
    found = []  # racing for one new folder (threads here, processes alike): all get it, nothing else is left
    threads = [threading.Thread(target=lambda: found.append(compose(models["sd"], adapter, root))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(found) == 4 and len(set(found)) == 1 and [p.name for p in root.iterdir()] == [found[0].name]
    weights = adapter / "diffusion_pytorch_model.safetensors"  # linked under the fp16 name too: one variant for all
    assert (found[0] / "motion_adapter" / "diffusion_pytorch_model.fp16.safetensors").resolve() == weights.resolve()
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert compose(models["sd"], adapter, root) != found[0]  # a changed file: a new folder

    sdxl = make_tiny_model("sdxl", tmp_path / "sdxl", seed=0, fp16_variant=False)
    for base, motion, message in ((sdxl, models["adapter"], "AnimateDiff SDXL is not supported"),
                                  (models["saved"], models["adapter"], "not a Stable Diffusion 1.x"),
                                  (models["sd"], models["sd"] / "vae", "not a motion adapter"),
                                  (models["sd"], tmp_path, "not a motion adapter")):
        with pytest.raises(ModelUnavailable, match=message):
            compose(base, motion, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()


def test_rules_and_planner_numbers(models):
    from t2v.families import get_family
    from t2v.runner.resolve import resolve
    from t2v.planner.memory import choose, estimate
    from t2v.settings import get_settings

    fam = get_family("animatediff")
    assert fam.rules(None).max_frames == 32 and fam.rules(models["saved"]).max_frames == 32
    assert fam.rules(models["composed"]).size_multiple == 8 and fam.rules(models["composed"]).text_tokens == 77
    for kind in ("saved", "composed"):
        frames, side = fam.reference_shape(models[kind])
        dry = fam.measure(models[kind], frames, side, side, 2, False, 1)
        assert set(dry["acts"]) == {"text", "unet", "vae"} and all(v > 0 for v in dry["acts"].values())
        assert set(dry["params"]) == {"text_encoder", "unet", "vae"} and dry["step_flops"] > 0
        assert dry["params"]["unet"] > 1_000_000  # the SD UNet's and the motion modules' parameters
        request = resolve(GenerationRequest(prompt=PROMPT, model=str(models[kind])), get_settings())
        assert estimate(models[kind], request, family=family_of_folder(models[kind]), plan="speed", device="cpu", dtype="fp32").peak_bytes > 0
        plan, predictions = choose(models[kind], request, family=family_of_folder(models[kind]), requested="auto", device="cpu", dtype="fp32")
        assert plan.name in ("speed", "balanced", "low") and predictions


@pytest.fixture(scope="module")
def loras(models, tmp_path_factory):
    """Random rank-4 LoRAs in diffusers' format: "sd" on the UNet's attention (its SD layers and motion
    modules) and the CLIP text encoder, "motion" on the motion modules only (like guoyww's motion LoRAs)."""
    import torch
    from diffusers import AnimateDiffPipeline, UNetMotionModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict
    from transformers import CLIPTextModel

    out = {}
    for name, targets in (("sd", ["to_q", "to_k", "to_v", "to_out.0"]),
                          ("motion", r".*motion_modules.*\.(to_q|to_k|to_v|to_out\.0)")):
        torch.manual_seed(len(out))
        unet = UNetMotionModel.from_pretrained(models["saved"], subfolder="unet")
        unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=targets, init_lora_weights=False))
        layers = {"unet_lora_layers": get_peft_model_state_dict(unet)}
        if name == "sd":
            text = CLIPTextModel.from_pretrained(models["saved"], subfolder="text_encoder")
            text.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
            layers["text_encoder_lora_layers"] = get_peft_model_state_dict(text)
        out[name] = tmp_path_factory.mktemp(f"animatediff-lora-{name}")
        AnimateDiffPipeline.save_lora_weights(out[name], **layers)
    return out


def test_loras_match_the_stock_pipeline_and_scale_0_is_the_base(models, loras):
    base = baseline(models["saved"])
    with_sd, result = run(models["saved"], lora=str(loras["sd"]))
    pipe = stock_pipeline(models, "saved", "model")
    pipe.load_lora_weights(str(loras["sd"]), adapter_name="x")
    pipe.fuse_lora(lora_scale=1.0, adapter_names=["x"])
    assert np.abs(with_sd.astype(int) - stock(pipe, result.request).astype(int)).max() <= 2
    assert_scale_0_is_the_base(run(models["saved"], lora=str(loras["sd"]), lora_scale=0.0)[0], base, with_sd)
    motion = run(models["saved"], lora=str(loras["motion"] / "pytorch_lora_weights.safetensors"))[0]
    assert len({a.tobytes() for a in (base, with_sd, motion)}) == 3
    for not_lora in (models["saved"] / "vae", models["saved"] / "vae" / "diffusion_pytorch_model.safetensors"):
        with pytest.raises(InvalidRequest) as e:
            run(models["saved"], lora=str(not_lora))
        assert e.value.field == "loras.0.path"


def test_two_stacked_loras_match_the_stock_pipeline_with_set_adapters(models, loras):
    """An SD LoRA (UNet and text encoder) at 0.7 and a motion LoRA at 1.2, as the pipeline's set_adapters has them."""
    sd, motion = loras["sd"], loras["motion"] / "pytorch_lora_weights.safetensors"
    ours, result = run(models["saved"], loras=[f"{sd}:0.7", f"{motion}:1.2"])
    pipe = stock_pipeline(models, "saved", "model")
    pipe.load_lora_weights(str(sd), adapter_name="sd")
    pipe.load_lora_weights(str(motion), adapter_name="motion")
    pipe.set_adapters(["sd", "motion"], adapter_weights=[0.7, 1.2])
    assert np.abs(ours.astype(int) - stock(pipe, result.request).astype(int)).max() <= 2
    alone = run(models["saved"], loras=[f"{sd}:0.7"])[0]
    assert np.abs(ours.astype(int) - alone.astype(int)).max() > 2, "the motion LoRA counts too"
    assert [a["scale"] for a in result.record["adapters"]] == [0.7, 1.2]


def full_size_sd15_animatediff(folder, device: str, dtype: str):
    """SD 1.5's UNet and VAE with AnimateDiff v3's motion modules at full size with random weights, and a
    one-layer CLIP text encoder of the real width: the denoising and decoding cost of the real model."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, MotionAdapter, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from t2v.families.animatediff import motion_unet
    from t2v.models.hub.animatediff import DDIM
    from t2v.models.device import DevicePlan
    from t2v.models.loader import LoadedModel
    from t2v.models.source import ModelSource
    from t2v.models.tiny import make_tokenizer

    plan = DevicePlan(device, dtype)
    tokenizer = make_tokenizer(folder / "tokenizer")
    with torch.device(device):
        torch.manual_seed(0)
        unet = UNet2DConditionModel(cross_attention_dim=768, sample_size=64)
        adapter = MotionAdapter(use_motion_mid_block=False, motion_max_seq_length=32)  # v1-5-3's layout
        vae = AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                            block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4, sample_size=512)
        text = CLIPTextModel(CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=768, intermediate_size=3072,
                                            num_hidden_layers=1, num_attention_heads=12, max_position_embeddings=77,
                                            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                            pad_token_id=tokenizer.pad_token_id))
    components = {"tokenizer": tokenizer, "unet": motion_unet(unet.to(plan.torch_dtype), adapter.to(plan.torch_dtype))}
    for name, module in (("vae", vae), ("text_encoder", text)):
        components[name] = module.to(plan.torch_dtype).eval().requires_grad_(False)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, **DDIM)
    return LoadedModel(source=ModelSource(id="animatediff-sd15-random", path=folder, kind="folder", family="animatediff"),
                       plan=plan, variant=None, components=components, scheduler_config=dict(scheduler.config),
                       content_hash="random", load_s=0.0)


@pytest.mark.gpu
@pytest.mark.slow
def test_gpu_full_size_sd15_steps(tmp_path, record_property):
    """Full-size SD 1.5 + AnimateDiff v3 motion modules (random bf16 weights) at 512x512, 16 frames: three
    steps and the decode; the timings go to docs/benchmarks.md."""
    model = full_size_sd15_animatediff(tmp_path, "cuda", "bf16")
    request = GenerationRequest(prompt=PROMPT, negative_prompt="", width=512, height=512, num_frames=16,
                                num_inference_steps=3, guidance_scale=7.5, seed=0, scheduler="model", fps=8)
    out, figures = time_on_gpu("animatediff", model, request)
    assert out.frames.shape == (16, 512, 512, 3)
    record_property("animatediff_sd15", figures)
    print("animatediff sd15 512x512x16 bf16:", figures)
