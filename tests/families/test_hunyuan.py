"""HunyuanVideo on tiny random-weight models in the hub layout: the stock diffusers pipelines' frames for the
same seed (text-to-video, both image-to-video conditionings, true CFG), bitwise resume, cancel without
decoding, request rules, LoRA, the planner, the service, and the licence shown before a download."""

from __future__ import annotations

import io
import json
import shutil

import av
import numpy as np
import pytest
from PIL import Image

from t2v.sampling.base import CheckpointSpec
from t2v.sampling.vae import to_uint8
from t2v.errors import Cancelled, InvalidRequest, ModelUnavailable
from t2v.requests import GenerationRequest
from t2v.families import family_of_folder, get_family
from tests.families.checks import (
    assert_two_stacked_loras_match_stock, random_lora,
    PROMPT, assert_periodic_checkpoints_resume_bitwise, assert_resume_after_cancel_is_bitwise, run, time_on_gpu)
from tests.fixtures import count_real_calls

KINDS = ("hunyuan", "hunyuan-i2v", "hunyuan-i2v-33ch")
I2V = ("hunyuan-i2v", "hunyuan-i2v-33ch")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from tests.tinymodels import make_tiny_model

    root = tmp_path_factory.mktemp("hunyuan-models")
    return {kind: make_tiny_model(kind, root / kind, seed=0) for kind in KINDS}


def stock(model, result, image=None, prepare=None):
    """The stock diffusers pipeline's frames (uint8) for the request ``result`` ran (``guidance_scale_2`` is
    the stock ``true_cfg_scale``; VAE tiling on when t2v's plan tiles: all but speed)."""
    import torch
    from diffusers import HunyuanVideoImageToVideoPipeline, HunyuanVideoPipeline

    r = result.request
    extra = {"image": Image.open(image).convert("RGB")} if image is not None else {}
    pipe = (HunyuanVideoImageToVideoPipeline if image is not None else HunyuanVideoPipeline).from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    if prepare is not None:  # e.g. stacked adapters
        prepare(pipe)
    if result.record["memory_plan"]["plan"] != "speed":
        pipe.vae.enable_tiling()
    out = pipe(prompt=r.prompt, negative_prompt=r.negative_prompt, height=r.height, width=r.width, num_frames=r.num_frames,
               num_inference_steps=r.num_inference_steps, guidance_scale=r.guidance_scale, true_cfg_scale=r.guidance_scale_2,
               generator=torch.Generator("cpu").manual_seed(r.seed), output_type="np", **extra)
    return to_uint8(out.frames[0])


CASES = [("hunyuan", {}), ("hunyuan-i2v", {}), ("hunyuan-i2v-33ch", {}),
         ("hunyuan", {"guidance_scale_2": 3.0, "negative_prompt": "blurry"}), ("hunyuan-i2v", {"guidance_scale_2": 3.0}),
         ("hunyuan", {"memory": "balanced", "width": 288, "num_inference_steps": 2})]  # wider than a VAE tile


@pytest.mark.parametrize(("kind", "fields"), CASES, ids=["t2v", "i2v", "i2v-33ch", "t2v-true-cfg", "i2v-true-cfg",
                                                         "t2v-tiled-decode"])
def test_frames_match_the_stock_pipeline(models, first_frame, kind, fields):
    image = first_frame if kind in I2V else None
    previews = []
    frames, result = run(models[kind], image, on_preview=lambda step, img: previews.append(img), **fields)
    r = result.request
    dropped = 4 if kind == "hunyuan-i2v-33ch" else 0  # latent_concat drops its first 4 decoded frames, as stock
    assert frames.shape == (r.num_frames - dropped, r.height, r.width, 3) and frames.dtype == np.uint8
    assert frames.std() > 1  # not a blank clip
    assert np.abs(frames.astype(int) - stock(models[kind], result, image).astype(int)).max() <= 2
    assert len(previews) == r.num_inference_steps
    assert all(p.shape == (r.height, r.width, 3) and p.dtype == np.uint8 for p in previews)
    if image is not None:
        assert result.record["image_sha256"]


