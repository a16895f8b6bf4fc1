"""The first run on a fresh home: the shipped model's dry runs ship with it, a run far under the budget needs none
(its plan comes from an upper bound), and a dry run that is needed is a stage of the record."""

from __future__ import annotations

import json

import pytest

from t2v import generate
from t2v.families import family_of_folder
from t2v.models.registry import lookup
from t2v.planner import bound, dryruns, memory, shipped
from t2v.requests import GenerationRequest

pytestmark = pytest.mark.own_dry_runs  # these tests make, count and cache dry runs themselves


def _req(model, **kw):
    return GenerationRequest(prompt="a cat", model=str(model), seed=3, num_frames=8, width=64, height=64,
                             num_inference_steps=2, guidance_scale=9.0, formats=(), **kw)


@pytest.fixture
def dry_runs(monkeypatch) -> list:
    """The dry runs made (each call of :func:`t2v.planner.memory.measure_now`), still made."""
    made: list = []
    real = memory.measure_now
    monkeypatch.setattr(memory, "measure_now", lambda *a: made.append(a[2:]) or real(*a))
    return made


@pytest.mark.parametrize("half", [False, True], ids=["fp32", "bf16"])
def test_the_shipped_dry_runs_are_what_the_planner_measures_now(half):
    """A changed family ``measure`` (or torch or diffusers) makes this fail: run scripts/ship_dry_runs.py."""
    path = lookup("t2v-shapes").bundled_path
    family = family_of_folder(path)
    frames, side = family.reference_shape(path)
    found = shipped.get(shipped.key(path, frames, side, side, 2, False, 1, half))
    assert found is not None, "no shipped dry run for t2v-shapes: run scripts/ship_dry_runs.py"
    now = memory.measure_now(family, str(path), frames, side, side, 2, False, 1, half)
    assert json.loads(json.dumps(now)) == json.loads(json.dumps(found)), "run scripts/ship_dry_runs.py"


def test_the_shipped_models_first_run_makes_no_dry_run(t2v_env, dry_runs):
    r = generate(GenerationRequest(prompt="a red circle moving right", model="t2v-shapes", seed=0,
                                   num_inference_steps=2, formats=()))
    assert dry_runs == [] and r.record["memory_plan"]["method"] == "estimate"
    assert "dry_run_s" not in r.record["timings"]
    assert not (t2v_env / "cache" / dryruns.CACHE_NAME).exists()  # nothing measured, nothing cached
    # Its estimate needs none at other sizes either, on the CPU and on a GPU (a dry run in bf16, chunked or not).
    path = lookup("t2v-shapes").bundled_path
    req = _req(path).model_copy(update={"num_frames": 16, "width": 128, "height": 96})
    for device, dtype in (("cpu", "fp32"), ("cpu", "bf16"), ("cuda", "bf16")):
        for requested in ("auto", "low"):  # on a GPU, low's dry run chunks the feed-forward: another reference
            _, preds = memory.choose(path, req, family=family_of_folder(path), requested=requested, device=device,
                                     dtype=dtype, budget=2**40)
            assert [p.method for p in preds] == ["estimate"] and preds[0].flops_per_step > 0
    assert dry_runs == []


@pytest.mark.parametrize("shape", [(8, 64, 64), (16, 128, 96)])
@pytest.mark.parametrize("device,dtype", [("cpu", "fp32"), ("cuda", "bf16")])
def test_the_bound_is_above_the_speed_plans_prediction(tiny_model, shape, device, dtype):
    frames, height, width = shape
    req = _req(tiny_model).model_copy(update={"num_frames": frames, "height": height, "width": width})
    family = family_of_folder(tiny_model)
    quick = memory._bounded(tiny_model, req, family=family, device=device, dtype=dtype)
    exact = memory.predict(tiny_model, req, family=family, plan="speed", device=device, dtype=dtype,
                           measure_speed=False)
    assert quick.peak_bytes > exact.peak_bytes and quick.method == "bound"
    assert max(quick.activation_bytes.values()) > max(exact.activation_bytes.values())
    assert sum(quick.weights_bytes.values()) >= sum(exact.weights_bytes.values())


@pytest.mark.parametrize("kind", ["hunyuan15", "hunyuan"])
def test_the_bound_counts_the_text_tokens_a_joint_attention_transformer_holds(kind, tmp_path):
    """These transformers attend over the prompt's tokens and the clip's together: at a small clip the text is most
    of what they hold. The bound counts the text beside the latent positions (twice the prompt tokens the family
    takes), and a text encoder at those tokens rather than at every position its config allows, so a small run of
    HunyuanVideo 1.5 takes its plan from the bound where it used to need a dry run."""
    from tests.tinymodels import make_tiny_model

    model = make_tiny_model(kind, tmp_path / kind, seed=0)
    family = family_of_folder(model)
    req = _req(model).model_copy(update={"num_frames": 9, "guidance_scale": 5.0})
    quick = memory._bounded(model, req, family=family, device="cuda", dtype="bf16")
    exact = memory.predict(model, req, family=family, plan="speed", device="cuda", dtype="bf16", measure_speed=False)
    assert quick.peak_bytes > exact.peak_bytes
    assert max(quick.activation_bytes.values()) > max(exact.activation_bytes.values())
    # (on the GPU: a CPU bound adds this process's own memory, which a long test run grows)
    _, preds = memory.choose(model, req, family=family, requested="auto", device="cuda", dtype="bf16", budget=16 * 2**30)
    assert [p.method for p in preds] == ["bound"]


