"""Wan 2.1 / 2.2 on tiny random-weight models in the hub layout: the stock diffusers pipelines' frames for the
same seed, bitwise resume, cancel without decoding, request rules, both A14B experts, LoRA and the planner.

Text-, image- and video-to-video are each compared frame for frame with the stock pipelines, and resumed bitwise,
on the tiny model (about 20 s in all)."""

from __future__ import annotations

import json
import shutil
import types

import numpy as np
import pytest
from PIL import Image

from t2v.sampling.base import CheckpointSpec
from t2v.errors import Cancelled, InvalidRequest
from t2v.requests import GenerationRequest
from tests.families.checks import (
    PROMPT, assert_close_to_stock, random_lora, run_stock, stack_on_stock, assert_periodic_checkpoints_resume_bitwise, assert_resume_after_cancel_is_bitwise, assert_scale_0_is_the_base, run,
    time_on_gpu)
from tests.fixtures import count_real_calls

KINDS = ("wan", "wan22-ti2v", "wan22-a14b", "wan-i2v")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from tests.tinymodels import make_tiny_model

    root = tmp_path_factory.mktemp("wan-models")
    return {kind: make_tiny_model(kind, root / kind, seed=0) for kind in KINDS}


def stock(model, result, image=None, monkeypatch=None, prepare=None):
    """The stock diffusers pipeline's frames (uint8) for the request ``result`` ran (``prepare(pipe)`` first)."""
    import torch
    from diffusers import WanImageToVideoPipeline, WanPipeline

    r = result.request
    extra = {}
    if image is not None:
        import diffusers.pipelines.wan.pipeline_wan_i2v as i2v

        if not hasattr(i2v, "ftfy"):  # diffusers' I2V module calls ftfy unguarded; WanPipeline skips it when absent
            monkeypatch.setattr(i2v, "ftfy", types.SimpleNamespace(fix_text=lambda text: text), raising=False)
        extra["image"] = Image.open(image).convert("RGB")
    if json.loads((model / "model_index.json").read_text()).get("boundary_ratio") is not None:
        extra["guidance_scale_2"] = r.guidance_scale_2
    pipe = (WanImageToVideoPipeline if image is not None else WanPipeline).from_pretrained(model)
    return run_stock(pipe, r, prepare, extra)



CASES = [("wan", False), ("wan22-ti2v", False), ("wan22-a14b", False), ("wan-i2v", True), ("wan22-ti2v", True)]


@pytest.mark.parametrize(("kind", "i2v"), CASES, ids=[f"{k}{'-i2v' if i else ''}" for k, i in CASES])
def test_frames_match_the_stock_pipeline(models, first_frame, monkeypatch, kind, i2v):
    image = first_frame if i2v else None
    previews = []
    frames, result = run(models[kind], image, on_preview=lambda step, img: previews.append(img))
    r = result.request
    assert frames.shape == (r.num_frames, r.height, r.width, 3) and frames.dtype == np.uint8
    assert frames.std() > 1  # not a blank clip
    theirs = stock(models[kind], result, image, monkeypatch)
    assert np.abs(frames.astype(int) - theirs.astype(int)).max() <= 2
    assert len(previews) == r.num_inference_steps
    assert all(p.shape == (r.height, r.width, 3) and p.dtype == np.uint8 for p in previews)
    if i2v:
        assert result.record["image_sha256"]


@pytest.mark.parametrize(("kind", "i2v", "at"), [("wan", False, 2), ("wan22-ti2v", True, 1), ("wan22-a14b", False, 2),
                                                  ("wan22-a14b", False, 3), ("wan-i2v", True, 3)])
def test_resume_after_cancel_is_bitwise(models, first_frame, tmp_path, kind, i2v, at):
    """Cancel after ``at`` steps (UniPC has multistep history by then; A14B at and after its expert switch),
    resume from the checkpoint: the same frames as an uninterrupted run."""
    image = first_frame if i2v else None
    assert_resume_after_cancel_is_bitwise(run, tmp_path, at, models[kind], image)


def test_periodic_checkpoints_resume_bitwise(models, tmp_path):
    assert_periodic_checkpoints_resume_bitwise(run, tmp_path, models["wan"])


