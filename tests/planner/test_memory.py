"""The memory planner: predictions against measurements, plan choice, and plans not changing the frames.

Adds about a minute and a half: the peak-RSS predictions are checked against processes of their own (one per plan
and allocator setting, each running a model), and the planner's dry runs are compared with the estimates scaled
from them."""

from __future__ import annotations

import json
from pathlib import Path
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from t2v.cli import app
from t2v.errors import InvalidRequest
from t2v import generate
from t2v.families import family_of_folder
from t2v.planner import memory
from t2v.requests import GenerationRequest
from tests.forkserver import run_python

# The tests that make, count and cache dry runs themselves start without any (``own_dry_runs``); the others share
# the run's dry runs (tests/conftest.py), as a long-lived process does.

MEASURE = r"""
import json, resource, sys
from t2v import generate
from t2v.families import family_of_folder
from t2v.planner.memory import predict
from t2v.requests import GenerationRequest
req = GenerationRequest(prompt="a red circle moving right", model=sys.argv[1], seed=1, num_frames=16, width=128,
                        height=128, num_inference_steps=2, guidance_scale=9.0, formats=(), memory=sys.argv[2])
pred = predict(sys.argv[1], req, family=family_of_folder(sys.argv[1]), plan=sys.argv[2], device="cpu", dtype="fp32", measure_speed=False)
generate(req)
# VmHWM is this process's own peak; ru_maxrss would start from the parent's RSS at fork.
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]
peak = int(hwm[0].split()[1]) * 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"predicted": pred.peak_bytes, "measured": peak}))
"""


_MEASURED: dict[tuple, dict] = {}


def _measure(model, plan: str, **env) -> dict:
    """One fresh process's predicted and measured peak for ``plan`` under ``env``. Each configuration is measured
    once per session: the threshold comparison reuses the ratio tests' own measurements of the same two setups."""
    key = (str(model), plan, env.get("T2V_MMAP_THRESHOLD_KB", "0"))  # 0 (the setting's default): glibc's own
    if key not in _MEASURED:
        _MEASURED[key] = _run_measure(model, plan, **env)
    return _MEASURED[key]


def _run_measure(model, plan: str, **env) -> dict:
    """In a process of its own: a fork of the tests' fork server (tests/forkserver.py), which has imported torch,
    diffusers and t2v and run no model code, so the process's peak is this run's alone."""
    import os

    out = run_python(MEASURE, [model, plan], env={**os.environ, **env})
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("threshold_kb", ["0", "128"], ids=["glibc-default", "fixed-mmap"])
@pytest.mark.parametrize("plan", ["speed", "low"])
def test_predicted_peak_rss_close_to_measured(tiny_model, plan, threshold_kb):
    # The target: within 25%. With glibc's dynamic threshold (the default) the measured peak varies
    # from run to run (628-748 MB against 641 predicted); with a fixed threshold it is 586 MB against 559.
    numbers = _measure(tiny_model, plan, T2V_MMAP_THRESHOLD_KB=threshold_kb)
    ratio = numbers["predicted"] / numbers["measured"]
    assert 0.75 <= ratio <= 1.25, numbers


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning")
def test_fixed_mmap_threshold_lowers_the_peak_rss(tiny_model):
    tuned = _measure(tiny_model, "speed", T2V_MMAP_THRESHOLD_KB="128")
    default = _measure(tiny_model, "speed", T2V_MMAP_THRESHOLD_KB="0")
    assert tuned["measured"] < default["measured"], (tuned, default)  # measured: 586 vs 628-748 MB
    assert tuned["predicted"] < default["predicted"]  # the planner knows the heap keeps freed blocks


def _req(model, **kw):
    return GenerationRequest(prompt="a cat", model=str(model), seed=3, num_frames=8, width=64, height=64,
                             num_inference_steps=2, guidance_scale=9.0, formats=(), **kw)


