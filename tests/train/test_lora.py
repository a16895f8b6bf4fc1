"""LoRA: train an adapter on a tiny model, load it, and see it change (and only change) the output.

Adds under a minute: adapters are really trained (a few steps on the tiny model) before they are loaded and
compared."""

from __future__ import annotations

import json

import numpy as np
import pytest

from t2v.errors import InvalidRequest
from t2v import generate
from t2v.requests import GenerationRequest
from t2v.train import shapes
from t2v.train.lora import LoraTrainConfig, train_lora
from tests.families.checks import assert_scale_0_is_the_base


@pytest.fixture(scope="module")
def adapter(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("lora")
    data = shapes.write_dir(root / "data", 4, seed=0, colors=("purple",))
    losses = []
    out = train_lora(LoraTrainConfig(base=str(tiny_model), data=str(data), out=root / "adapter", rank=4, steps=6, batch=2,
                                     lr=1e-2), lambda e: losses.append(e.loss) if e.phase == "lora" else None)
    return out, losses


def _frames(model, **kw):
    """A clip of ``model`` (4 frames, 2 steps unless ``kw`` says: what is compared is with and without adapters)."""
    kw = {"num_frames": 4, "num_inference_steps": 2, **kw}
    req = GenerationRequest(prompt="a purple circle moving right", model=str(model), seed=3, formats=(), **kw)
    return generate(req)


def test_adapter_files_and_metadata(adapter, tiny_model):
    out, losses = adapter
    assert (out / "adapter_model.safetensors").stat().st_size > 0
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["r"] == 4 and set(cfg["target_modules"]) == {"to_q", "to_k", "to_v", "to_out.0"}
    meta = json.loads((out / "t2v_lora.json").read_text())
    assert meta["base"] == str(tiny_model.resolve()) and meta["clips"] == 4 and len(losses) == 6


def test_adapter_changes_the_output_and_is_recorded(adapter, tiny_model):
    out, _ = adapter
    base = _frames(tiny_model)
    tuned = _frames(tiny_model, lora=str(out))
    off = _frames(tiny_model, lora=str(out), lora_scale=0.0)
    assert tuned.frames.shape == base.frames.shape
    assert np.abs(tuned.frames.astype(int) - base.frames.astype(int)).max() > 0
    assert_scale_0_is_the_base(off.frames, base.frames, tuned.frames)
    assert list(tuned.record["loras"]) == [{"path": str(out.resolve()), "scale": 1.0, "scale_low": None, "experts": "both"}]
    assert [a["hash"] for a in tuned.record["adapters"]] == [tuned.record["model_hash"].split("+lora:")[1]]
    assert "+lora:" in tuned.record["model_hash"]
    again = _frames(tiny_model)  # the cached base UNet was not modified
    assert np.array_equal(again.frames, base.frames)


def test_regularisation_clips_are_trained_on_and_recorded(tiny_model, tmp_path):
    data = shapes.write_dir(tmp_path / "data", 2, seed=0, colors=("purple",))
    reg = shapes.write_dir(tmp_path / "reg", 3, seed=1)
    out = train_lora(LoraTrainConfig(base=str(tiny_model), data=str(data), out=tmp_path / "adapter", rank=2, steps=2,
                                     batch=2, reg_data=str(reg)))
    meta = json.loads((out / "t2v_lora.json").read_text())
    assert meta["clips"] == 2 and meta["reg_clips"] == 3 and meta["reg_data"] == str(reg.resolve())
    assert meta["reg_target"] == "base" and meta["reg_weight"] == 1.0
    with pytest.raises(InvalidRequest, match="reg_data: .* is not a folder") as e:
        LoraTrainConfig(base=str(tiny_model), data=str(data), out=tmp_path / "a2", reg_data=str(tmp_path / "nope"))
    assert e.value.field == "reg_data"
    with pytest.raises(InvalidRequest, match="reg_target: must be 'base' or 'clips'"):
        LoraTrainConfig(base=str(tiny_model), data=str(data), out=tmp_path / "a3", reg_target="teacher")


def test_base_target_is_the_frozen_models_prediction(tiny_model):
    """reg_target='base' distils: the target is the UNet with its adapters bypassed, so a fresh adapter (B = 0)
    has zero loss there, a changed one does not, and the adapters are back on after the teacher runs."""
    import torch
    from diffusers import DDIMScheduler, UNet3DConditionModel

    from t2v.models.lora import adapters_off, add_lora, lora_parameters
    from t2v.train.common import diffusion_loss

    unet = UNet3DConditionModel.from_pretrained(tiny_model, subfolder="unet")
    scheduler = DDIMScheduler.from_pretrained(tiny_model, subfolder="scheduler")
    add_lora(unet, 2, conv=True)

    def teacher(noisy, t, cond):
        with adapters_off(unet):
            return unet(noisy, t, encoder_hidden_states=cond).sample

    torch.manual_seed(0)
    latents = torch.randn(2, unet.config.in_channels, 4, 8, 8)
    cond = torch.randn(2, 77, unet.config.cross_attention_dim)
    assert diffusion_loss(unet, cond, latents, scheduler, teacher=teacher).item() < 1e-10
    assert diffusion_loss(unet, cond, latents, scheduler).item() > 1e-3  # the noise target is not the base's output
    with torch.no_grad():
        for p in lora_parameters(unet):
            p.add_(0.1 * torch.randn_like(p))
    loss = diffusion_loss(unet, cond, latents, scheduler, teacher=teacher)
    assert loss.item() > 1e-6
    loss.backward()  # the teacher's pass is outside the graph, the adapter's is in it
    assert all(p.requires_grad for p in lora_parameters(unet)) and any(p.grad is not None for p in lora_parameters(unet))


def test_conv_adapter_covers_resnet_convolutions_and_loads(tiny_model, tmp_path):
    data = shapes.write_dir(tmp_path / "data", 2, seed=0, colors=("purple",))
    out = train_lora(LoraTrainConfig(base=str(tiny_model), data=str(data), out=tmp_path / "adapter", rank=2, steps=2,
                                     batch=2, lr=1e-2, conv=True))
    from safetensors.torch import load_file

    keys = load_file(out / "adapter_model.safetensors").keys()
    assert any(".resnets.0.conv1.lora_A" in k for k in keys) and any("conv_out.lora_A" in k for k in keys)
    assert not any("temp_convs" in k for k in keys)  # the temporal Conv3d stacks stay frozen
    assert json.loads((out / "t2v_lora.json").read_text())["conv"] is True
    base, tuned = _frames(tiny_model), _frames(tiny_model, lora=str(out))
    assert np.abs(tuned.frames.astype(int) - base.frames.astype(int)).max() > 0


@pytest.mark.parametrize("conv", [False, True], ids=["attention", "locon"])
def test_no_temporal_adapts_the_spatial_layers_alone_and_loads(tiny_model, tmp_path, conv):
    """--no-temporal: no LoRA layer under the temporal attention (transformer_in, temp_attentions), every spatial
    attention projection (and with --conv the ResNet convolutions) adapted, and the adapter loads and runs."""
    data = shapes.write_dir(tmp_path / "data", 2, seed=0, colors=("purple",))
    out = train_lora(LoraTrainConfig(base=str(tiny_model), data=str(data), out=tmp_path / "adapter", rank=2, steps=2,
                                     batch=2, lr=1e-2, conv=conv, temporal=False))
    from safetensors.torch import load_file

    keys = load_file(out / "adapter_model.safetensors").keys()
    assert not any("temp_attentions" in k or "transformer_in" in k for k in keys)
    assert any(".attentions.0.transformer_blocks.0.attn2.to_k.lora_A" in k for k in keys)
    assert any(".resnets.0.conv1.lora_A" in k for k in keys) is conv
    assert json.loads((out / "t2v_lora.json").read_text())["temporal"] is False
    base, tuned = _frames(tiny_model), _frames(tiny_model, lora=str(out))
    assert np.abs(tuned.frames.astype(int) - base.frames.astype(int)).max() > 0


def test_bad_adapter_paths_are_named(tmp_path, tiny_model):
    with pytest.raises(InvalidRequest, match="loras.0.path: .* is not a folder") as e:
        _frames(tiny_model, lora=str(tmp_path / "nope"))
    assert e.value.field == "loras.0.path"
    with pytest.raises(InvalidRequest, match="no adapter_config.json"):
        _frames(tiny_model, lora=str(tmp_path))


def test_lora_config_validation(tmp_path):
    with pytest.raises(InvalidRequest, match="rank"):
        LoraTrainConfig(base="x", data=str(tmp_path), out=tmp_path / "o", rank=0)
    with pytest.raises(InvalidRequest, match="data"):
        LoraTrainConfig(base="x", data=str(tmp_path / "missing"), out=tmp_path / "o")


def test_refine_steps_add_a_decoder_adapter_that_loads_with_the_unet_one(tiny_model, tmp_path):
    import shutil

    from safetensors.torch import load_file

    data = shapes.write_dir(tmp_path / "data", 3, seed=0, colors=("purple",))
    events = []
    out = train_lora(LoraTrainConfig(base=str(tiny_model), data=str(data), out=tmp_path / "adapter", rank=2, steps=2,
                                     batch=2, lr=1e-2, refine_steps=3), events.append)
    assert [e.step for e in events if e.phase == "refine"] == [1, 2, 3]
    keys = load_file(out / "decoder" / "adapter_model.safetensors").keys()
    assert any(k.startswith("decoder.") and ".lora_A" in k for k in keys) and any("post_quant_conv.lora_A" in k for k in keys)
    assert not any(k.startswith(("encoder.", "quant_conv.")) for k in keys)  # the latent space stays the base model's
    assert json.loads((out / "t2v_lora.json").read_text())["refine_steps"] == 3
    unet_only = tmp_path / "unet-only"
    shutil.copytree(out, unet_only)
    shutil.rmtree(unet_only / "decoder")
    base, both, unet = _frames(tiny_model), _frames(tiny_model, lora=str(out)), _frames(tiny_model, lora=str(unet_only))
    assert np.abs(both.frames.astype(int) - unet.frames.astype(int)).max() > 0  # the decoder part is applied
    assert both.record["model_hash"] != unet.record["model_hash"]
    assert_scale_0_is_the_base(_frames(tiny_model, lora=str(out), lora_scale=0.0).frames, base.frames, both.frames)
    assert np.array_equal(_frames(tiny_model).frames, base.frames)  # the cached base VAE was not modified
    with pytest.raises(InvalidRequest, match="refine_steps"):
        LoraTrainConfig(base="x", data=str(data), out=tmp_path / "o", refine_steps=-1)


def test_a_loaded_adapter_switches_on_and_off_and_leaves_plain_layers_once_removed(tiny_model, tmp_path):
    """load_adapter + activate at 0.7 computes what PEFT's own LoRA layers do at that scale; inactive, the
    wrapped UNet is the base exactly; removed, its layers are plain again."""
    import copy

    import peft
    import torch
    from diffusers import UNet3DConditionModel
    from peft.tuners.lora import LoraLayer
    from safetensors.torch import load_file

    from t2v.models.adapters import AdapterHost, activate
    from t2v.models.lora import ADAPTER, load_adapter

    data = shapes.write_dir(tmp_path / "data", 2, seed=0, colors=("purple",))
    out = train_lora(LoraTrainConfig(base=str(tiny_model), data=str(data), out=tmp_path / "adapter", rank=2, steps=3,
                                     batch=2, lr=5e-2, conv=True))
    base = UNet3DConditionModel.from_pretrained(tiny_model, subfolder="unet").eval()
    switched, reference = copy.deepcopy(base), copy.deepcopy(base)
    load_adapter(switched, out, "t2v_x")
    peft.inject_adapter_in_model(peft.LoraConfig.from_pretrained(str(out)), reference, adapter_name=ADAPTER)
    peft.set_peft_model_state_dict(reference, load_file(out / "adapter_model.safetensors"), adapter_name=ADAPTER)
    for m in reference.modules():
        if isinstance(m, LoraLayer):
            m.set_scale(ADAPTER, 0.7)
    g = torch.Generator().manual_seed(0)
    sample = torch.randn(1, base.config.in_channels, 4, 8, 8, generator=g)
    text = torch.randn(1, 77, base.config.cross_attention_dim, generator=g)

    def out_of(m):
        with torch.no_grad():
            return m(sample, 500, encoder_hidden_states=text).sample

    plain = out_of(base)
    activate(switched, {"t2v_x": 0.7})
    on = out_of(switched)
    assert torch.equal(on, out_of(reference)) and (on - plain).abs().max() > 1e-3
    assert not any(p.requires_grad for p in switched.parameters())  # switched on for inference only
    activate(switched, {})
    assert torch.equal(out_of(switched), plain)
    AdapterHost().remove(switched, "t2v_x")
    assert not any(isinstance(m, LoraLayer) for m in switched.modules()) and not hasattr(switched, "peft_config")
    assert switched.state_dict().keys() == base.state_dict().keys() and torch.equal(out_of(switched), plain)


def test_with_regularisation_only_its_clips_teach_the_unconditional_prediction(tiny_model, tmp_path, monkeypatch):
    """Captions are dropped (uncond_prob) only in the regularisation half, which is distilled from the base
    model: a new-clip half trained on "" would drift the unconditional prediction towards the new clips, and
    classifier-free guidance pushes every other prompt away from it."""
    import t2v.train.lora as lora_mod

    seen = []
    real = lora_mod.diffusion_loss

    def spy(unet, cond, latents, scheduler, **kw):
        seen.append((cond.detach().clone(), kw.get("teacher") is not None))
        return real(unet, cond, latents, scheduler, **kw)

    monkeypatch.setattr(lora_mod, "diffusion_loss", spy)
    data = shapes.write_dir(tmp_path / "data", 2, seed=0, colors=("purple",))
    reg = shapes.write_dir(tmp_path / "reg", 2, seed=1)
    train_lora(LoraTrainConfig(base=str(tiny_model), data=str(data), out=tmp_path / "a", rank=2, steps=2, batch=4,
                               reg_data=str(reg), uncond_prob=1.0))
    assert [t for _, t in seen] == [False, True, False, True]  # new half on the noise, regularisation half distilled
    empty = seen[1][0][0]  # every regularisation caption was dropped -> the "" embedding
    assert all(bool((c == empty).all()) for cond, t in seen if t for c in cond)
    assert not any(bool((c == empty).all()) for cond, t in seen if not t for c in cond)
    seen.clear()
    train_lora(LoraTrainConfig(base=str(tiny_model), data=str(data), out=tmp_path / "b", rank=2, steps=1, batch=4, uncond_prob=1.0))
    assert len(seen) == 1 and all(bool((c == empty).all()) for c in seen[0][0])  # no regularisation: dropped as usual


def test_decoder_adapter_draws_new_and_regularisation_clips_half_and_half(tiny_model, tmp_path, monkeypatch):
    """However many regularisation clips there are, they must not crowd the new ones out of the decoder adapter
    (600 of them against 64 purple ones took purple from 98% to 44%)."""
    import t2v.train.lora as lora_mod

    seen = {}
    real = lora_mod.refine_model

    def spy(*args, **kw):
        seen["weights"] = np.asarray(kw["clip_weights"])
        return real(*args, **kw)

    monkeypatch.setattr(lora_mod, "refine_model", spy)  # the name train_lora calls
    data = shapes.write_dir(tmp_path / "data", 2, seed=0, colors=("purple",))
    reg = shapes.write_dir(tmp_path / "reg", 6, seed=1)
    train_lora(LoraTrainConfig(base=str(tiny_model), data=str(data), out=tmp_path / "a", rank=2, steps=1, batch=2,
                               reg_data=str(reg), refine_steps=1))
    w = seen["weights"]
    assert w.shape == (8,) and np.isclose(w[:2].sum(), w[2:].sum()) and np.allclose(w[2:], w[2])


def test_the_decoder_adapter_takes_an_amplitude_jitter(tiny_model, tmp_path, monkeypatch):
    """``refine_jitter`` goes to the decoder adapter's refinement (off by default) and into its metadata."""
    import t2v.train.lora as lora_mod

    seen, real = [], lora_mod.refine_model
    monkeypatch.setattr(lora_mod, "refine_model", lambda *a, **kw: seen.append(kw["jitter"]) or real(*a, **kw))
    data = shapes.write_dir(tmp_path / "data", 2, seed=0, colors=("purple",))
    common = dict(base=str(tiny_model), data=str(data), rank=2, steps=1, batch=2, refine_steps=1)
    out = train_lora(LoraTrainConfig(out=tmp_path / "a", refine_jitter=0.15, **common))
    plain = train_lora(LoraTrainConfig(out=tmp_path / "b", **common))
    assert seen == [0.15, 0.0] and json.loads((out / "t2v_lora.json").read_text())["refine_jitter"] == 0.15
    assert json.loads((plain / "t2v_lora.json").read_text())["refine_jitter"] == 0.0
    with pytest.raises(InvalidRequest, match="refine_jitter"):
        LoraTrainConfig(out=tmp_path / "d", refine_jitter=1.0, **common)


def test_two_stacked_adapters_match_the_stock_pipeline_with_set_adapters(adapter, tiny_model, tmp_path):
    """ModelScope: two t2v adapters at 0.7 and 0.4 give the frames of the stock TextToVideoSDPipeline whose UNet has
    both loaded by PEFT and weighted by diffusers' own set_adapters (``set_weights_and_activate_adapters``): the
    stock pipeline's ``load_lora_weights`` cannot load into a UNet3D (it has no ``load_lora_adapter``)."""
    import diffusers
    import torch
    from diffusers.utils.peft_utils import set_weights_and_activate_adapters

    from t2v.models.lora import load_adapter

    first, _ = adapter
    data = shapes.write_dir(tmp_path / "data", 2, seed=1, colors=("yellow",))
    second = train_lora(LoraTrainConfig(base=str(tiny_model), data=str(data), out=tmp_path / "second", rank=2,
                                        steps=2, batch=2, lr=1e-2), lambda e: None)
    fields = dict(num_frames=6, width=48, height=40, num_inference_steps=3, scheduler="ddim")
    ours = _frames(tiny_model, loras=[f"{first}:0.7", f"{second}:0.4"], **fields)
    one = _frames(tiny_model, loras=[f"{first}:0.7"], **fields)
    assert np.abs(ours.frames.astype(int) - one.frames.astype(int)).max() > 2, "the second adapter counts"
    pipe = diffusers.TextToVideoSDPipeline.from_pretrained(tiny_model, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = diffusers.DDIMScheduler.from_config(pipe.scheduler.config)
    for name, folder in (("first", first), ("second", second)):
        load_adapter(pipe.unet, folder, name)
    set_weights_and_activate_adapters(pipe.unet, ["first", "second"], [0.7, 0.4])
    r = ours.request
    theirs = pipe(r.prompt, negative_prompt=r.negative_prompt, num_frames=6, width=48, height=40,
                  num_inference_steps=3, guidance_scale=r.guidance_scale,
                  generator=torch.Generator("cpu").manual_seed(r.seed), output_type="np").frames[0]
    off_by = np.abs(ours.frames.astype(int) - np.round(theirs * 255).astype(int)).max()
    print(f"stacked adapters against stock: max {off_by}/255")
    assert off_by <= 2
    assert [a["scale"] for a in ours.record["adapters"]] == [0.7, 0.4]


def test_eval_shapes_puts_the_adapters_figures_beside_the_base_models(adapter, tiny_model, tmp_path):
    """``t2v eval shapes --lora``: the base model on the same prompts and seeds too, both in the report, and a
    table of base / adapter per colour; the base's rows are those of an evaluation without the adapter."""
    from typer.testing import CliRunner

    from t2v.cli import app

    out, _ = adapter
    prompts = tmp_path / "p.txt"
    prompts.write_text("a purple circle moving right\na red square moving up\n")
    small = ["--steps", "2", "--frames", "4"]  # what is checked is the report's shape, not the tiny model's scores
    runner = CliRunner()
    r = runner.invoke(app, ["eval", "shapes", "--model", str(tiny_model), "--prompts", str(prompts), "--seeds", "2",
                            "--lora", str(out), "--json-out", str(tmp_path / "both.json"), *small])
    assert r.exit_code == 0, r.output
    assert "beside the base model" in " ".join(r.output.split())
    both = json.loads((tmp_path / "both.json").read_text())
    assert both["lora"] == str(out) and [(x["prompt"], x["seed"]) for x in both["base"]["rows"]] == [
        (x["prompt"], x["seed"]) for x in both["rows"]]
    r = runner.invoke(app, ["eval", "shapes", "--model", str(tiny_model), "--prompts", str(prompts), "--seeds", "2",
                            "--json-out", str(tmp_path / "plain.json"), *small])
    assert r.exit_code == 0, r.output
    plain = json.loads((tmp_path / "plain.json").read_text())
    assert both["base"]["rows"] == plain["rows"] and "base" not in plain
    r = runner.invoke(app, ["eval", "shapes", "--model", str(tiny_model), "--prompts", str(prompts), "--seeds", "1",
                            "--lora", str(out), "--no-base", "--json-out", str(tmp_path / "alone.json"), *small])
    assert r.exit_code == 0 and "base" not in json.loads((tmp_path / "alone.json").read_text())
