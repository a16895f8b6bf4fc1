"""Predicted step and decode times: operator calls counted by the dry run, and runs on this machine scaling
later predictions (t2v.planner.steptime)."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from t2v.cli import app
from t2v import generate
from t2v.families import family_of_folder
from t2v.planner import memory, steptime
from t2v.requests import GenerationRequest

pytestmark = pytest.mark.own_dry_runs  # these tests make, count and cache dry runs themselves


def _req(model, **kw) -> GenerationRequest:
    base = dict(prompt="a red circle moving right", model=str(model), seed=1, num_frames=8, width=64, height=64,
                num_inference_steps=3, guidance_scale=9.0, formats=())
    return GenerationRequest(**{**base, **kw})


@pytest.fixture
def fixed_machine(monkeypatch):
    """A machine with known speeds: 1 GFLOP/s and 1 ms per operator call, so estimates are exact numbers."""
    monkeypatch.setattr(steptime, "matmul_speed", lambda device, dtype: 1e9)
    monkeypatch.setattr(steptime, "op_cost", lambda device, dtype: 1e-3)


def test_the_block_timed_for_the_cost_per_call_makes_the_calls_it_divides_by():
    block = steptime._block("cpu", "fp32")
    with torch.inference_mode():
        counted = memory.meta_cost(block)
    assert counted.ops == steptime.BLOCK_CALLS
    assert 0 < counted.flops <= steptime.BLOCK_FLOPS  # the counter leaves out the CPU attention kernel's
    assert steptime.op_cost("cpu", "fp32") > 0 and steptime.matmul_speed("cpu", "fp32") > 1e8


def test_dry_run_counts_operator_calls_per_step_and_per_decode_call(tiny_model):
    short = memory.predict(tiny_model, _req(tiny_model), family=family_of_folder(tiny_model), plan="speed", device="cpu", dtype="fp32", measure_speed=False)
    long = memory.predict(tiny_model, _req(tiny_model, num_frames=16), family=family_of_folder(tiny_model), plan="speed", device="cpu", dtype="fp32",
                          measure_speed=False)
    assert short.step_ops > 100 and long.step_ops == short.step_ops  # the same layers, on more frames
    # The CPU decodes 2 frames a call: 4 calls for 8 frames, 8 for 16.
    assert long.decode_ops == 2 * short.decode_ops > 0
    scaled = memory.estimate(tiny_model, _req(tiny_model, num_frames=16), family=family_of_folder(tiny_model), plan="speed", device="cpu", dtype="fp32")
    assert (scaled.step_ops, scaled.decode_ops) == (long.step_ops, long.decode_ops)


def test_estimate_is_flops_at_the_matmul_speed_plus_the_calls(fixed_machine):
    work = steptime.Work(step_flops=2_000_000_000, step_ops=500, decode_flops=1_000_000_000, decode_ops=100)
    assert steptime.estimate(work, "cpu", "fp32") == pytest.approx((2.5, 1.1))
    times = steptime.predict(work, None, "cpu", "fp32")
    assert (times.step_s, times.decode_s, times.runs) == pytest.approx((2.5, 1.1, 0))


def test_runs_scale_later_predictions_of_their_key_only(fixed_machine):
    then = steptime.Work(step_flops=1_000_000_000, step_ops=1000, decode_flops=1_000_000_000, decode_ops=0)  # 2 s, 1 s
    key = json.dumps(["arch", "cpu", "fp32"])
    steptime.observe(key, then, steps=4, denoise_s=24.0, decode_s=1.5)  # measured: 6 s a step (3x), decode 1.5x
    bigger = steptime.Work(step_flops=3_000_000_000, step_ops=1000, decode_flops=2_000_000_000, decode_ops=0)
    times = steptime.predict(bigger, key, "cpu", "fp32")
    assert times.runs == 1
    assert times.step_s == pytest.approx(3 * 4.0) and times.decode_s == pytest.approx(1.5 * 2.0)
    assert steptime.predict(bigger, json.dumps(["arch", "cpu", "bf16"]), "cpu", "fp32").runs == 0

    steptime.observe(key, then, steps=4, denoise_s=8.0, decode_s=1.0)  # 1x and 1x: the median of 3x and 1x is 2x
    assert steptime.predict(bigger, key, "cpu", "fp32").step_s == pytest.approx(2 * 4.0)
    for _ in range(steptime.KEPT + 2):
        steptime.observe(key, then, steps=4, denoise_s=8.0, decode_s=1.0)
    stored = json.loads((steptime.cache_path(steptime.CACHE_NAME)).read_text())["keys"][key]["runs"]
    assert len(stored) == steptime.KEPT
    times = steptime.predict(bigger, key, "cpu", "fp32")
    assert (times.step_s, times.runs) == (pytest.approx(4.0), steptime.KEPT)

    steptime.observe(key, then, steps=0, denoise_s=8.0, decode_s=1.0)  # nothing measured: not kept
    assert len(json.loads(steptime.cache_path(steptime.CACHE_NAME).read_text())["keys"][key]["runs"]) == steptime.KEPT


def test_damaged_step_times_are_ignored(fixed_machine):
    file = steptime.cache_path(steptime.CACHE_NAME)
    file.parent.mkdir(parents=True, exist_ok=True)
    work = steptime.Work(1_000_000_000, 0, 1_000_000_000, 0)
    file.write_text(json.dumps({"version": 1, "keys": {"k": {"runs": [{"step_flops": "x"}, {"step_s": 1}]}}}))
    assert steptime.predict(work, "k", "cpu", "fp32").runs == 0
    file.write_text("{not json")
    assert steptime.predict(work, "k", "cpu", "fp32").runs == 0
    steptime.observe("k", work, steps=1, denoise_s=2.0, decode_s=2.0)  # replaces the damaged file
    assert steptime.predict(work, "k", "cpu", "fp32").step_s == pytest.approx(2.0)


def test_a_run_keeps_its_times_and_plan_scales_by_them(tiny_model):
    request = _req(tiny_model)
    # Measured first: a run planned from its dry run counts its work (one far under the budget from a bound does not).
    memory.estimate(tiny_model, request, family=family_of_folder(tiny_model), plan="speed", device="cpu", dtype="fp32")
    result = generate(request)
    data = json.loads(steptime.cache_path(steptime.CACHE_NAME).read_text())
    key = memory.run_key(tiny_model, result.request, plan="speed", device="cpu", dtype="fp32")
    [run] = data["keys"][key]["runs"]
    timings = result.record["timings"]
    assert run["step_s"] == pytest.approx(timings["denoise_s"] / 3, abs=1e-4)  # the record rounds to 0.1 ms
    assert run["decode_s"] == pytest.approx(timings["decode_s"], abs=1e-4)
    pred = memory.predict(tiny_model, request, family=family_of_folder(tiny_model), plan="speed", device="cpu", dtype="fp32")
    assert (pred.step_ops, pred.decode_ops) == (run["step_ops"], run["decode_ops"])
    # At the run's own shape the prediction is what the run measured.
    assert pred.time_runs == 1 and pred.est_step_s == pytest.approx(run["step_s"], rel=1e-6)
    assert pred.est_decode_s == pytest.approx(run["decode_s"], rel=1e-6)
    # Another dtype or step cache has its own runs; another memory plan borrows this plan's until it has some.
    assert memory.predict(tiny_model, request, family=family_of_folder(tiny_model), plan="speed", device="cpu", dtype="bf16").time_runs == 0
    deep = request.model_copy(update={"cache": "deepcache"})
    assert memory.predict(tiny_model, deep, family=family_of_folder(tiny_model), plan="speed", device="cpu", dtype="fp32").time_runs == 0
    low = memory.predict(tiny_model, request, family=family_of_folder(tiny_model), plan="low", device="cpu", dtype="fp32")
    assert (low.time_runs, low.time_other_plans) == (1, True)
    low_estimate = steptime.estimate(steptime.Work(low.flops_per_step, low.step_ops, low.decode_flops, low.decode_ops),
                                     "cpu", "fp32")[0]
    speed_estimate = steptime.estimate(steptime.Work.of(run), "cpu", "fp32")[0]
    assert low.est_step_s == pytest.approx(low_estimate * run["step_s"] / speed_estimate, rel=1e-6)  # speed's ratio

    out = CliRunner().invoke(app, ["plan", "a red circle moving right", "--model", str(tiny_model), "--frames", "16",
                                   "--width", "64", "--height", "64", "--memory", "speed", "--dtype", "fp32"],
                             env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    speed_row = next(line for line in out.output.splitlines() if "speed ←" in line)
    assert "1 run" in speed_row
    balanced_row = next(line for line in out.output.splitlines() if line.lstrip("│ ").startswith("balanced"))
    assert "~1 run" in balanced_row
    bf16_row = next(line for line in out.output.splitlines() if line.lstrip("│ ").startswith("bf16"))
    assert "estimate" in bf16_row  # another dtype: nothing to borrow


def test_video_to_video_counts_the_steps_it_ran(tiny_model, tmp_path):
    first = generate(_req(tiny_model, num_inference_steps=4, formats=("mp4",)), output=tmp_path / "in.mp4",
                     on_progress=lambda event: None)
    file = steptime.cache_path(steptime.CACHE_NAME)
    file.unlink()
    # Watched (a progress callback), a run counts its work per step and keeps its step times.
    result = generate(_req(tiny_model, num_inference_steps=4, video=str(tmp_path / "in.mp4"), strength=0.5),
                      on_progress=lambda event: None)
    key = memory.run_key(tiny_model, result.request, plan="speed", device="cpu", dtype="fp32")
    [run] = json.loads(file.read_text())["keys"][key]["runs"]
    assert first.record["timings"]["denoise_s"] > 0
    assert run["step_s"] == pytest.approx(result.record["timings"]["denoise_s"] / 2, abs=1e-4)  # strength 0.5 of 4


def test_measuring_leaves_the_random_generators_as_they_were():
    """The speed is measured inside a run (its ETA): an unseeded draw after it must give what it would have."""
    steptime.matmul_speed.cache_clear()
    steptime.op_cost.cache_clear()
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    steptime.measure_matmul("cpu", "fp32")
    steptime.measure_op_cost("cpu", "fp32")
    assert torch.equal(torch.rand(4), expected)


def test_the_machine_speeds_are_measured_once_per_machine(monkeypatch):
    steptime.matmul_speed.cache_clear()
    steptime.op_cost.cache_clear()
    calls = []
    monkeypatch.setattr(steptime, "measure_matmul", lambda d, t: calls.append("matmul") or 2e9)
    monkeypatch.setattr(steptime, "measure_op_cost", lambda d, t: calls.append("op") or 3e-5)
    assert (steptime.matmul_speed("cpu", "fp32"), steptime.op_cost("cpu", "fp32")) == (2e9, 3e-5)
    steptime.matmul_speed.cache_clear()  # a new process: read from $T2V_HOME/cache, not measured again
    steptime.op_cost.cache_clear()
    assert (steptime.matmul_speed("cpu", "fp32"), steptime.op_cost("cpu", "fp32")) == (2e9, 3e-5)
    assert calls == ["matmul", "op"]
    file = steptime.cache_path(steptime.SPEEDS_NAME)
    [entry] = json.loads(file.read_text())["speeds"].values()
    assert entry == {"matmul_flops": 2e9, "op_cost_s": 3e-5}
    steptime.matmul_speed.cache_clear()
    steptime.op_cost.cache_clear()
