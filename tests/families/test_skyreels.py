"""SkyReels-V2 on tiny random-weight models in the hub layout: the stock diffusers pipelines' frames for the same
seed, bitwise resume after a cancel, refusals naming the field, the make-tiny command and the registry entries."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from t2v.cli import app
from t2v.errors import InvalidRequest
from tests.families.checks import (
    assert_close_to_stock, assert_periodic_checkpoints_resume_bitwise, assert_resume_after_cancel_is_bitwise, random_lora, run,
    run_stock,
    stack_on_stock)

KINDS = ("skyreels-v2", "skyreels-v2-i2v")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from tests.tinymodels import make_tiny_model

    root = tmp_path_factory.mktemp("skyreels-models")
    return {kind: make_tiny_model(kind, root / kind, seed=0) for kind in KINDS}


def stock(model, result, image, monkeypatch, flow_shift=None, prepare=None):
    """The stock diffusers pipeline's frames (uint8) for the request ``result`` ran (``prepare(pipe)`` first)."""
    import torch
    from diffusers import SkyReelsV2ImageToVideoPipeline, SkyReelsV2Pipeline, UniPCMultistepScheduler
    from diffusers.pipelines.skyreels_v2 import pipeline_skyreels_v2 as t2v_module, pipeline_skyreels_v2_i2v as i2v_module

    for module in (t2v_module, i2v_module):  # both call ftfy unguarded; Wan's prompt cleaning skips it when absent
        if not hasattr(module, "ftfy"):
            monkeypatch.setattr(module, "ftfy", types.SimpleNamespace(fix_text=lambda text: text), raising=False)
    r = result.request
    extra = {"image": Image.open(image).convert("RGB")} if image is not None else {}
    pipe = (SkyReelsV2ImageToVideoPipeline if image is not None else SkyReelsV2Pipeline).from_pretrained(model)
    if flow_shift is not None:
        pipe.scheduler = UniPCMultistepScheduler.from_config(pipe.scheduler.config, flow_shift=flow_shift)
    return run_stock(pipe, r, prepare, extra)


@pytest.mark.parametrize("kind", KINDS)
def test_frames_match_the_stock_pipeline(models, first_frame, monkeypatch, record_property, kind):
    image = first_frame if kind.endswith("i2v") else None
    previews = []
    frames, result = run(models[kind], image, on_preview=lambda step, img: previews.append(img))
    r = result.request
    assert result.record["family"] == "skyreels-v2"
    assert frames.shape == (r.num_frames, r.height, r.width, 3) and frames.dtype == np.uint8
    assert frames.std() > 1  # not a blank clip
    diff = int(np.abs(frames.astype(int) - stock(models[kind], result, image, monkeypatch).astype(int)).max())
    record_property("max_diff_levels", diff)
    print(f"{kind}: max difference from the stock pipeline {diff}/255")
    assert diff <= 2
    assert len(previews) == r.num_inference_steps
    assert all(p.shape == (r.height, r.width, 3) and p.dtype == np.uint8 for p in previews)


def test_the_flow_shift_setting_is_the_stock_schedulers(models, monkeypatch):
    frames, result = run(models["skyreels-v2"], extras={"flow_shift": 3.0})
    assert result.request.extras == {"flow_shift": 3.0}
    assert not np.array_equal(frames, run(models["skyreels-v2"])[0])
    theirs = stock(models["skyreels-v2"], result, None, monkeypatch, flow_shift=3.0)
    assert np.abs(frames.astype(int) - theirs.astype(int)).max() <= 2


def test_a_lora_matches_the_stock_pipeline_with_it(models, tmp_path, monkeypatch):
    from diffusers import SkyReelsV2Pipeline, SkyReelsV2Transformer3DModel

    model = models["skyreels-v2"]
    file = random_lora(SkyReelsV2Transformer3DModel, model, tmp_path / "lora", seed=1, pipeline_cls=SkyReelsV2Pipeline)
    ours, result = run(model, loras=[f"{file}:0.8"])
    assert np.abs(ours.astype(int) - run(model)[0].astype(int)).max() > 2, "the adapter changes the frames"
    theirs = stock(model, result, None, monkeypatch, prepare=lambda pipe: stack_on_stock(pipe, [(file, {"transformer": 0.8})]))
    assert_close_to_stock(ours, theirs)


