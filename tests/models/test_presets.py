"""Few-step presets: a distilled LoRA brings its steps, guidance and shift (by name, registry file name or file
metadata), frames equal the stock pipeline run with those settings, and settings that contradict it are refused."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from t2v.errors import InvalidRequest
from t2v.requests import GenerationRequest
from t2v.runner.resolve import resolve
from t2v.settings import Settings
from tests.families.checks import assert_close_to_stock, random_lora, run

LIGHTX2V = "lightx2v_T2V_14B_cfg_step_distill_v2_lora_rank64_bf16.safetensors"


@pytest.fixture(scope="module")
def wan(tmp_path_factory):
    from diffusers import WanPipeline, WanTransformer3DModel

    from tests.tinymodels import make_tiny_model

    root = tmp_path_factory.mktemp("presets")
    models = {kind: make_tiny_model(kind, root / kind, seed=0) for kind in ("wan", "wan22-a14b")}
    lora = random_lora(WanTransformer3DModel, models["wan"], root / "lora", seed=5, pipeline_cls=WanPipeline)
    named = root / LIGHTX2V
    shutil.copy(lora, named)
    return models, lora, named


def resolved(**fields):
    return resolve(GenerationRequest(prompt="a fox", seed=1, formats=(), **fields), Settings())


def test_a_known_distill_brings_its_settings_and_matches_stock_run_with_them(wan):
    import torch
    from diffusers import UniPCMultistepScheduler, WanPipeline

    from t2v.sampling.vae import to_uint8

    models, _, named = wan
    ours, result = run(models["wan"], loras=[str(named)])
    r = result.request
    assert (r.num_inference_steps, r.guidance_scale, r.extras["flow_shift"], r.preset) == (4, 1.0, 5.0, "lightx2v")
    assert result.record["preset"] == "lightx2v" and result.record["extras"]["flow_shift"] == 5.0  # replay runs the same
    pipe = WanPipeline.from_pretrained(models["wan"])
    pipe.scheduler = UniPCMultistepScheduler.from_config(pipe.scheduler.config, flow_shift=5.0)
    pipe.load_lora_weights(str(named))
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe(prompt=r.prompt, negative_prompt=r.negative_prompt, height=r.height, width=r.width,
                  num_frames=r.num_frames, num_inference_steps=4, guidance_scale=1.0, max_sequence_length=512,
                  generator=torch.Generator("cpu").manual_seed(r.seed), output_type="np").frames[0]
    assert_close_to_stock(ours, to_uint8(theirs))
    unshifted = run(models["wan"], loras=[str(named)], preset="none", num_inference_steps=4, guidance_scale=1.0)[0]
    assert np.abs(ours.astype(int) - unshifted.astype(int)).max() > 2, "the preset's shift is applied"


def test_settings_against_the_distill_are_refused_and_none_keeps_the_models(wan):
    models, lora, named = wan
    with pytest.raises(InvalidRequest) as e:
        resolved(model=str(models["wan"]), loras=[str(named)], num_inference_steps=50)
    assert e.value.field == "num_inference_steps" and "4" in str(e.value) and "preset" in str(e.value)
    with pytest.raises(InvalidRequest) as e:
        resolved(model=str(models["wan"]), loras=[str(named)], extras={"flow_shift": 3.0})
    assert e.value.field == "flow_shift"
    kept = resolved(model=str(models["wan"]), loras=[str(named)], preset="none", num_inference_steps=50)
    assert kept.num_inference_steps == 50 and "flow_shift" not in kept.extras
    plain = resolved(model=str(models["wan"]), loras=[str(lora)])  # a LoRA nobody knows: the model's defaults
    base = resolved(model=str(models["wan"]))
    assert plain.preset is None and (plain.num_inference_steps, plain.guidance_scale) == (
        base.num_inference_steps, base.guidance_scale) != (4, 1.0)
    named_preset = resolved(model=str(models["wan"]), preset="causvid")
    assert (named_preset.num_inference_steps, named_preset.guidance_scale, named_preset.extras["flow_shift"]) == (8, 1.0, 8.0)
    for bad, field in (({"preset": "turbo"}, "preset"), ({"preset": "lightx2v", "model": "t2v-shapes"}, "preset")):
        with pytest.raises(InvalidRequest) as e:
            resolved(**{"model": str(models["wan"]), **bad})
        assert e.value.field == field
    with pytest.raises(InvalidRequest, match="lightx2v, wan22-lightning, causvid, fastwan, none"):
        resolved(model=str(models["wan"]), preset="turbo")


def test_file_metadata_carries_its_own_settings(wan, tmp_path):
    from safetensors.torch import load_file, save_file

    models, lora, _ = wan
    tagged = tmp_path / "my-distill.safetensors"
    save_file(load_file(lora), tagged, metadata={"t2v_sampling": json.dumps({"steps": 6, "guidance_scale": 1.5})})
    r = resolved(model=str(models["wan"]), loras=[str(tagged)])
    assert (r.num_inference_steps, r.guidance_scale) == (6, 1.5)


def test_lightning_files_go_to_their_own_expert(wan, tmp_path):
    models, lora, _ = wan
    high, low = (tmp_path / f"Wan2.2-Lightning_T2V-A14B-4steps-lora_{x}_fp16.safetensors" for x in ("HIGH", "LOW"))
    for f in (high, low):
        shutil.copy(lora, f)
    with pytest.raises(InvalidRequest) as e:
        resolved(model=str(models["wan22-a14b"]), loras=[str(high)])
    assert e.value.field == "loras.0.experts" and "@high" in str(e.value)
    r = resolved(model=str(models["wan22-a14b"]), loras=[f"{high}@high", f"{low}@low"])
    assert (r.num_inference_steps, r.guidance_scale, r.extras["guidance_scale_2"], r.preset) == (4, 1.0, 1.0, "wan22-lightning")


def test_the_cli_lists_presets_with_licences_and_plan_predicts_the_few_step_run(wan):
    from t2v.cli.app import app

    models, _, named = wan
    listed = CliRunner().invoke(app, ["models", "presets", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = {r["name"]: r for r in json.loads(listed.output)}
    assert set(rows) == {"lightx2v", "wan22-lightning", "causvid", "fastwan"} and all(r["licence"] for r in rows.values())
    plan = CliRunner().invoke(app, ["plan", "a fox", "--model", str(models["wan"]), "--lora", str(named)],
                              env={"COLUMNS": "200"})
    assert plan.exit_code == 0, plan.output
    assert "predicted run: 4 steps (preset lightx2v)" in plan.output