def test_low_memory_plan_and_long_prompts(models):
    base, _ = run(models["wan"])
    assert np.array_equal(run(models["wan"], memory="low")[0], base)  # tiling starts above 256 px
    _, result = run(models["wan"], prompt=PROMPT + ", " + "very " * 120 + "detailed")  # 650 bytes: ByT5 tokens
    assert any("truncated to 512 tokens" in w for w in result.record["warnings"])


def test_cancel_never_decodes_and_leaves_nothing(models, tmp_path, monkeypatch):
    from diffusers import AutoencoderKLWan

    decodes = []
    count_real_calls(monkeypatch, AutoencoderKLWan, "decode", decodes)
    out = tmp_path / "out"
    steps = []
    for stop_after in (1, 4):  # between steps, and after the last step (before decoding)
        steps.clear()
        with pytest.raises(Cancelled):
            run(models["wan22-a14b"], formats=("mp4",), output=out / "clip.mp4", should_cancel=lambda: len(steps) >= stop_after,
                on_progress=lambda e: steps.append(e.step) if e.stage == "denoise" and e.step else None)
        assert decodes == [] and not (out.exists() and any(out.rglob("*")))
    spec = CheckpointSpec(tmp_path / "ckpts" / "job.pt")
    steps.clear()
    with pytest.raises(Cancelled):
        run(models["wan22-a14b"], checkpoint=spec, should_cancel=lambda: len(steps) >= 4,
            on_progress=lambda e: steps.append(e.step) if e.stage == "denoise" and e.step else None)
    assert decodes == [] and [p.name for p in spec.path.parent.iterdir()] == ["job.pt"]  # no partial files
    resumed, result = run(models["wan22-a14b"], checkpoint=spec)  # straight to decoding
    assert result.record["resumed_from_step"] == 4 and len(decodes) == 1
    assert np.array_equal(resumed, run(models["wan22-a14b"])[0])


@pytest.mark.parametrize(("kind", "field", "value", "nearest"), [
    ("wan", "width", 40, "nearest valid: 32"), ("wan", "height", 56, "nearest valid: 64"),
    ("wan22-ti2v", "width", 48, "multiple of 32"), ("wan", "num_frames", 8, "nearest valid: 9"),
    ("wan22-a14b", "num_frames", 11, "nearest valid: 9"), ("wan-i2v", "num_frames", 12, "nearest valid: 13"),
])
def test_bad_sizes_and_frame_counts_name_the_field_and_nearest_value(models, first_frame, kind, field, value, nearest):
    with pytest.raises(InvalidRequest) as e:
        run(models[kind], first_frame if kind == "wan-i2v" else None, **{field: value})
    assert e.value.field == field and nearest in str(e.value)


def test_modes(models, first_frame):
    with pytest.raises(InvalidRequest) as e:
        run(models["wan-i2v"])  # 2.1 I2V needs the first frame
    assert e.value.field == "model" and "text-to-video" in str(e.value) and "i2v" in str(e.value)
    with pytest.raises(InvalidRequest) as e:
        run(models["wan"], first_frame)  # 2.1 T2V cannot take one
    assert e.value.field == "image"


def test_a14b_runs_both_experts_and_guidance_2(models, tmp_path):
    base, result = run(models["wan22-a14b"])
    assert result.request.guidance_scale_2 == 4.0  # the folder's default
    for replaced, by in (("transformer_2", "transformer"), ("transformer", "transformer_2")):
        copy = tmp_path / f"no-{replaced}"
        shutil.copytree(models["wan22-a14b"], copy)
        shutil.rmtree(copy / replaced)
        shutil.copytree(copy / by, copy / replaced)
        assert not np.array_equal(run(copy)[0], base), f"{replaced} made no difference"
    assert not np.array_equal(run(models["wan22-a14b"], guidance_scale_2=1.5)[0], base)
    assert np.array_equal(run(models["wan22-a14b"], guidance_scale_2=4.0)[0], base)


@pytest.fixture(scope="module")
def lora(models, tmp_path_factory):
    """A random rank-4 LoRA on the tiny Wan 2.1 transformer's attention, in diffusers' Wan LoRA format."""
    import torch
    from diffusers import WanPipeline, WanTransformer3DModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    transformer = WanTransformer3DModel.from_pretrained(models["wan"], subfolder="transformer")
    torch.manual_seed(0)
    transformer.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"],
                                       init_lora_weights=False))
    out = tmp_path_factory.mktemp("wan-lora")
    WanPipeline.save_lora_weights(out, transformer_lora_layers=get_peft_model_state_dict(transformer))
    return out


