"""Weights converted to the run's dtype, kept under $T2V_HOME/cache/converted and mapped by later loads."""

from __future__ import annotations

import os
import shutil
import time
from collections import namedtuple

import numpy as np
import pytest
import torch
from diffusers import UNet3DConditionModel
from safetensors.torch import load_file

from t2v import generate
from t2v.models import converted
from t2v.models.loader import clear_cache
from t2v.models.precision import load_module
from t2v.requests import GenerationRequest


@pytest.fixture
def keep_all(monkeypatch):
    """Keep conversions of any size (the tiny model's are far under MIN_BYTES)."""
    monkeypatch.setattr(converted, "MIN_BYTES", 0)


def entries(home):
    folder = home / "cache" / converted.FOLDER
    return sorted(folder.glob("*.safetensors")) if folder.is_dir() else []


def load_bf16(model):
    return load_module(UNet3DConditionModel, model, "unet", "diffusion_pytorch_model", torch.bfloat16, None)


def assert_same(model, ref):
    got, want = model.state_dict(), ref.state_dict()
    assert got.keys() == want.keys()
    assert all(got[k].dtype == want[k].dtype and torch.equal(got[k], want[k]) for k in want)


def test_the_first_load_keeps_its_conversion_and_every_load_maps_it(tiny_model, t2v_env, keep_all, monkeypatch):
    ref = UNet3DConditionModel.from_pretrained(tiny_model, subfolder="unet", dtype=torch.bfloat16)
    first = load_bf16(tiny_model)
    (entry,) = entries(t2v_env)
    assert_same(first, ref)
    stored = {k: v for k, v in load_file(entry).items() if not k.startswith(converted.PAD)}  # valid safetensors
    assert stored.keys() == ref.state_dict().keys()
    assert all(v.dtype == torch.bfloat16 and torch.equal(v, ref.state_dict()[k]) for k, v in stored.items())

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr(converted, "read_converted", no_conversion)
    second = load_bf16(tiny_model)
    assert_same(second, ref)
    assert all(p.data_ptr() % converted.ALIGN == 0 for p in [*first.parameters(), *second.parameters()])
    assert entries(t2v_env) == [entry]


def test_a_run_before_and_after_the_entry_exists_gives_the_same_frames(tiny_model, t2v_env, keep_all):
    def frames():
        clear_cache()
        req = GenerationRequest(prompt="a red circle moving right", model=str(tiny_model), seed=5, dtype="bf16",
                                formats=())
        return generate(req).frames

    first = frames()
    assert len(entries(t2v_env)) >= 2  # the UNet's and the VAE's conversions at least
    assert np.array_equal(frames(), first)


def test_a_damaged_entry_is_converted_again(tiny_model, t2v_env, keep_all):
    ref = UNet3DConditionModel.from_pretrained(tiny_model, subfolder="unet", dtype=torch.bfloat16)
    load_bf16(tiny_model)
    (entry,) = entries(t2v_env)
    size = entry.stat().st_size
    for damage in (lambda: os.truncate(entry, size - 100), lambda: entry.write_bytes(b"\xff" * 64)):
        damage()
        assert_same(load_bf16(tiny_model), ref)
        assert entries(t2v_env) == [entry] and entry.stat().st_size == size  # written again, whole


def test_another_file_or_dtype_is_another_entry(model_copy, t2v_env, keep_all):
    load_bf16(model_copy)
    load_module(UNet3DConditionModel, model_copy, "unet", "diffusion_pytorch_model", torch.float16, None)
    assert len(entries(t2v_env)) == 2
    torch.manual_seed(7)
    changed = UNet3DConditionModel.from_pretrained(model_copy, subfolder="unet")
    for p in changed.parameters():
        p.data.normal_()
    changed.save_pretrained(model_copy / "unet")
    assert_same(load_bf16(model_copy), changed.to(torch.bfloat16))  # not the stale entry
    assert len(entries(t2v_env)) == 3


def test_nothing_is_kept_when_off_small_or_without_room(tiny_model, t2v_env, keep_all, monkeypatch):
    ref = UNet3DConditionModel.from_pretrained(tiny_model, subfolder="unet", dtype=torch.bfloat16)
    monkeypatch.setenv("T2V_CONVERTED_CACHE", "0")
    assert_same(load_bf16(tiny_model), ref)
    monkeypatch.delenv("T2V_CONVERTED_CACHE")
    monkeypatch.setattr(converted, "MIN_BYTES", 64 << 20)
    assert_same(load_bf16(tiny_model), ref)
    monkeypatch.setattr(converted, "MIN_BYTES", 0)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(1 << 30, 1 << 30, 1000))
    assert_same(load_bf16(tiny_model), ref)
    assert entries(t2v_env) == []


def test_entries_unused_for_a_month_are_pruned(tmp_path):
    old, recent = tmp_path / "old.safetensors", tmp_path / "recent.safetensors"
    for p in (old, recent):
        p.write_bytes(b"x")
    month_ago = time.time() - converted.MAX_AGE_S - 60
    os.utime(old, (month_ago, month_ago))
    assert converted.prune(tmp_path) == [old]
    assert recent.exists() and not old.exists()