def test_guidance_fields_change_the_frames(models, first_frame):
    """guidance_scale is the embedded guidance (none in the 33-channel I2V transformer); guidance_scale_2 > 1
    adds true CFG with the negative prompt, which is unused at 1."""
    base = run(models["hunyuan"])[0]
    assert not np.array_equal(run(models["hunyuan"], guidance_scale=3.0)[0], base)
    assert np.array_equal(run(models["hunyuan"], negative_prompt="blurry")[0], base)
    cfg = run(models["hunyuan"], guidance_scale_2=3.0, negative_prompt="blurry")[0]
    assert not np.array_equal(cfg, base)
    assert not np.array_equal(run(models["hunyuan"], guidance_scale_2=3.0, negative_prompt="a cat")[0], cfg)
    concat = run(models["hunyuan-i2v-33ch"], first_frame)[0]
    assert np.array_equal(run(models["hunyuan-i2v-33ch"], first_frame, guidance_scale=6.0)[0], concat)


@pytest.mark.parametrize(("kind", "at"), [("hunyuan", 1), ("hunyuan", 3), ("hunyuan-i2v", 2), ("hunyuan-i2v-33ch", 3)])
def test_resume_after_cancel_is_bitwise(models, first_frame, tmp_path, kind, at):
    """Cancel after ``at`` steps (the scheduler's step index and custom sigmas are in the checkpoint), resume:
    the same frames as an uninterrupted run."""
    image = first_frame if kind in I2V else None
    assert_resume_after_cancel_is_bitwise(run, tmp_path, at, models[kind], image)


def test_periodic_checkpoints_resume_bitwise(models, tmp_path):
    assert_periodic_checkpoints_resume_bitwise(run, tmp_path, models["hunyuan"], guidance_scale_2=2.0)


def test_cancel_never_decodes_and_leaves_nothing(models, first_frame, tmp_path, monkeypatch):
    from diffusers import AutoencoderKLHunyuanVideo

    decodes = []
    count_real_calls(monkeypatch, AutoencoderKLHunyuanVideo, "decode", decodes)
    out = tmp_path / "out"
    steps = []
    for stop_after in (1, 4):  # between steps, and after the last step (before decoding)
        steps.clear()
        with pytest.raises(Cancelled):
            run(models["hunyuan-i2v"], first_frame, formats=("mp4",), output=out / "clip.mp4",
                should_cancel=lambda: len(steps) >= stop_after,
                on_progress=lambda e: steps.append(e.step) if e.stage == "denoise" and e.step else None)
        assert decodes == [] and not (out.exists() and any(out.rglob("*")))
    spec = CheckpointSpec(tmp_path / "ckpts" / "job.pt")
    steps.clear()
    with pytest.raises(Cancelled):
        run(models["hunyuan"], checkpoint=spec, should_cancel=lambda: len(steps) >= 4,
            on_progress=lambda e: steps.append(e.step) if e.stage == "denoise" and e.step else None)
    assert decodes == [] and [p.name for p in spec.path.parent.iterdir()] == ["job.pt"]  # no partial files
    resumed, result = run(models["hunyuan"], checkpoint=spec)  # straight to decoding
    assert result.record["resumed_from_step"] == 4 and len(decodes) == 1
    assert np.array_equal(resumed, run(models["hunyuan"])[0])


@pytest.mark.parametrize(("kind", "field", "value", "nearest"), [
    ("hunyuan", "width", 40, "nearest valid: 32"), ("hunyuan", "height", 56, "nearest valid: 64"),
    ("hunyuan", "num_frames", 8, "nearest valid: 9"), ("hunyuan", "num_frames", 11, "nearest valid: 9"),
    ("hunyuan-i2v", "num_frames", 12, "nearest valid: 13"), ("hunyuan-i2v", "width", 88, "nearest valid: 96"),
    ("hunyuan", "scheduler", "unipc", "choose one of: model"),
])
def test_bad_requests_name_the_field_and_nearest_value(models, first_frame, kind, field, value, nearest):
    with pytest.raises(InvalidRequest) as e:
        run(models[kind], first_frame if kind in I2V else None, **{field: value})
    assert e.value.field == field and nearest in str(e.value)