def test_lora_changes_frames_and_scale_0_is_the_base(models, lora):
    base, _ = run(models["wan"])
    with_lora, result = run(models["wan"], lora=str(lora))
    assert not np.array_equal(with_lora, base) and result.record["model_hash"] != run(models["wan"])[1].record["model_hash"]
    assert np.array_equal(run(models["wan"], lora=str(lora / "pytorch_lora_weights.safetensors"))[0], with_lora)
    assert_scale_0_is_the_base(run(models["wan"], lora=str(lora), lora_scale=0.0)[0], base, with_lora)
    from diffusers import WanTransformer3DModel

    from t2v.families import get_family
    from t2v.models.adapters import AdapterHost, AdapterPart

    plain = WanTransformer3DModel.from_pretrained(models["wan"], subfolder="transformer")
    before = {k: v.clone() for k, v in plain.state_dict().items()}
    part = AdapterPart("transformer", lora / "pytorch_lora_weights.safetensors", 0.7, 0)
    host = AdapterHost()
    with host.use({"transformer": plain}, (part,), get_family("wan").load_adapter):
        weights = {k.replace(".base_layer", ""): v for k, v in plain.state_dict().items() if "lora_" not in k}
        assert weights.keys() == before.keys() and host.names() == [part.name]
    assert all(v.equal(weights[k]) for k, v in before.items())  # loaded beside the weights, never fused into them
    for not_lora in (models["wan"] / "vae", models["wan"] / "vae" / "diffusion_pytorch_model.safetensors"):
        with pytest.raises(InvalidRequest) as e:
            run(models["wan"], lora=str(not_lora))
        assert e.value.field == "loras.0.path"


def test_a14b_lora_per_expert(models, lora, tmp_path):
    """A folder with a *high_noise* file (transformer) and/or a *low_noise* one (transformer_2)."""
    outputs = [run(models["wan22-a14b"])[0]]
    for names in (["demo_high_noise"], ["demo_low_noise"], ["demo_high_noise", "demo_low_noise"]):
        folder = tmp_path / "+".join(names)
        folder.mkdir()
        for name in names:
            shutil.copy(lora / "pytorch_lora_weights.safetensors", folder / f"{name}.safetensors")
        outputs.append(run(models["wan22-a14b"], lora=str(folder))[0])
    assert len({a.tobytes() for a in outputs}) == 4  # each expert's adapter changes the frames


@pytest.fixture(scope="module")
def second_lora(models, tmp_path_factory):
    """Another random LoRA (other seed, on the feed-forward layers too), as a single file."""
    from diffusers import WanPipeline, WanTransformer3DModel

    out = tmp_path_factory.mktemp("wan-lora-2")
    file = random_lora(WanTransformer3DModel, models["wan"], out, seed=1, pipeline_cls=WanPipeline,
                       targets=("to_q", "to_v", "ffn.net.0.proj", "ffn.net.2"))
    return file.rename(out / "style.safetensors")


def test_two_stacked_loras_match_the_stock_pipeline_with_set_adapters(models, lora, second_lora):
    first = lora / "pytorch_lora_weights.safetensors"
    ours, result = run(models["wan"], loras=[f"{first}:1.0", f"{second_lora}:0.6"])
    theirs = stock(models["wan"], result, prepare=lambda pipe: stack_on_stock(
        pipe, [(first, {"transformer": 1.0}), (second_lora, {"transformer": 0.6})]))
    assert_close_to_stock(ours, theirs)
    alone = run(models["wan"], loras=[f"{first}:1.0"])[0]
    assert np.abs(ours.astype(int) - alone.astype(int)).max() > 2, "the second adapter changes the frames"
    adapters = result.record["adapters"]
    assert [(a["scale"], a["experts"]) for a in adapters] == [(1.0, "both"), (0.6, "both")]
    assert len({a["hash"] for a in adapters}) == 2 and all(len(a["hash"]) == 16 for a in adapters)
    # the same stack in the other order is the same sum of updates; the one-LoRA flags still work
    assert_close_to_stock(run(models["wan"], loras=[f"{second_lora}:0.6", f"{first}:1.0"])[0], ours, levels=1)
    assert np.array_equal(run(models["wan"], lora=str(first), lora_scale=1.0)[0], alone)