def test_leaner_plans_predict_less_activation_memory(tiny_model):
    gpu = {n: memory.predict(tiny_model, _req(tiny_model), family=family_of_folder(tiny_model), plan=n, device="cuda", dtype="fp16", measure_speed=False)
           for n in ("speed", "balanced", "low")}  # a dry run: no GPU needed
    assert gpu["low"].activation_bytes["vae"] < gpu["balanced"].activation_bytes["vae"] < gpu["speed"].activation_bytes["vae"]
    assert gpu["low"].peak_bytes < gpu["speed"].peak_bytes
    p = {n: memory.predict(tiny_model, _req(tiny_model), family=family_of_folder(tiny_model), plan=n, device="cpu", dtype="fp32", measure_speed=False)
         for n in ("speed", "balanced", "low")}
    # On the CPU the VAE decodes at most 2 frames per call in every plan (as fast, less memory).
    assert p["low"].activation_bytes["vae"] < p["balanced"].activation_bytes["vae"] <= p["speed"].activation_bytes["vae"]
    assert p["balanced"].activation_bytes["unet"] <= p["speed"].activation_bytes["unet"]
    assert p["speed"].flops_per_step > 0 and p["speed"].decode_flops > 0
    # Half precision halves weights and activations.
    half = memory.predict(tiny_model, _req(tiny_model), family=family_of_folder(tiny_model), plan="speed", device="cpu", dtype="bf16", measure_speed=False)
    assert sum(half.weights_bytes.values()) * 2 == sum(p["speed"].weights_bytes.values())


def test_auto_picks_the_fastest_plan_that_fits(tiny_model):
    chosen, preds = memory.choose(tiny_model, _req(tiny_model), family=family_of_folder(tiny_model), requested="auto", device="cpu", dtype="fp32")
    assert chosen.name == "speed" and preds[0].fits
    # GPU numbers (a dry run: no GPU needed) tell the three plans apart: a budget of the low plan's peak.
    low = memory.estimate(tiny_model, _req(tiny_model), family=family_of_folder(tiny_model), plan="low", device="cuda", dtype="fp16")
    chosen, preds = memory.choose(tiny_model, _req(tiny_model), family=family_of_folder(tiny_model), requested="auto", device="cuda", dtype="fp16",
                                  budget=low.peak_bytes)
    assert chosen.name == "low" and [(p.plan, p.fits) for p in preds] == [("speed", False), ("balanced", False), ("low", True)]
    # A named plan is used as asked while the leanest one fits.
    chosen, preds = memory.choose(tiny_model, _req(tiny_model), family=family_of_folder(tiny_model), requested="speed", device="cuda", dtype="fp16",
                                  budget=low.peak_bytes)
    assert chosen.name == "speed" and [(p.plan, p.fits) for p in preds] == [("speed", False), ("low", True)]


@pytest.mark.parametrize("requested", ["auto", "speed", "low"])
def test_a_request_no_plan_fits_is_refused(tiny_model, requested):
    # auto, which stores the weights in float8 before it gives up, is refused under the 8-bit low plan's peak
    storage = {"weights": "fp8", "text_encoder_weights": "fp8"} if requested == "auto" else {}
    low = memory.estimate(tiny_model, _req(tiny_model, **storage), family=family_of_folder(tiny_model), plan="low",
                          device="cuda", dtype="fp16")
    with pytest.raises(InvalidRequest) as e:
        memory.choose(tiny_model, _req(tiny_model, memory=requested), family=family_of_folder(tiny_model), requested=requested, device="cuda", dtype="fp16",
                      budget=low.peak_bytes - 1)
    assert e.value.field == "num_frames"
    assert str(e.value).startswith("num_frames, width, height: 8 frames of 64x64 need about ")
    assert ("on cuda even with the leanest memory plan (low)" + (" and the weights stored in fp8" if storage else "")
            + ", over the memory budget of ") in str(e.value)
    assert "at 64x64 at most 7 frames fit" in str(e.value)