def test_modes(models, first_frame, tmp_path):
    from t2v.models.source import check_folder

    with pytest.raises(InvalidRequest) as e:
        run(models["hunyuan-i2v"])  # the I2V pipeline needs the first frame
    assert e.value.field == "model" and "text-to-video" in str(e.value) and "i2v" in str(e.value)
    with pytest.raises(InvalidRequest) as e:
        run(models["hunyuan"], first_frame)  # text-to-video cannot take one
    assert e.value.field == "image"
    broken = tmp_path / "no-processor"
    shutil.copytree(models["hunyuan-i2v"], broken)
    shutil.rmtree(broken / "image_processor")
    with pytest.raises(ModelUnavailable, match="missing image_processor"):
        check_folder(broken, get_family)


def test_low_memory_plan_and_long_prompts(models):
    base, _ = run(models["hunyuan"])
    assert np.array_equal(run(models["hunyuan"], memory="low")[0], base)  # VAE tiling starts above 256 px
    _, result = run(models["hunyuan"], prompt=PROMPT + ", " + "very " * 300 + "detailed")
    warnings = result.record["warnings"]
    assert any("truncated to 256 tokens" in w and "detailed" in w for w in warnings)
    assert any("CLIP text encoder sees the first 77 tokens" in w for w in warnings)
    assert not run(models["hunyuan"])[1].record["warnings"]


def test_template_tokens_match_crop_start(models):
    """The generated tokenizer gives the stock templates Llama 3's token counts: the prompt starts at
    crop_start, and I2V's <image> sits at image_emb_start with three <|end_header_id|> tokens."""
    from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video import DEFAULT_PROMPT_TEMPLATE as T2V_TEMPLATE
    from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video_image2video import DEFAULT_PROMPT_TEMPLATE as I2V_TEMPLATE
    from transformers import LlamaTokenizerFast

    tok = LlamaTokenizerFast.from_pretrained(models["hunyuan"] / "tokenizer")  # the class model_index.json names
    for template in (T2V_TEMPLATE, I2V_TEMPLATE):
        ids = tok(template["template"].format("a panda")).input_ids
        assert tok.convert_ids_to_tokens(ids[template["crop_start"]:template["crop_start"] + 2]) == ["a", "▁panda"]
    ids = tok(I2V_TEMPLATE["template"].format("a panda")).input_ids
    assert ids.index(tok.convert_tokens_to_ids("<image>")) == I2V_TEMPLATE["image_emb_start"]
    assert ids.count(tok.convert_tokens_to_ids("<|end_header_id|>")) == 3


def test_a_byte_level_tokenizer_is_read_as_its_file_says(models, tmp_path):
    """Llama 3's tokenizer (the real repos') is byte-level BPE; transformers 5's LlamaTokenizerFast would
    rebuild it as SentencePiece-style BPE and give other ids. The family reads it as tokenizer.json says."""
    from tokenizers import Tokenizer, decoders, models as tok_models, pre_tokenizers
    from transformers import LlamaTokenizerFast, PreTrainedTokenizerFast

    from t2v.families import get_family
    from t2v.models.device import DevicePlan

    folder = tmp_path / "byte-level"
    shutil.copytree(models["hunyuan"], folder)
    shutil.rmtree(folder / "tokenizer")
    vocab = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    merges = [("Ġ", "c"), ("Ġc", "a"), ("Ġca", "t")]
    vocab.update({"Ġc": len(vocab), "Ġca": len(vocab) + 1, "Ġcat": len(vocab) + 2, "<pad>": len(vocab) + 3})
    backend = Tokenizer(tok_models.BPE(vocab=vocab, merges=merges))
    backend.pre_tokenizer, backend.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>").save_pretrained(folder / "tokenizer")
    expected = backend.encode("a cat").ids
    assert LlamaTokenizerFast.from_pretrained(folder / "tokenizer")("a cat").input_ids != expected  # the pitfall
    tok = get_family("hunyuan").load(folder, DevicePlan("cpu", "fp32"), None)["tokenizer"]
    assert tok("a cat").input_ids == expected


