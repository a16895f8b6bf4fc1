"""A run planned with the plan it was admitted with: on the same machine the admitted memory plan and prediction
are taken as they are, on another the run is planned again and says why."""

from __future__ import annotations

import json

import pytest

from t2v.requests import GenerationRequest
from t2v.runner import plan as run_plan
from t2v.runner.plan import plan_run
from t2v.settings import Settings

SMALL = {"num_frames": 4, "width": 32, "height": 32, "num_inference_steps": 2}


@pytest.fixture
def planned(tiny_model, tmp_path):
    settings = Settings(home=tmp_path / "home", memory_budget_gb=8)
    request = GenerationRequest.create(prompt="a red square", model=str(tiny_model), seed=1, **SMALL)
    return request, settings, plan_run(request, settings, memory=True, offline=True, times=True)


def test_the_admitted_plan_is_strict_json_with_its_prediction(planned):
    _, _, plan = planned
    admitted = json.loads(json.dumps(plan.admitted(), allow_nan=False))
    assert admitted["prediction"]["plan"] == admitted["memory"] == plan.memory.name
    assert {k: v for k, v in admitted.items() if k != "prediction"} == plan.to_dict()


def test_the_same_machine_takes_the_admitted_plan_without_estimating(planned, monkeypatch):
    request, settings, plan = planned
    admitted = json.loads(json.dumps(plan.admitted(), allow_nan=False))  # as the job row gives it back
    monkeypatch.setattr(run_plan, "choose", lambda *a, **k: pytest.fail("planned again on the same machine"))
    again = plan_run(request, settings, memory=True, times=True, admitted=admitted)
    assert again.memory == plan.memory and again.replanned is None
    assert again.chosen().peak_bytes == plan.chosen().peak_bytes
    assert again.chosen().flops_per_step == plan.chosen().flops_per_step
    assert again.to_dict() == plan.to_dict()


def test_a_plan_kept_without_its_prediction_is_estimated_for_its_memory_plan(planned, monkeypatch):
    request, settings, plan = planned
    asked = []
    choose = run_plan.choose
    monkeypatch.setattr(run_plan, "choose", lambda *a, **k: asked.append(k["requested"]) or choose(*a, **k))
    again = plan_run(request, settings, memory=True, times=True, admitted=plan.to_dict())
    assert asked == [plan.memory.name] and again.memory == plan.memory and again.replanned is None


def test_another_machine_plans_again_and_says_why(planned):
    request, settings, plan = planned
    elsewhere = {**plan.admitted(), "machine": {"device": "cuda", "dtype": "bf16", "budget_gb": 70}}
    again = plan_run(request, settings, memory=True, times=True, admitted=elsewhere)
    assert again.replanned == "admitted on cuda/bf16, 70 GiB, run on cpu/fp32, 8 GiB"
    assert again.to_dict()["replanned"] == again.replanned