def test_on_a_gpu_the_weights_offload_keeps_in_ram_are_counted_and_refused_over_the_ram_budget(tiny_model):
    """The low plan keeps every weight in CPU memory while the GPU runs it block by block: its ``ram_bytes`` hold
    them all (the speed plan's, only the largest component a load passes through), and over the RAM budget a
    plan that fits the GPU does not fit."""
    family = family_of_folder(tiny_model)
    low = memory.estimate(tiny_model, _req(tiny_model), family=family, plan="low", device="cuda", dtype="fp16")
    speed = memory.estimate(tiny_model, _req(tiny_model), family=family, plan="speed", device="cuda", dtype="fp16")
    weights = sum(low.weights_bytes.values())
    assert low.ram_bytes - speed.ram_bytes == weights - max(speed.weights_bytes.values())
    chosen, _ = memory.choose(tiny_model, _req(tiny_model, memory="low"), family=family, requested="low",
                              device="cuda", dtype="fp16", budget=low.peak_bytes, ram_budget=low.ram_bytes)
    assert chosen.name == "low"
    with pytest.raises(InvalidRequest) as e:
        memory.choose(tiny_model, _req(tiny_model, memory="low"), family=family, requested="low", device="cuda",
                      dtype="fp16", budget=low.peak_bytes, ram_budget=low.ram_bytes - 1)
    assert e.value.field == "memory" and "keeps this model's weights in CPU memory" in str(e.value)
    assert "over the RAM budget of" in str(e.value) and "T2V_RAM_BUDGET_GB" in str(e.value)
    cpu = memory.estimate(tiny_model, _req(tiny_model), family=family, plan="low", device="cpu", dtype="fp32")
    assert cpu.ram_bytes == cpu.peak_bytes  # on the CPU the RAM is the peak, checked against the one budget


def test_refusal_says_when_nothing_fits(tiny_model):
    with pytest.raises(InvalidRequest, match="this model does not fit at any size on cpu"):
        memory.choose(tiny_model, _req(tiny_model), family=family_of_folder(tiny_model), requested="auto", device="cpu", dtype="fp32", budget=2**20)


@pytest.mark.parametrize("device,plan,shape", [
    ("cpu", "speed", (24, 128, 128)), ("cpu", "low", (16, 96, 128)), ("cuda", "speed", (24, 128, 128)),
    ("cuda", "low", (16, 96, 128)),  # forward chunking: its dry run at the request's shape takes seconds
])
def test_estimates_scaled_from_one_dry_run_match_the_dry_run(tiny_model, device, plan, shape):
    frames, height, width = shape
    req = _req(tiny_model).model_copy(update={"num_frames": frames, "height": height, "width": width})
    dtype = "fp32" if device == "cpu" else "fp16"
    est = memory.estimate(tiny_model, req, family=family_of_folder(tiny_model), plan=plan, device=device, dtype=dtype)
    exact = memory.predict(tiny_model, req, family=family_of_folder(tiny_model), plan=plan, device=device, dtype=dtype, measure_speed=False)
    # Above the reference shape the estimate errs slightly high (measured: +0.2% to +1.1%).
    assert exact.peak_bytes <= est.peak_bytes <= 1.03 * exact.peak_bytes
    for stage, n in exact.activation_bytes.items():
        assert n <= est.activation_bytes[stage] <= 1.03 * n, stage
    assert est.weights_bytes == exact.weights_bytes


def test_plans_give_the_same_frames(tiny_model):
    speed = generate(_req(tiny_model, memory="speed"))
    low = generate(_req(tiny_model, memory="low"))
    assert speed.record["memory_plan"]["plan"] == "speed" and low.record["memory_plan"]["plan"] == "low"
    assert np.abs(speed.frames.astype(int) - low.frames.astype(int)).max() <= 1
    again = generate(_req(tiny_model, memory="speed"))  # the text encoder freed by "low" is loaded again
    assert np.array_equal(again.frames, speed.frames)


