"""`t2v cache list` and `t2v cache clear`: the on-disk caches under $T2V_HOME/cache, their sizes, and clearing
them without losing anything but time."""

from __future__ import annotations

import json
import os
import time

import pytest
import torch
from typer.testing import CliRunner

from t2v.cli import app
from t2v import generate
from t2v.models import caches, converted, hashcache
from t2v.planner import dryruns, memory
from t2v.models.loader import clear_cache
from t2v.models.precision import load_module
from t2v.requests import GenerationRequest

from tests.forkserver import run_t2v

pytestmark = pytest.mark.own_dry_runs  # these tests make, count and cache dry runs themselves

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, ["cache", *args], env={"COLUMNS": "200"})


def _row(output: str, name: str) -> list[str]:
    line = next(line for line in output.splitlines() if line.startswith(f"│ {name} "))
    return [cell.strip() for cell in line.strip("│").split("│")]


def _request(model, **kw) -> GenerationRequest:
    return GenerationRequest(prompt="a red circle moving right", model=str(model), seed=1, num_frames=8, width=64,
                             height=64, num_inference_steps=2, formats=(), **kw)


@pytest.fixture
def filled(tiny_model, t2v_env, monkeypatch):
    """A home after a bf16 run (conversion kept) and an fp32 run, plus a MagCache calibration file."""
    monkeypatch.setattr(converted, "MIN_BYTES", 0)  # keep the tiny model's conversions
    # What a fresh process starts with: no model, hash or dry run in memory (earlier tests in this worker).
    clear_cache()
    hashcache.forget_memo()
    dryruns.forget_memo()
    memory._dry_run.cache_clear()
    memory._reference.cache_clear()
    # Watched runs (a progress callback) count their work: a dry run and step times are kept.
    generate(_request(tiny_model, dtype="bf16"), on_progress=lambda event: None)
    generate(_request(tiny_model, dtype="fp32"), on_progress=lambda event: None)
    calib = t2v_env / "cache" / "magcache" / "abc-2.json"
    calib.parent.mkdir(parents=True)
    calib.write_text(json.dumps({"ratios": {"transformer": [1.0, 0.9]}}))
    return t2v_env


def test_list_shows_every_cache_with_its_files_and_size(filled):
    out = _run("list")
    assert out.exit_code == 0, out.output
    root = filled / "cache"
    conv = sorted((root / "converted").iterdir())
    assert len(conv) >= 2  # the UNet and the text encoder (and the VAE) in bf16
    row = _row(out.output, "converted")
    assert row[1] == str(len(conv))
    assert row[2].endswith("MB") or row[2].endswith("KB")
    for name, file in (("hashes", "content-hashes.json"), ("dry-runs", "dry-runs.json"), ("step-times", "step-times.json")):
        assert (root / file).is_file()
        assert _row(out.output, name)[1] == "1"
    assert _row(out.output, "magcache")[1] == "1"
    assert _row(out.output, "artifacts")[1:3] == ["0", "0 B"]
    usage = caches.usage(filled, caches.pick(["converted"])[0])
    assert usage.bytes == sum(p.stat().st_size for p in conv)


def test_clear_deletes_all_but_calibrations_and_the_next_run_makes_them_again(filled, tiny_model, tmp_path):
    out = _run("clear")
    assert out.exit_code == 0, out.output
    root = filled / "cache"
    assert "converted: " in out.output and "freed" in out.output
    assert not any((root / "converted").glob("*.safetensors"))
    for file in ("content-hashes.json", "dry-runs.json", "step-times.json"):
        assert not (root / file).exists()
    assert (root / "magcache" / "abc-2.json").is_file()  # costs a command to make: only when named
    assert _row(_run("list").output, "converted")[1:3] == ["0", "0 B"]

    # A fresh process on the cleared home makes the same frames, and its caches again.
    before = generate(_request(tiny_model, dtype="fp32")).record["frames_sha256"]
    done = run_t2v(["generate", "a red circle moving right", "--model", tiny_model, "--seed", "1", "--frames", "8",
                    "--width", "64", "--height", "64", "--steps", "2", "--dtype", "fp32", "-q", "-o",
                    tmp_path / "again.mp4"])
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "again.json").read_text())["frames_sha256"] == before
    for file in ("content-hashes.json", "dry-runs.json", "step-times.json"):
        assert (root / file).is_file()

    assert _run("clear", "magcache").exit_code == 0
    assert not (root / "magcache" / "abc-2.json").exists()


def test_clear_older_than_keeps_recent_files_and_writes_in_progress(t2v_env):
    folder = t2v_env / "cache" / "converted"
    folder.mkdir(parents=True)
    old, new = folder / "old.safetensors", folder / "new.safetensors"
    writing, stale = folder / ".x.123.tmp", folder / ".y.456.tmp"
    for f in (old, new, writing, stale):
        f.write_bytes(b"\0" * 1000)
    ten_days = time.time() - 10 * 86400
    os.utime(old, (ten_days, ten_days))
    os.utime(stale, (ten_days, ten_days))
    out = _run("clear", "converted", "--older-than", "7")
    assert out.exit_code == 0, out.output
    assert "converted: 2 files" in out.output
    assert not old.exists() and not stale.exists() and new.exists() and writing.exists()
    _run("clear", "converted")
    assert not new.exists() and writing.exists()  # another process's write, under an hour old


def test_a_mapped_conversion_survives_its_entry_being_cleared(tiny_model, t2v_env, monkeypatch):
    monkeypatch.setattr(converted, "MIN_BYTES", 0)
    from diffusers import UNet3DConditionModel

    def load():
        return load_module(UNet3DConditionModel, tiny_model, "unet", "diffusion_pytorch_model", torch.bfloat16, None)

    load()  # converts and keeps
    mapped = load()
    want = {k: v.clone() for k, v in mapped.state_dict().items()}
    assert _run("clear", "converted").exit_code == 0
    assert not any((t2v_env / "cache" / "converted").glob("*.safetensors"))
    assert all(torch.equal(v, want[k]) for k, v in mapped.state_dict().items())


def test_unknown_cache_names_are_refused_with_the_valid_ones(t2v_env):
    out = _run("clear", "converted", "bogus")
    assert out.exit_code == 2
    assert "unknown cache 'bogus'" in out.output and "dry-runs" in out.output
    assert _run("clear", "--older-than", "-1").exit_code == 2