@pytest.mark.parametrize(("kind", "at"), [("skyreels-v2", 2), ("skyreels-v2-i2v", 3)])
def test_resume_after_cancel_is_bitwise(models, first_frame, tmp_path, kind, at):
    """Cancel after ``at`` steps (UniPC has its multistep history by then), resume from the checkpoint: the
    frames of an uninterrupted run."""
    assert_resume_after_cancel_is_bitwise(run, tmp_path, at, models[kind], first_frame if kind.endswith("i2v") else None)


def test_periodic_checkpoints_resume_bitwise(models, tmp_path):
    assert_periodic_checkpoints_resume_bitwise(run, tmp_path, models["skyreels-v2"])


@pytest.mark.parametrize(("kind", "fields", "field", "words"), [
    ("skyreels-v2", {"num_frames": 8}, "num_frames", "nearest valid: 9"),
    ("skyreels-v2-i2v", {"num_frames": 12}, "num_frames", "nearest valid: 13"),
    ("skyreels-v2", {"width": 40}, "width", "nearest valid: 32"),
    ("skyreels-v2", {"extras": {"guidance_scale_2": 2.0}}, "extras.guidance_scale_2", "flow_shift"),
])
def test_a_bad_request_is_refused_naming_the_field(models, first_frame, kind, fields, field, words):
    with pytest.raises(InvalidRequest) as e:
        run(models[kind], first_frame if kind.endswith("i2v") else None, **fields)
    assert e.value.field == field and words in str(e.value), str(e.value)


def test_modes(models, first_frame):
    with pytest.raises(InvalidRequest) as e:
        run(models["skyreels-v2-i2v"])  # the I2V model needs the first frame
    assert e.value.field == "model" and "i2v" in str(e.value)
    with pytest.raises(InvalidRequest) as e:
        run(models["skyreels-v2"], first_frame)  # the T2V model cannot take one
    assert e.value.field == "image"


def test_rules_and_planner_numbers(models):
    from t2v.families import family_of_folder, get_family

    family = get_family("skyreels-v2")
    assert all(family_of_folder(models[kind]) is family for kind in KINDS)
    assert family.rules(models["skyreels-v2"]).modes == ("video",)
    assert family.rules(models["skyreels-v2-i2v"]).modes == ("i2v",)
    for kind in KINDS:
        frames, side = family.reference_shape(models[kind])
        dry = family.measure(models[kind], frames, side, side, 1, False, 1)
        assert dry["roles"]["denoise"] == ["transformer"] and all(v > 0 for v in dry["acts"].values())
        assert dry["step_flops"] > 0 and family.frames_per_latent(models[kind]) == 4


def test_make_tiny_from_the_cli_then_generate(tmp_path, monkeypatch):
    import av

    monkeypatch.setenv("T2V_HOME", str(tmp_path / "home"))
    folder = tmp_path / "sky"
    r = CliRunner().invoke(app, ["models", "make-tiny", str(folder), "--family", "skyreels-v2"])
    assert r.exit_code == 0, r.output
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "SkyReelsV2Pipeline" and index["transformer"] == ["diffusers", "SkyReelsV2Transformer3DModel"]
    out = tmp_path / "clip.mp4"
    r = CliRunner().invoke(app, ["generate", "a red fox in snow", "--model", str(folder), "--steps", "2", "-o", str(out)])
    assert r.exit_code == 0, r.output
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["family"] == "skyreels-v2"
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == record["num_frames"]


def test_registry_entries_are_listed_with_licence_size_and_memory(tmp_path, monkeypatch):
    monkeypatch.setenv("T2V_HOME", str(tmp_path / "home"))
    r = CliRunner().invoke(app, ["models", "list", "--family", "skyreels-v2", "--json"])
    assert r.exit_code == 0, r.output
    rows = {row["id"]: row for row in json.loads(r.output)}
    assert set(rows) == {f"Skywork/SkyReels-V2-{name}-Diffusers" for name in
                         ("T2V-14B-540P", "T2V-14B-720P", "I2V-1.3B-540P", "I2V-14B-540P", "I2V-14B-720P")}
    for row in rows.values():
        assert "skywork-license" in row["license"] and row["download_gb"] > 0 and row["vram_gb"] > 0
        assert row["tasks"] == (["i2v"] if "-I2V-" in row["id"] else ["t2v"])
        assert row["defaults"]["flow_shift"] == (5.0 if "-I2V-" in row["id"] else 8.0)
    r = CliRunner().invoke(app, ["models", "list", "--family", "skyreels-v2"])
    assert r.exit_code == 0 and "Skywork/SkyReels-V2-T2V-14B-540P-Diffusers" in r.output