@pytest.fixture(scope="module")
def lora(models, tmp_path_factory):
    """A random rank-4 LoRA on the tiny transformer's attention, in diffusers' HunyuanVideo LoRA format."""
    import torch
    from diffusers import HunyuanVideoPipeline, HunyuanVideoTransformer3DModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    transformer = HunyuanVideoTransformer3DModel.from_pretrained(models["hunyuan"], subfolder="transformer")
    torch.manual_seed(0)
    transformer.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"],
                                       init_lora_weights=False))
    out = tmp_path_factory.mktemp("hunyuan-lora")
    HunyuanVideoPipeline.save_lora_weights(out, transformer_lora_layers=get_peft_model_state_dict(transformer))
    return out


def test_lora_changes_frames_and_scale_0_is_the_base(models, lora):
    base, base_result = run(models["hunyuan"])
    with_lora, result = run(models["hunyuan"], lora=str(lora))
    assert not np.array_equal(with_lora, base) and result.record["model_hash"] != base_result.record["model_hash"]
    assert np.array_equal(run(models["hunyuan"], lora=str(lora / "pytorch_lora_weights.safetensors"))[0], with_lora)
    # Scale 0 is the base model, up to float rounding: the adapted transformer is a copy, and on the CPU a copy's
    # new buffers alone can round a matmul differently (an unadapted deepcopy shows the same 1e-7 differences).
    assert np.abs(run(models["hunyuan"], lora=str(lora), lora_scale=0.0)[0].astype(int) - base).max() <= 2
    with pytest.raises(InvalidRequest) as e:
        run(models["hunyuan"], lora=str(models["hunyuan"] / "vae"))
    assert e.value.field == "loras.0.path"


def test_rules_and_planner_numbers(models):
    from t2v.families import get_family
    from t2v.planner.memory import choose, estimate

    fam = get_family("hunyuan")
    assert fam.rules(None).size_multiple == 16 and fam.rules(None).frame_step == 4
    assert fam.rules(models["hunyuan"]).modes == ("video",) and fam.rules(models["hunyuan-i2v"]).modes == ("i2v",)
    assert fam.rules(models["hunyuan"]).size_multiple == 16 and fam.rules(models["hunyuan"]).text_tokens == 256
    for kind in KINDS:
        frames, side = fam.reference_shape(models[kind])
        dry = fam.measure(models[kind], frames, side, side, 2, False, 1)
        assert set(dry["acts"]) == {"text", "transformer", "vae"} and all(v > 0 for v in dry["acts"].values())
        assert dry["roles"]["denoise"] == ["transformer"] and dry["step_flops"] > 0 and dry["decode_flops"] > 0
        assert set(dry["params"]) == {"text_encoder", "text_encoder_2", "transformer", "vae"}
        assert fam.frames_per_latent(models[kind]) == 4
    i2v = fam.measure(models["hunyuan-i2v"], 17, 64, 64, 1, False, 1)
    t2v = fam.measure(models["hunyuan"], 17, 64, 64, 1, False, 1)
    assert i2v["acts"]["text"] > t2v["acts"]["text"]  # + 575 image tokens and the vision tower
    request = GenerationRequest(model=str(models["hunyuan"]), prompt=PROMPT, num_frames=33, width=128, height=64,
                                guidance_scale=6.0, num_inference_steps=4, seed=0)
    small, big = (estimate(models["hunyuan"], r, family=family_of_folder(models["hunyuan"]), plan="speed", device="cpu", dtype="fp32") for r in
                  (request, request.model_copy(update={"num_frames": 65, "width": 256})))
    assert 0 < small.peak_bytes < big.peak_bytes and small.flops_per_step < big.flops_per_step
    plan, predictions = choose(models["hunyuan"], request, family=family_of_folder(models["hunyuan"]), requested="auto", device="cpu", dtype="fp32")
    assert plan.name == "speed" and predictions[0].fits