def test_plan_on_a_gpu_lists_the_8_bit_denoiser_and_text_encoder_with_their_memory_and_ram(monkeypatch):
    """``t2v plan`` as it reads on a CUDA machine (the device plan made CUDA; the predictions are dry runs on the
    meta device): the precision table has the denoiser and the text encoder stored in 8 bits, each with its peak
    and the CPU memory it holds (the tiny model's 8-bit savings are under a megabyte: none is more)."""
    import dataclasses
    import re

    from t2v.models.device import DevicePlan
    from t2v.planner import steptime
    from t2v.runner import plan as planning

    from tests.tinymodels import built

    folder = built("wan")
    real = planning.plan_run
    monkeypatch.setattr(planning, "plan_run", lambda *a, **kw: dataclasses.replace(
        real(*a, **kw), device=DevicePlan("cuda", "bf16", reason="auto: bf16")))
    # the times: an H200's (steptime's figures for a GPU it has not measured: its name and no runs)
    monkeypatch.setattr(steptime, "machine", lambda device: "NVIDIA H200")
    monkeypatch.setattr(steptime, "matmul_speed", lambda device, dtype: 500e12)
    monkeypatch.setattr(steptime, "op_cost", lambda device, dtype: 10e-6)
    r = CliRunner().invoke(app, ["plan", "a cat", "--model", str(folder), "--memory", "low"],
                           env={"COLUMNS": "220", "T2V_MEMORY_BUDGET_GB": "1000", "T2V_RAM_BUDGET_GB": "1000"})
    assert r.exit_code == 0, r.output
    rows = {tuple(c.strip() for c in line.split("│")[1:4]): [c.strip() for c in line.split("│")[4:6]]
            for line in r.stdout.splitlines() if line.count("│") >= 8}
    assert {("bf16 ←", "auto", "auto"), ("bf16", "fp8", "auto"), ("bf16", "auto", "int8"), ("bf16", "fp8", "fp8")} \
        <= set(rows), rows

    def mb(cell: str) -> float:
        return float(re.sub("[^0-9.]", "", cell))

    plain, int8 = rows[("bf16 ←", "auto", "auto")], rows[("bf16", "auto", "int8")]
    both = rows[("bf16", "fp8", "fp8")]
    assert mb(both[0]) <= mb(int8[0]) <= mb(plain[0]) and mb(both[1]) <= mb(int8[1]) <= mb(plain[1])
    assert "RAM" in r.stdout and "text encoder" in r.stdout