def test_a14b_stacked_loras_with_a_strength_per_expert_match_stock(models, lora, second_lora):
    first = lora / "pytorch_lora_weights.safetensors"
    ours, result = run(models["wan22-a14b"], loras=[{"path": str(first), "scale": 1.0, "scale_low": 0.3},
                                                     f"{second_lora}:0.8@low"])
    theirs = stock(models["wan22-a14b"], result, prepare=lambda pipe: stack_on_stock(
        pipe, [(first, {"transformer": 1.0, "transformer_2": 0.3}), (second_lora, {"transformer_2": 0.8})]))
    assert_close_to_stock(ours, theirs)
    assert [(a["scale"], a["scale_low"], a["experts"]) for a in result.record["adapters"]] == [
        (1.0, 0.3, "both"), (0.8, 0.8, "low")]
    high_only = run(models["wan22-a14b"], loras=[f"{first}:1.0@high"])[0]
    theirs = stock(models["wan22-a14b"], result, prepare=lambda pipe: stack_on_stock(pipe, [(first, {"transformer": 1.0})]))
    assert_close_to_stock(high_only, theirs)


def test_bad_stacks_are_refused_before_loading_naming_the_field(models, lora, second_lora):
    first = lora / "pytorch_lora_weights.safetensors"
    cases = [([str(first), str(first)], "loras", "give each adapter once"),
             ([f"{first}:0.5@high"], "loras.0.experts", "one denoiser"),
             ([f"{first}:0.5/0.2"], "loras.0.scale_low", "one denoiser"),
             ([str(first), str(models["wan"] / "vae")], "loras.1.path", "is not a wan LoRA"),
             ([{"path": str(first), "scale": float("nan")}], "loras.0.scale", "finite"),
             ([{"path": str(first), "scale": 5}], "loras.0.scale", "less than or equal to 4")]
    for loras, field, words in cases:
        with pytest.raises(InvalidRequest) as e:
            run(models["wan"], loras=loras)
        assert e.value.field == field and words in str(e.value), (loras, str(e.value))