def test_bad_sizes_exit_2_on_the_cli_and_are_422_on_the_api(models, tmp_path):
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from t2v.api import create_app
    from t2v.cli import app
    from t2v.settings import Settings

    for flags, message in ((["--width", "40"], "nearest valid: 32"), (["--frames", "8"], "nearest valid: 9")):
        r = CliRunner().invoke(app, ["generate", "a cat", "--model", str(models["hunyuan"]), *flags, "-o",
                                     str(tmp_path / "x.mp4")])
        assert r.exit_code == 2 and message in r.stderr, r.output
    assert not (tmp_path / "x.mp4").exists()
    with TestClient(create_app(Settings(home=tmp_path / "home", default_model=str(models["hunyuan"])),
                               start_workers=False)) as c:
        for body, field in (({"width": 40}, "width"), ({"num_frames": 8}, "num_frames"), ({"height": 24}, "height")):
            r = c.post("/v1/videos", json={"prompt": "a cat", "model": str(models["hunyuan"]), **body})
            assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == field, r.text


def test_a_job_through_the_service(models, tmp_path):
    from fastapi.testclient import TestClient

    from t2v.api import create_app
    from tests.api.conftest import make_settings, wait_for

    with TestClient(create_app(make_settings(tmp_path / "home", models["hunyuan"]))) as client:
        r = client.post("/v1/videos", json={"prompt": PROMPT, "model": str(models["hunyuan"]), "num_frames": 13,
                                            "width": 48, "height": 32, "num_inference_steps": 2, "seed": 5})
        assert r.status_code == 202, r.text
        done = wait_for(client, r.json()["id"])
        assert done["status"] == "succeeded", done["error"]
        assert done["progress"]["step"] == 2 and done["request"]["guidance_scale"] == 6.0
        content = client.get(f"/v1/videos/{done['id']}/content?format=mp4")
        assert content.status_code == 200
        with av.open(io.BytesIO(content.content)) as clip:
            frames = list(clip.decode(video=0))
        assert len(frames) == 13 and (frames[0].width, frames[0].height) == (48, 32)


def test_registry_specs_carry_the_licence_notice():
    from t2v.models.download import license_notice
    from t2v.models.registry import lookup

    t2v, i2v = lookup("hunyuanvideo-community/HunyuanVideo"), lookup("hunyuan-i2v")
    assert t2v.family == i2v.family == "hunyuan" and t2v.tasks == ("t2v",) and i2v.tasks == ("i2v",)
    assert i2v.id == "hunyuanvideo-community/HunyuanVideo-I2V"
    assert (t2v.defaults["width"], t2v.defaults["height"], t2v.defaults["num_frames"]) == (1280, 720, 129)
    assert (t2v.defaults["num_inference_steps"], t2v.defaults["fps"], t2v.defaults["guidance_scale"]) == (50, 24, 6.0)
    assert "544x960" in t2v.notes
    for spec in (t2v, i2v):
        assert "Tencent Hunyuan Community" in spec.license and spec.license_url.startswith("https://huggingface.co/tencent/")
        for place in ("European Union", "United Kingdom", "South Korea"):
            assert place in spec.license_notice and place in license_notice(spec.id)