def test_plan_command(tiny_model):
    runner = CliRunner()
    r = runner.invoke(app, ["plan", "a cat", "--model", str(tiny_model), "--frames", "8"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "speed" in r.stdout and "balanced" in r.stdout and "low" in r.stdout and "peak RSS" in r.stdout
    assert "memory budget:" in r.stdout and "→ the speed plan" in r.stdout
    # precision: the chosen dtype (fp32: the tests pin T2V_CPU_BF16=0) marked, and bf16 predicted beside it
    assert "precision under the speed plan" in r.stdout and "dtype: auto: fp32 (T2V_CPU_BF16=0)" in r.stdout
    assert "fp32 ←" in r.stdout and "bf16" in r.stdout and "no step cache, not compiled" in r.stdout
    fp8 = runner.invoke(app, ["plan", "a cat", "--model", str(tiny_model), "--weights", "fp8", "--dtype", "bf16"],
                        env={"COLUMNS": "200"})
    assert fp8.exit_code == 0 and "bf16 ←" in fp8.stdout
    bad = runner.invoke(app, ["plan", "a cat", "--model", str(tiny_model), "--memory", "tiny"])
    assert bad.exit_code == 2 and "memory" in bad.stderr
    # A request no plan fits: the table still shows what each plan needs, then the refusal `generate` gives.
    huge = runner.invoke(app, ["plan", "a cat", "--model", str(tiny_model), "--frames", "512", "--width", "2048",
                               "--height", "2048"], env={"COLUMNS": "200"})
    assert huge.exit_code == 2 and "low" in huge.stdout and "→" not in huge.stdout
    assert "num_frames, width, height: 512 frames of 2048x2048 need about" in huge.stderr


@pytest.mark.own_dry_runs
def test_dry_runs_are_cached_on_disk_per_architecture_and_shape(tiny_model, tmp_path, monkeypatch):
    """A fresh process reads a dry run another made (no meta run); another architecture or shape measures again."""
    import shutil

    from t2v.planner import dryruns

    monkeypatch.setenv("T2V_HOME", str(tmp_path / "home"))
    req = _req(tiny_model)

    def fresh() -> None:  # what a new process starts with: nothing in memory
        dryruns.forget_memo()
        memory._dry_run.cache_clear()
        memory._reference.cache_clear()

    fresh()
    first = memory.predict(tiny_model, req, family=family_of_folder(tiny_model), plan="speed", device="cpu", dtype="fp32", measure_speed=False)
    assert (tmp_path / "home" / "cache" / dryruns.CACHE_NAME).is_file()
    measured = []
    real = memory._measure_locked
    monkeypatch.setattr(memory, "_measure_locked", lambda *a: measured.append(a) or real(*a))
    fresh()
    again = memory.predict(tiny_model, req, family=family_of_folder(tiny_model), plan="speed", device="cpu", dtype="fp32", measure_speed=False)
    assert measured == [] and repr(again) == repr(first)  # read from disk, the same prediction (nan: no speed)

    other = tmp_path / "other"  # another config.json (the key covers every byte of them): measured again
    shutil.copytree(tiny_model, other)
    config = json.loads((other / "unet" / "config.json").read_text())
    config["_t2v_test"] = 1
    (other / "unet" / "config.json").write_text(json.dumps(config))
    assert dryruns.architecture_hash(other) != dryruns.architecture_hash(tiny_model)
    fresh()
    memory.predict(other, _req(other), family=family_of_folder(other), plan="speed", device="cpu", dtype="fp32", measure_speed=False)
    memory.predict(tiny_model, GenerationRequest(**{**req.model_dump(), "num_frames": 4}), family=family_of_folder(tiny_model), plan="speed",
                   device="cpu", dtype="fp32", measure_speed=False)
    assert len(measured) == 2
    (tmp_path / "home" / "cache" / dryruns.CACHE_NAME).write_text("{not json")  # corrupt: measured again
    fresh()
    assert repr(memory.predict(tiny_model, req, family=family_of_folder(tiny_model), plan="speed", device="cpu", dtype="fp32", measure_speed=False)) == repr(first)
    assert len(measured) == 3


@pytest.mark.own_dry_runs
def test_planning_from_a_warm_dry_run_cache_builds_no_meta_modules(tiny_model, tmp_path, monkeypatch):
    """``choose`` (every video run) in a fresh process with the dry run on disk: the reference shape comes from
    the configs, so no meta UNet/VAE/text encoder is built (seconds for a full-size model)."""
    from t2v.families import modelscope
    from t2v.runtime import Runtime, current, using

    monkeypatch.setenv("T2V_HOME", str(tmp_path / "home"))
    req = _req(tiny_model)
    memory.estimate(tiny_model, req, family=family_of_folder(tiny_model), plan="speed", device="cpu", dtype="fp32")  # on disk
    _, warm = memory.choose(tiny_model, req, family=family_of_folder(tiny_model), requested="auto", device="cpu", dtype="fp32", budget=2**40)
    memory._reference.cache_clear()
    process = current()
    with using(Runtime()) as fresh:  # what a fresh process has: no dry runs in memory, no meta modules
        fresh.cache("baseline-rss", lambda runtime: dict(process.cache("baseline-rss", dict)))  # the same baseline
        _, again = memory.choose(tiny_model, req, family=family_of_folder(tiny_model), requested="auto", device="cpu", dtype="fp32", budget=2**40)
        assert "meta-modules" not in fresh.sizes() and fresh.sizes()["dry-runs"] == 1 and repr(again) == repr(warm)
        modelscope.meta_modules_cached(modelscope.ModelScopeFamily(), tiny_model)
        assert fresh.sizes()["meta-modules"] == 1  # the check above can fail: building them is counted
    assert modelscope.ModelScopeFamily().reference_shape(tiny_model) == (8, 64)


@pytest.mark.parametrize("kind", ["hunyuan15", "ltx2"])
def test_estimates_of_transformers_whose_reference_is_mostly_text_follow_the_dry_run(kind, tmp_path):
    """At the reference shape these transformers carry far more text tokens than video tokens, so their numbers
    do not grow in proportion with the video: the planner fits them through three reference dry runs (fixed,
    per token, per token pair). Scaled to a larger clip they stay at or a little above a dry run at that shape,
    under every plan (HunyuanVideo 1.5's low plan decodes in tiles, from a measured tile)."""
    from tests.tinymodels import make_tiny_model

    model = make_tiny_model(kind, tmp_path / kind, seed=0)
    for frames, width, height in ((33, 256, 256), (65, 512, 320)):
        req = GenerationRequest(prompt="x", width=width, height=height, num_frames=frames, guidance_scale=5.0)
        for plan in ("speed", "low"):
            est = memory.estimate(model, req, family=family_of_folder(model), plan=plan, device="cuda", dtype="bf16")
            exact = memory.predict(model, req, family=family_of_folder(model), plan=plan, device="cuda", dtype="bf16", measure_speed=False)
            # measured in bf16, the tiny HunyuanVideo 1.5's denoiser (its dense mask does not halve) sets the low
            # plan's peak; its fit, extrapolated far past the reference's tokens, lands up to 1.45x high
            assert exact.peak_bytes <= est.peak_bytes <= 1.5 * exact.peak_bytes, (frames, plan)
            act = exact.activation_bytes["transformer"]
            assert act <= est.activation_bytes["transformer"] <= 1.5 * act, (frames, plan)


def test_half_precision_dry_runs_count_what_the_model_computes_in_fp32():
    """A bf16 run's norms and modulation upcast with ``.float()`` hold fp32 tensors. The dry run of a half-precision
    run measures in bf16, so they count at their size; an fp32 dry run halved missed them (on an H200, the
    full-size HunyuanVideo 1.5 denoiser peaked 11.1 GiB above its weights; halved fp32 said 6.1, bf16 says 10.1)."""
    import torch

    from t2v.planner.precision import cast, meta_kwargs, measuring

    class Upcasts(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(256, 256)

        def forward(self, x):
            return (torch.nn.functional.normalize(self.proj(x).float(), dim=-1) * 2).to(x.dtype)

    def peak(half: bool) -> int:
        with measuring(half):
            with torch.device("meta"):
                m = cast({"m": Upcasts()})["m"]
            x = torch.zeros(1024, 256, **meta_kwargs())
            assert x.dtype == (torch.bfloat16 if half else torch.float32) and m.proj.weight.dtype == x.dtype
            return memory.meta_cost(lambda: m(x)).peak

    fp32, bf16 = peak(False), peak(True)
    assert bf16 > fp32 // 2 + 1024 * 256 * 2  # at least one fp32 copy more than half of the fp32 run
    assert meta_kwargs()["dtype"] == torch.float32  # outside measuring(): fp32 again


@pytest.mark.own_dry_runs
def test_a_half_precision_plan_is_measured_in_bf16_and_cached_apart(tiny_model, tmp_path, monkeypatch):
    from t2v.planner import dryruns

    monkeypatch.setenv("T2V_HOME", str(tmp_path))
    dryruns.forget_memo()
    memory._dry_run.cache_clear()
    req = _req(tiny_model)
    half = memory.predict(tiny_model, req, family=family_of_folder(tiny_model), plan="speed", device="cuda", dtype="fp16", measure_speed=False)
    full = memory.predict(tiny_model, req, family=family_of_folder(tiny_model), plan="speed", device="cuda", dtype="fp32", measure_speed=False)
    assert half.activation_bytes != full.activation_bytes
    runs = json.loads((tmp_path / "cache" / dryruns.CACHE_NAME).read_text())["runs"]
    assert sorted(json.loads(k)[7] for k in runs) == [False, True]  # one per precision


@pytest.mark.own_dry_runs
def test_a_dry_run_cached_by_other_planner_or_family_code_is_measured_again(tiny_model, tmp_path, monkeypatch):
    """The cache key holds a hash of the planner's and the families' source: a cached run made by other code
    (a changed ``measure``) is not reused, though t2v's version is the same."""
    from t2v.planner import dryruns

    monkeypatch.setenv("T2V_HOME", str(tmp_path))
    req = _req(tiny_model)
    measured = []
    real = memory._measure_locked
    monkeypatch.setattr(memory, "_measure_locked", lambda *a: measured.append(a) or real(*a))

    def plan() -> None:
        dryruns.forget_memo()
        memory._dry_run.cache_clear()
        memory.predict(tiny_model, req, family=family_of_folder(tiny_model), plan="speed", device="cpu", dtype="fp32", measure_speed=False)

    plan()
    plan()
    assert len(measured) == 1  # the second read the first from disk
    assert len(dryruns.source_hash()) == 16
    monkeypatch.setattr(dryruns, "source_hash", lambda: "0" * 16)
    plan()
    assert len(measured) == 2


# Wan 2.1 1.3B's configs as benchmarks/gpu.py builds the model (its text encoder one layer of UMT5-XXL's width): the
# planner builds it on the meta device, so no weights are needed.
WAN_CONFIGS = Path(__file__).parent / "data" / "wan21-1.3b-configs"


def test_the_full_size_wan_low_plan_prediction_matches_what_an_h200_measured():
    """benchmarks/gpu_capped.py on an H200, 832x480x81, guidance 5, bf16, under low (the transformer's blocks
    streamed one at a time, the VAE decoding in tiles): 1.82 GiB. The estimate is within 10% and never more than
    2% under; before, it read 4.61 GiB (the untiled decode, the whole transformer). (Under speed: 7.35 GiB
    measured, 7.77 estimated; not checked here, its untiled decode's dry run takes half a minute.)"""
    req = GenerationRequest(prompt="x", width=832, height=480, num_frames=81, guidance_scale=5.0, num_inference_steps=10)
    est = memory.estimate(WAN_CONFIGS, req, family=family_of_folder(WAN_CONFIGS), plan="low", device="cuda",
                          dtype="bf16").peak_bytes / 2**30
    assert 0.98 * 1.82 <= est <= 1.10 * 1.82, est


def test_a_streamed_transformer_counts_its_other_layers_and_three_blocks():
    from t2v.families.meta import blocks, meta_modules

    modules = meta_modules(str(WAN_CONFIGS))
    tr = modules["transformer"]
    sizes = [sum(p.numel() for p in block.parameters()) for block in tr.blocks]
    total = sum(p.numel() for p in tr.parameters())
    assert len(sizes) == 30 and blocks(modules)["transformer"] == [sum(sizes), max(sizes)]
    dry = {"params": {"transformer": total}, "blocks": blocks(modules)}
    streamed = memory.streamed_bytes("transformer", 2 * total, dry)
    assert streamed == int(2 * total * (total - sum(sizes) + memory.STREAM_DEPTH * max(sizes)) / total)
    assert streamed < 0.15 * 2 * total  # about a tenth of the weights on the device
    assert memory.streamed_bytes("transformer", 2 * total, {"params": {"transformer": total}}) == 2 * total


def test_the_low_plan_streams_the_real_umt5_xxl_text_encoder_and_fits_wan_13b_in_6_gb(tmp_path):
    """The same folder with Wan's real text encoder (UMT5-XXL: 24 layers, 256k-token vocabulary, 10.6 GiB in
    bf16): under low its layers stream like the transformer's blocks (the embedding and three layers on the
    device), and the prediction stays under 6 GB; moved whole, it alone was 10.6 GiB."""
    import json
    import shutil

    from t2v.families.meta import blocks, meta_modules

    folder = shutil.copytree(WAN_CONFIGS, tmp_path / "wan", dirs_exist_ok=True)
    te = folder / "text_encoder" / "config.json"
    te.write_text(json.dumps({**json.loads(te.read_text()), "num_layers": 24, "vocab_size": 256384}))
    req = GenerationRequest(prompt="x", width=832, height=480, num_frames=81, guidance_scale=5.0, num_inference_steps=10)
    est = memory.estimate(folder, req, family=family_of_folder(folder), plan="low", device="cuda", dtype="bf16")
    text = est.weights_bytes["text_encoder"]
    assert text / 2**30 > 10, "the whole encoder in bf16"
    modules = meta_modules(str(folder))
    total = sum(p.numel() for p in modules["text_encoder"].parameters())
    in_blocks, largest = blocks(modules)["text_encoder"]
    on_device = memory.streamed_bytes("text_encoder", text, {"params": {"text_encoder": total},
                                                             "blocks": {"text_encoder": [in_blocks, largest]}})
    assert on_device == int(text * (total - in_blocks + memory.STREAM_DEPTH * largest) / total) < 0.35 * text
    assert est.peak_bytes / 2**30 < 6.0, est.peak_bytes / 2**30
    assert est.peak_bytes >= on_device + est.activation_bytes["text"], "the text stage is counted streamed"