def test_the_bound_counts_the_prompt_tokens_a_request_asks_for():
    """LTX-2 takes its prompt length from the request or the model's defaults: the bound follows it."""
    from tests.tinymodels import built

    model = built("ltx2")  # read only
    family = family_of_folder(model)
    assert family.prompt_tokens(model, _req(model), {}) == 1024  # LTX2Pipeline's max_sequence_length
    assert family.prompt_tokens(model, _req(model), {"text_tokens": 128}) == 128
    assert family.prompt_tokens(model, _req(model, extras={"text_tokens": 4096}), {"text_tokens": 128}) == 4096
    short, long = (bound.activations(model, 9, 64, 64, 2, text_tokens=n) for n in (128, 4096))
    assert short < long


def test_a_run_far_under_the_budget_skips_the_dry_run_and_says_so(tiny_model, t2v_env, dry_runs):
    # Nobody watches (no terminal, no notebook; ipykernel imported by a notebook runner, as the notebook test
    # does earlier in a worker, is no notebook): a watched run plans from dry runs, for its ETA.
    import ipykernel  # noqa: F401

    chosen, preds = memory.choose(tiny_model, _req(tiny_model), family=family_of_folder(tiny_model),
                                  requested="auto", device="cpu", dtype="fp32", budget=2**40)
    assert chosen.name == "speed" and [(p.plan, p.method, p.fits) for p in preds] == [("speed", "bound", True)]
    r = generate(_req(tiny_model))
    assert dry_runs == [] and r.record["memory_plan"]["method"] == "bound"
    assert r.record["memory_plan"]["plan"] == "speed" and "dry_run_s" not in r.record["timings"]
    assert not (t2v_env / "cache" / dryruns.CACHE_NAME).exists()


def test_a_run_near_the_budget_still_dry_runs(tiny_model, t2v_env, dry_runs, monkeypatch):
    req, family = _req(tiny_model), family_of_folder(tiny_model)
    quick = memory._bounded(tiny_model, req, family=family, device="cpu", dtype="fp32")
    budget = int(quick.peak_bytes / bound.FAR) - 2**20  # the bound just over its share: a dry run decides
    monkeypatch.setenv("T2V_MEMORY_BUDGET_GB", str(budget / 2**30))  # the run below (settings are read once)
    chosen, preds = memory.choose(tiny_model, req, family=family, requested="auto", device="cpu", dtype="fp32",
                                  budget=budget)
    assert len(dry_runs) == 1 and [(p.plan, p.method, p.fits) for p in preds] == [("speed", "dry_run", True)]
    assert preds[0].peak_bytes < quick.peak_bytes and preds[0].flops_per_step > 0
    chosen, preds = memory.choose(tiny_model, req, family=family, requested="auto", device="cpu", dtype="fp32",
                                  budget=budget)  # measured once: the next run reads it
    assert len(dry_runs) == 1 and preds[0].method == "estimate"
    # A run that needs one has it as its own stage, in a fresh process (nothing in memory) with a fresh home.
    memory._reference.cache_clear()
    dryruns.forget_memo()
    (t2v_env / "cache" / dryruns.CACHE_NAME).unlink()
    r = generate(req)
    assert len(dry_runs) == 2 and r.record["memory_plan"]["method"] == "dry_run"
    assert r.record["timings"]["dry_run_s"] > 0


def test_the_longer_reference_dry_runs_measure_the_denoiser_alone(tmp_path, t2v_env, dry_runs):
    """A transformer family's estimate reads only the denoiser's numbers of the runs at 2x and 4x its frames: those
    run nothing else, give the same denoiser numbers as a whole run, and are cached under keys of their own."""
    from tests.tinymodels import make_tiny_model

    path = make_tiny_model("wan", tmp_path / "wan")
    family = family_of_folder(path)
    req = _req(path).model_copy(update={"num_frames": 9})
    memory.choose(path, req, family=family, requested="speed", device="cpu", dtype="fp32", budget=2**40,
                  bound_ok=False)  # as a watched run plans: from the reference dry runs
    assert [a[-1] for a in dry_runs] == [None, memory.DENOISER, memory.DENOISER]  # one whole run, two of the denoiser
    frames, side = dry_runs[1][0], dry_runs[1][1]
    alone = memory.measure_now(family, str(path), frames, side, side, 2, False, 1, False, memory.DENOISER)
    whole = memory.measure_now(family, str(path), frames, side, side, 2, False, 1, False)
    assert alone["acts"]["vae"] == alone["acts"]["text"] == alone["decode_flops"] == 0 < whole["acts"]["vae"]
    assert alone["acts"]["transformer"] == whole["acts"]["transformer"] > 0
    assert alone["step_flops"] == whole["step_flops"] > 0
    keys = {dryruns.key(path, frames, side, side, 2, False, 1, False, p) for p in (None, memory.DENOISER)}
    assert len(keys) == 2
