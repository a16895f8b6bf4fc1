"""A shipped model's earlier weights, kept under ``ID@VERSION``: a record made with them replays identically."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from t2v.cli import app
from t2v.models import registry, spec
from t2v.models.hub.modelscope import SHAPES_DEFAULTS
from t2v.models.registry import ModelSpec
from t2v.models.versions import version_for_record, versions_of

SHIPPED = spec.BUNDLED_DIR / "t2v-shapes"


def _entry(model_id: str, folder: str) -> ModelSpec:
    return ModelSpec(id=model_id, family="modelscope", description="test line", defaults=dict(SHAPES_DEFAULTS),
                     license="Apache-2.0", download_gb=0.0, vram_gb=0.1, has_fp16_variant=False, bundled=folder)


@pytest.fixture
def line(tmp_path, monkeypatch):
    """Bundled folders "old" (the shipped weights) and "new" (the same with one UNet bias moved), and a way to
    point registry entries at them."""
    from safetensors.torch import load_file, save_file

    assets = tmp_path / "assets"
    shutil.copytree(SHIPPED, assets / "old")
    shutil.copytree(SHIPPED, assets / "new")
    weights = assets / "new" / "unet" / "diffusion_pytorch_model.safetensors"
    tensors = load_file(weights)
    tensors["conv_out.bias"] = tensors["conv_out.bias"] + 0.2
    save_file(tensors, weights)
    monkeypatch.setattr(spec, "BUNDLED_DIR", assets)

    def ship(**entries: str) -> None:
        for model_id in [k for k in registry.REGISTRY if k.startswith("shp")]:
            monkeypatch.delitem(registry.REGISTRY, model_id)
        for model_id, folder in entries.items():
            monkeypatch.setitem(registry.REGISTRY, model_id.replace("_at_", "@"), _entry(model_id.replace("_at_", "@"), folder))

    return assets, ship


def test_replay_uses_the_kept_version_whose_hash_the_record_names(line, tmp_path):
    assets, ship = line
    cli = CliRunner()
    ship(shp="old")  # before the update
    made = cli.invoke(app, ["generate", "a red circle moving right", "--model", "shp", "--seed", "3", "--steps", "4",
                            "-o", str(tmp_path / "a.mp4")])
    assert made.exit_code == 0, made.output
    record = json.loads((tmp_path / "a.json").read_text())
    assert version_for_record(record) is None  # made with the weights "shp" names now

    ship(shp="new", shp_at_v1="old")  # the update: new weights, the old ones kept as shp@v1
    assert [s.id for s in versions_of("shp")] == ["shp", "shp@v1"] and [s.id for s in versions_of("shp@v1")] == ["shp", "shp@v1"]
    assert version_for_record(record) == "shp@v1"
    again = cli.invoke(app, ["replay", str(tmp_path / "a.json"), "-o", str(tmp_path / "b.mp4"), "--strict"])
    assert again.exit_code == 0, again.output
    assert "made with shp@v1" in again.output and "identical frames" in again.output
    assert json.loads((tmp_path / "b.json").read_text())["model"] == "shp@v1"

    # the current weights draw another clip: without the kept version the replay differs, and says so
    ship(shp="new")
    assert version_for_record(record) is None
    differs = cli.invoke(app, ["replay", str(tmp_path / "a.json"), "-o", str(tmp_path / "c.mp4"), "--strict"])
    assert differs.exit_code == 1 and "frames differ" in differs.output and "model" in differs.output
    # --model still decides when given
    ship(shp="new", shp_at_v1="old")
    forced = cli.invoke(app, ["replay", str(tmp_path / "a.json"), "--model", "shp", "-o", str(tmp_path / "d.mp4")])
    assert forced.exit_code == 0 and "made with" not in forced.output and "frames differ" in forced.output


def test_records_without_a_kept_version_are_left_alone(line):
    _, ship = line
    ship(shp="new", shp_at_v1="old")
    assert version_for_record({}) is None
    assert version_for_record({"model": "shp"}) is None
    assert version_for_record({"model": "shp", "model_hash": "0" * 64}) is None
    assert version_for_record({"model": "someone/else", "model_hash": "0" * 64}) is None


def test_the_shipped_model_is_first_of_its_line_and_v5_and_v4_are_kept():
    assert [s.id for s in versions_of("shapes")] == ["t2v-shapes", "t2v-shapes@v5", "t2v-shapes@v4"]
    assert all(s.bundled_path.is_dir() for s in versions_of("t2v-shapes"))
    listed = CliRunner().invoke(app, ["models", "list"])
    assert listed.exit_code == 0 and "aliases: shapes" in listed.output
    assert "t2v-shapes@v5" in listed.output and "t2v-shapes@v4" in listed.output


@pytest.mark.parametrize("kept", ["t2v-shapes@v4", "t2v-shapes@v5"])
def test_a_record_made_with_a_kept_version_replays_with_it_identically(kept, tmp_path):
    """A record from when v4 (or v5) shipped names "t2v-shapes" and that version's hash: replay finds it and
    draws the same frames."""
    cli = CliRunner()
    made = cli.invoke(app, ["generate", "a red circle moving right", "--model", kept, "--seed", "3", "--steps", "4",
                            "-o", str(tmp_path / "a.mp4")])
    assert made.exit_code == 0, made.output
    record = json.loads((tmp_path / "a.json").read_text())
    record["model"] = "t2v-shapes"  # what it wrote when it was the shipped model
    (tmp_path / "a.json").write_text(json.dumps(record))
    assert version_for_record(record) == kept
    again = cli.invoke(app, ["replay", str(tmp_path / "a.json"), "-o", str(tmp_path / "b.mp4"), "--strict"])
    assert again.exit_code == 0 and f"made with {kept}" in again.output and "identical frames" in again.output
    now = cli.invoke(app, ["generate", "a red circle moving right", "--model", "t2v-shapes", "--seed", "3", "--steps", "4",
                           "-o", str(tmp_path / "c.mp4")])
    assert json.loads((tmp_path / "c.json").read_text())["model_hash"] != record["model_hash"]  # today's is another model
