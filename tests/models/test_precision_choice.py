"""``--dtype auto`` on the CPU: bf16 where the CPU has native bf16 arithmetic, fp32 elsewhere, and the reason
recorded; speed options are checked before loading and honoured from the settings."""

from __future__ import annotations

import pytest

import t2v
from t2v.errors import InvalidRequest
from t2v.models import device as device_mod
from t2v.models.device import cpu_bf16_flags, plan_device
from t2v.requests import GenerationRequest
from t2v.settings import get_settings

SAPPHIRE = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_tile amx_bf16 amx_int8\n"
ZEN3 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n"


def test_cpu_flags_are_read_from_cpuinfo():
    assert cpu_bf16_flags(SAPPHIRE) == ("avx512_bf16", "amx_bf16")
    assert cpu_bf16_flags(ZEN3) == ()
    assert cpu_bf16_flags("") == ()


@pytest.mark.parametrize("cpuinfo, dtype", [(SAPPHIRE, "bf16"), (ZEN3, "fp32")])
def test_auto_follows_the_cpu(monkeypatch, cpuinfo, dtype):
    monkeypatch.setattr(device_mod, "cpu_bf16_flags", lambda: cpu_bf16_flags(cpuinfo))
    plan = plan_device("cpu", "auto")
    assert plan.dtype == dtype
    assert plan.reason.startswith(f"auto: {dtype}")
    assert ("avx512_bf16" in plan.reason) == (dtype == "bf16")
    # an explicit dtype is never second-guessed
    assert plan_device("cpu", "fp32").dtype == "fp32" and plan_device("cpu", "bf16").dtype == "bf16"


def test_the_setting_pins_the_choice(monkeypatch):
    monkeypatch.setattr(device_mod, "cpu_bf16_flags", lambda: ("avx512_bf16",))
    assert plan_device("cpu", "auto", cpu_bf16=False).dtype == "fp32"
    monkeypatch.setattr(device_mod, "cpu_bf16_flags", lambda: ())
    assert plan_device("cpu", "auto", cpu_bf16=True).dtype == "bf16"
    monkeypatch.setenv("T2V_CPU_BF16", "1")
    assert get_settings().cpu_bf16 is True


UNET = "unet/diffusion_pytorch_model.safetensors"


def _folder(root, sizes: dict[str, int]):
    """A model folder whose weight files (paths relative to it) have the given sizes (sparse: no disk used)."""
    for rel, size in sizes.items():
        f = root / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        with open(f, "wb") as fh:
            fh.truncate(size)
    return root


def test_denoiser_size_is_read_from_the_folder(tmp_path):
    from t2v.models.device import denoiser_bytes

    assert denoiser_bytes(tmp_path) is None
    big = _folder(tmp_path / "a", {UNET: 300 << 20, "unet/diffusion_pytorch_model.fp16.safetensors": 150 << 20,
                                   "unet/config.json": 1000, "vae/diffusion_pytorch_model.safetensors": 5 << 30})
    assert denoiser_bytes(big) == 300 << 20  # the plain files, not the fp16 variant beside them; the VAE is no denoiser
    shards = _folder(tmp_path / "b", {**{f"transformer/diffusion_pytorch_model-0000{i}-of-00002.safetensors": 10 << 20
                                         for i in (1, 2)}, "transformer_2/diffusion_pytorch_model.safetensors": 1 << 20})
    assert denoiser_bytes(shards) == 21 << 20
    assert denoiser_bytes(_folder(tmp_path / "c", {"unet/diffusion_pytorch_model.fp16.safetensors": 7})) == 7