def test_a_lora_of_another_shape_or_family_is_refused_before_any_weights_load(models, lora, tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    from t2v.models.loader import model_cache
    from t2v.runner.resolve import resolve
    from t2v.settings import Settings

    state = load_file(lora / "pytorch_lora_weights.safetensors")
    key = next(k for k in state if k.endswith("attn1.to_q.lora_A.weight"))
    wider = {**state, key: torch.zeros(state[key].shape[0], state[key].shape[1] + 8)}  # a bigger model's layer
    foreign = {k.replace("transformer.blocks.", "transformer.transformer_blocks."): v for k, v in state.items()}
    save_file(wider, tmp_path / "wider.safetensors")
    save_file(foreign, tmp_path / "foreign.safetensors")
    model_cache().clear()
    for name, words in (("wider", "takes 24 features"), ("foreign", "another family")):
        with pytest.raises(InvalidRequest) as e:
            resolve(GenerationRequest(prompt="a fox", model=str(models["wan"]), formats=(),
                                      loras=[str(lora), str(tmp_path / f"{name}.safetensors")]), Settings())
        assert e.value.field == "loras.1.path" and words in str(e.value), str(e.value)
    assert len(model_cache()) == 0, "refused from the file and the configs alone"


def test_rules_and_planner_numbers(models):
    from t2v.families import get_family

    wan = get_family("wan")
    assert wan.rules(None).size_multiple == 16 and wan.rules(None).frame_step == 4
    assert wan.rules(models["wan22-ti2v"]).size_multiple == 32 and wan.rules(models["wan22-ti2v"]).modes == ("video", "i2v")
    assert wan.rules(models["wan-i2v"]).modes == ("i2v",) and wan.rules(models["wan"]).text_tokens == 512
    for kind in KINDS:
        frames, side = wan.reference_shape(models[kind])
        dry = wan.measure(models[kind], frames, side, side, 2, False, 1)
        assert set(dry["acts"]) == {"text", "transformer", "vae"} and all(v > 0 for v in dry["acts"].values())
        assert dry["roles"]["denoise"] == (["transformer", "transformer_2"] if kind == "wan22-a14b" else ["transformer"])
        assert set(dry["params"]) >= {"text_encoder", "transformer", "vae"} and dry["step_flops"] > 0
        assert wan.frames_per_latent(models[kind]) == 4


def test_bad_sizes_exit_2_on_the_cli_and_are_422_on_the_api(models, tmp_path):
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from t2v.api import create_app
    from t2v.cli import app
    from t2v.settings import Settings

    for flags, message in ((["--width", "40"], "nearest valid: 32"), (["--frames", "8"], "nearest valid: 9")):
        r = CliRunner().invoke(app, ["generate", "a cat", "--model", str(models["wan"]), *flags, "-o", str(tmp_path / "x.mp4")])
        assert r.exit_code == 2 and message in r.stderr, r.output
    assert not (tmp_path / "x.mp4").exists()
    with TestClient(create_app(Settings(home=tmp_path / "home", default_model=str(models["wan"])), start_workers=False)) as c:
        for body, field in (({"width": 40}, "width"), ({"num_frames": 8}, "num_frames"), ({"height": 24}, "height")):
            r = c.post("/v1/videos", json={"prompt": "a cat", "model": str(models["wan"]), **body})
            assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == field, r.text


def full_size_wan13b(folder, device: str, dtype: str):
    """Wan 2.1 T2V 1.3B's transformer and VAE at full size with random weights (configs only on disk), with a
    one-layer UMT5 of the real width: the denoising and decoding cost of the real model, loaded in seconds."""
    import torch
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanTransformer3DModel
    from transformers import ByT5Tokenizer, UMT5Config, UMT5EncoderModel

    from t2v.models.device import DevicePlan
    from t2v.models.loader import LoadedModel
    from t2v.models.source import ModelSource

    plan = DevicePlan(device, dtype)
    tokenizer = ByT5Tokenizer(model_max_length=512)
    with torch.device(device):  # random init on the device itself: seconds on a GPU
        torch.manual_seed(0)
        transformer = WanTransformer3DModel(num_attention_heads=12, attention_head_dim=128, in_channels=16, out_channels=16,
                                            text_dim=4096, ffn_dim=8960, num_layers=30, cross_attn_norm=True,
                                            qk_norm="rms_norm_across_heads", eps=1e-6)
        vae = AutoencoderKLWan()
        text = UMT5EncoderModel(UMT5Config(vocab_size=len(tokenizer), d_model=4096, d_kv=64, d_ff=10240, num_heads=64,
                                           num_layers=1, feed_forward_proj="gated-gelu"))
    transformer.save_config(folder / "transformer")
    vae.save_config(folder / "vae")
    text.config.save_pretrained(folder / "text_encoder")
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)
    components = {"tokenizer": tokenizer, "scheduler": scheduler}
    for name, module in (("transformer", transformer), ("vae", vae), ("text_encoder", text)):
        components[name] = module.to(plan.torch_dtype).eval().requires_grad_(False)
    scheduler.save_config(folder / "scheduler")
    index = {"_class_name": "WanPipeline", "scheduler": ["diffusers", "UniPCMultistepScheduler"],
             "text_encoder": ["transformers", "UMT5EncoderModel"], "tokenizer": ["transformers", "ByT5Tokenizer"],
             "transformer": ["diffusers", "WanTransformer3DModel"], "vae": ["diffusers", "AutoencoderKLWan"]}
    (folder / "model_index.json").write_text(json.dumps(index))
    return LoadedModel(source=ModelSource(id="wan-1.3b-random", path=folder, kind="folder", family="wan"), plan=plan,
                       variant=None, components=components, scheduler_config=dict(scheduler.config), content_hash="random",
                       load_s=0.0)


@pytest.mark.gpu
@pytest.mark.slow
def test_gpu_full_size_13b_steps(tmp_path, record_property):
    """Full-size Wan 2.1 1.3B (random bf16 weights) at 480x832, 81 frames: three steps and the decode; the
    timings go to docs/benchmarks.md."""
    model = full_size_wan13b(tmp_path, "cuda", "bf16")
    request = GenerationRequest(prompt=PROMPT, negative_prompt="", width=832, height=480, num_frames=81, num_inference_steps=3,
                                guidance_scale=5.0, seed=0, scheduler="model", fps=16)
    out, figures = time_on_gpu("wan", model, request)
    assert out.frames.shape == (81, 480, 832, 3)
    record_property("wan13b", figures)
    print("wan 1.3B 480x832x81 bf16:", figures)