def full_size(folder, device: str, dtype: str):
    """HunyuanVideo's transformer, VAE and CLIP-L at full size with random weights (configs only on disk), with a
    two-layer Llama of the real width and the tiny tokenizer: the denoising and decoding cost of the real model,
    built in seconds on the device."""
    import torch
    from diffusers import AutoencoderKLHunyuanVideo, FlowMatchEulerDiscreteScheduler, HunyuanVideoTransformer3DModel
    from transformers import CLIPTextConfig, CLIPTextModel, LlamaConfig, LlamaModel

    from t2v.models.device import DevicePlan
    from t2v.models.loader import LoadedModel
    from t2v.models.source import ModelSource
    from t2v.models.tiny import make_tokenizer
    from t2v.models.tiny.hunyuan import make_llama_tokenizer

    plan = DevicePlan(device, dtype)
    tokenizer, clip_tokenizer = make_llama_tokenizer(folder / "tokenizer"), make_tokenizer(folder / "tokenizer_2")
    before = torch.get_default_dtype()
    torch.set_default_dtype(plan.torch_dtype)  # 13B parameters: build them in bf16, on the device
    try:
        with torch.device(device):
            torch.manual_seed(0)
            modules = {"transformer": HunyuanVideoTransformer3DModel(), "vae": AutoencoderKLHunyuanVideo(),
                       "text_encoder": LlamaModel(LlamaConfig(vocab_size=len(tokenizer), hidden_size=4096,
                                                              intermediate_size=14336, num_hidden_layers=2,
                                                              num_attention_heads=32, num_key_value_heads=8,
                                                              pad_token_id=tokenizer.pad_token_id)),
                       "text_encoder_2": CLIPTextModel(CLIPTextConfig(  # CLIP ViT-L/14's text tower
                           vocab_size=len(clip_tokenizer), hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                           num_attention_heads=12, projection_dim=768, bos_token_id=clip_tokenizer.bos_token_id,
                           eos_token_id=clip_tokenizer.eos_token_id, pad_token_id=clip_tokenizer.pad_token_id))}
    finally:
        torch.set_default_dtype(before)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=7.0)
    components = {"tokenizer": tokenizer, "tokenizer_2": clip_tokenizer, "scheduler": scheduler}
    for name, module in modules.items():
        (module.save_config if hasattr(module, "save_config") else module.config.save_pretrained)(folder / name)
        components[name] = module.eval().requires_grad_(False)
    scheduler.save_config(folder / "scheduler")
    index = {"_class_name": "HunyuanVideoPipeline", "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
             "text_encoder": ["transformers", "LlamaModel"], "tokenizer": ["transformers", "LlamaTokenizerFast"],
             "text_encoder_2": ["transformers", "CLIPTextModel"], "tokenizer_2": ["transformers", "CLIPTokenizer"],
             "transformer": ["diffusers", "HunyuanVideoTransformer3DModel"], "vae": ["diffusers", "AutoencoderKLHunyuanVideo"]}
    (folder / "model_index.json").write_text(json.dumps(index))
    return LoadedModel(source=ModelSource(id="hunyuan-random", path=folder, kind="folder", family="hunyuan"), plan=plan,
                       variant=None, components=components, scheduler_config=dict(scheduler.config), content_hash="random",
                       load_s=0.0)


@pytest.mark.gpu
@pytest.mark.slow
def test_gpu_full_size_steps(tmp_path, record_property):
    """Full-size HunyuanVideo (random bf16 weights) at 720x1280, 129 frames: two steps and the tiled decode of the
    low plan (without offload); the timings go to docs/benchmarks.md."""
    import dataclasses


    from t2v.planner.plans import get_plan

    model = full_size(tmp_path, "cuda", "bf16")
    request = GenerationRequest(prompt=PROMPT, negative_prompt="", width=1280, height=720, num_frames=129,
                                num_inference_steps=2, guidance_scale=6.0, guidance_scale_2=1.0, seed=0, scheduler="model",
                                fps=24)
    out, figures = time_on_gpu("hunyuan", model, request, memory=dataclasses.replace(get_plan("low"), offload=False, free_text_encoder=False))
    assert out.frames.shape == (129, 720, 1280, 3)
    record_property("hunyuan", figures)
    print("hunyuan 720x1280x129 bf16:", figures)


def test_two_stacked_loras_match_the_stock_pipeline_with_set_adapters(models, lora, tmp_path):
    from diffusers import HunyuanVideoPipeline, HunyuanVideoTransformer3DModel

    model, first = models["hunyuan"], lora / "pytorch_lora_weights.safetensors"
    second = random_lora(HunyuanVideoTransformer3DModel, model, tmp_path / "second", seed=1, pipeline_cls=HunyuanVideoPipeline,
                         targets=("to_q", "to_v"))
    assert_two_stacked_loras_match_stock(run, stock, model, first, second)