def test_auto_keeps_small_denoisers_in_fp32_on_a_bf16_cpu(tmp_path, monkeypatch):
    from t2v.models.device import CPU_BF16_MIN_DENOISER_BYTES, fit_to_model

    monkeypatch.setattr(device_mod, "cpu_bf16_flags", lambda: ("avx512_bf16",))
    small = _folder(tmp_path / "small", {UNET: 10 << 20})
    large = _folder(tmp_path / "large", {UNET: CPU_BF16_MIN_DENOISER_BYTES})
    auto = plan_device("cpu", "auto")
    assert auto.dtype == "bf16"
    plan = fit_to_model(auto, small)
    assert plan.dtype == "fp32" and "small (10 MB" in plan.reason and plan.device == "cpu"
    assert fit_to_model(auto, large) is auto
    # an explicit dtype, or T2V_CPU_BF16=1, is never second-guessed; nor a machine without native bf16
    assert fit_to_model(plan_device("cpu", "bf16"), small, asked="bf16").dtype == "bf16"
    assert fit_to_model(plan_device("cpu", "auto", cpu_bf16=True), small, cpu_bf16=True).dtype == "bf16"
    monkeypatch.setattr(device_mod, "cpu_bf16_flags", lambda: ())
    assert fit_to_model(plan_device("cpu", "auto"), small).reason.startswith("auto: fp32, the CPU has no native")


def test_auto_bf16_run_is_recorded(tiny_model, monkeypatch):
    monkeypatch.setattr(device_mod, "cpu_bf16_flags", lambda: ("amx_bf16",))
    monkeypatch.delenv("T2V_CPU_BF16")
    req = GenerationRequest(prompt="a red circle", model=str(tiny_model), num_frames=2, width=32, height=32,
                            num_inference_steps=2, seed=1, formats=())
    rec = t2v.generate(req).record  # the tiny model's UNet is far under the bf16 threshold: fp32, and why
    assert rec["dtype"] == "fp32" and "denoiser is small" in rec["dtype_reason"]
    monkeypatch.setattr(device_mod, "CPU_BF16_MIN_DENOISER_BYTES", 0)  # as a large model would
    rec = t2v.generate(req).record
    assert rec["dtype"] == "bf16" and "amx_bf16" in rec["dtype_reason"]
    assert rec["attention"] == "auto" and rec["compile"] is False and rec["weights"] == "auto"
    monkeypatch.setenv("T2V_CPU_BF16", "0")
    rec = t2v.generate(req).record
    assert rec["dtype"] == "fp32" and rec["dtype_reason"] == "auto: fp32 (T2V_CPU_BF16=0)"


def test_speed_options_are_spelled_and_checked_before_loading(tiny_model, tiny_sd_model):
    from t2v.runner.resolve import resolve

    req = GenerationRequest.create(prompt="x", model=str(tiny_model), cache="DeepCache:interval=2")
    assert req.cache == "deepcache:branch=0,interval=2"
    for fields, text in ((dict(cache="fbc:threshold=1.5"), "nearest valid: 1.0"),
                         (dict(cache="ghost"), "choose one of: deepcache"),
                         (dict(attention="fast"), "choose one of: auto, sdpa"),
                         (dict(weights="fp4"), "choose one of: auto, fp8")):
        with pytest.raises(InvalidRequest, match=text) as e:
            GenerationRequest.create(prompt="x", **fields)
        assert e.value.field == next(iter(fields))
    from t2v.requests import ImageRequest

    with pytest.raises(InvalidRequest, match="only video requests") as e:
        resolve(ImageRequest.create(prompt="x", model=str(tiny_sd_model), cache="deepcache"), get_settings())
    assert e.value.field == "cache"


def test_settings_fill_speed_options_a_request_leaves_unset(tiny_model, monkeypatch):
    from t2v.runner.resolve import resolve

    monkeypatch.setenv("T2V_ATTENTION", "sdpa")
    req = resolve(GenerationRequest(prompt="x", model=str(tiny_model)), get_settings())
    assert req.attention == "sdpa"
    req = resolve(GenerationRequest(prompt="x", model=str(tiny_model), attention="auto"), get_settings(attention="auto"))
    assert req.attention == "auto"
