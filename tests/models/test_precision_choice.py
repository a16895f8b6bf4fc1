"""``--dtype auto`` on the CPU: bf16 where the CPU has native bf16 arithmetic, fp32 elsewhere, and the reason
recorded; speed options are checked before loading and honoured from the settings."""

from __future__ import annotations

import pytest

import t2v
from t2v.errors import InvalidRequest
from t2v.models import device as device_mod
from t2v.models.device import cpu_bf16_flags, plan_device
from t2v.request import GenerationRequest
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


def test_auto_bf16_run_is_recorded(tiny_model, monkeypatch):
    monkeypatch.setattr(device_mod, "cpu_bf16_flags", lambda: ("amx_bf16",))
    monkeypatch.delenv("T2V_CPU_BF16")
    req = GenerationRequest(prompt="a red circle", model=str(tiny_model), num_frames=2, width=32, height=32,
                            num_inference_steps=2, seed=1, formats=())
    rec = t2v.generate(req).record
    assert rec["dtype"] == "bf16" and "amx_bf16" in rec["dtype_reason"]
    assert rec["attention"] == "auto" and rec["compile"] is False and rec["weights"] == "auto"
    monkeypatch.setenv("T2V_CPU_BF16", "0")
    rec = t2v.generate(req).record
    assert rec["dtype"] == "fp32" and rec["dtype_reason"] == "auto: fp32 (T2V_CPU_BF16=0)"


def test_speed_options_are_spelled_and_checked_before_loading(tiny_model, tiny_sd_model):
    from t2v.generation import resolve

    req = GenerationRequest.create(prompt="x", model=str(tiny_model), cache="DeepCache:interval=2")
    assert req.cache == "deepcache:branch=0,interval=2"
    for fields, text in ((dict(cache="fbc:threshold=1.5"), "nearest valid: 1.0"),
                         (dict(cache="ghost"), "choose one of: deepcache"),
                         (dict(attention="fast"), "choose one of: auto, sdpa"),
                         (dict(weights="fp4"), "choose one of: auto, fp8")):
        with pytest.raises(InvalidRequest, match=text) as e:
            GenerationRequest.create(prompt="x", **fields)
        assert e.value.field == next(iter(fields))
    from t2v.sequence.request import ImageRequest

    with pytest.raises(InvalidRequest, match="only video requests") as e:
        resolve(ImageRequest.create(prompt="x", model=str(tiny_sd_model), cache="deepcache"), get_settings())
    assert e.value.field == "cache"


def test_settings_fill_speed_options_a_request_leaves_unset(tiny_model, monkeypatch):
    from t2v.generation import resolve

    monkeypatch.setenv("T2V_ATTENTION", "sdpa")
    req = resolve(GenerationRequest(prompt="x", model=str(tiny_model)), get_settings())
    assert req.attention == "sdpa"
    req = resolve(GenerationRequest(prompt="x", model=str(tiny_model), attention="auto"), get_settings(attention="auto"))
    assert req.attention == "auto"
