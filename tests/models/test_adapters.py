"""LoRA adapters switched on one loaded base model: no copy per combination, concurrent runs with different
adapters give each one's own frames, and adapters nobody uses are dropped."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from t2v.models.adapters import AdapterPart
from t2v.models.loader import model_cache
from t2v.families import family_of_folder
from tests.families.checks import random_lora, run


@pytest.fixture(scope="module")
def wan(tmp_path_factory):
    from diffusers import WanPipeline, WanTransformer3DModel

    from tests.tinymodels import make_tiny_model

    root = tmp_path_factory.mktemp("adapters")
    model = make_tiny_model("wan", root / "wan", seed=0)
    loras = [random_lora(WanTransformer3DModel, model, root / f"lora{i}", seed=i, pipeline_cls=WanPipeline)
             for i in range(3)]
    return model, loras


def host_of(model):
    (entry,) = [m for m in model_cache().entries.values() if m.source.path == model]
    return entry, entry.host


def test_two_concurrent_jobs_with_different_adapters_each_get_their_own_frames(wan):
    from peft.tuners.tuners_utils import BaseTunerLayer

    model, (a, b, _) = wan
    model_cache().clear()
    base = run(model)[0]
    alone = {name: run(model, loras=loras)[0] for name, loras in
             (("a", [f"{a}:0.8"]), ("b", [f"{b}:1.2"]), ("ab", [f"{a}:0.5", f"{b}:0.5"]))}
    assert all(np.abs(f.astype(int) - base.astype(int)).max() > 2 for f in alone.values())
    jobs = ["a", "b", "ab", "a", None, "b"]
    asks = {"a": [f"{a}:0.8"], "b": [f"{b}:1.2"], "ab": [f"{a}:0.5", f"{b}:0.5"], None: []}
    start = threading.Barrier(len(jobs))

    def job(name):
        start.wait()
        return run(model, loras=asks[name])[0]

    with ThreadPoolExecutor(len(jobs)) as pool:
        frames = list(pool.map(job, jobs))
    for name, got in zip(jobs, frames):
        assert np.array_equal(got, base if name is None else alone[name]), name
    entry, host = host_of(model)
    assert len(model_cache()) == 1, "one loaded model: the adapters sit in its modules, no copy per combination"
    assert len(host.names("transformer")) == 2 and host.switches >= 3
    assert any(isinstance(m, BaseTunerLayer) for m in entry.components["transformer"].modules())
    assert np.array_equal(run(model)[0], base), "the base model's runs see no adapter"


def test_an_adapter_no_job_used_for_lora_idle_s_is_dropped(wan):
    from peft.tuners.tuners_utils import BaseTunerLayer

    model, (a, b, c) = wan
    model_cache().clear()
    base = run(model)[0]
    first = run(model, loras=[str(a)])[0]
    entry, host = host_of(model)
    host.idle_s = 3600.0
    run(model, loras=[str(b)])
    assert len(host.names()) == 2, "used a moment ago: kept"
    host.idle_s = 0.0
    run(model, loras=[str(c)])
    assert host.names() == [AdapterPart("transformer", c, 1.0, 0).name], "a and b were idle: dropped"
    assert np.array_equal(run(model)[0], base) and host.names() == [], "the base run dropped the last idle one"
    transformer = entry.components["transformer"]
    assert not any(isinstance(m, BaseTunerLayer) for m in transformer.modules()) and not hasattr(transformer, "peft_config")
    assert np.array_equal(run(model, loras=[str(a)])[0], first), "loaded again, the same frames"


def test_the_planner_counts_the_adapters_beside_the_denoiser(wan):
    from safetensors.torch import load_file

    from t2v.planner.memory import estimate, predict
    from t2v.requests import GenerationRequest
    from t2v.runner.resolve import resolve
    from t2v.settings import Settings

    model, (a, b, _) = wan
    base, stacked = (resolve(GenerationRequest(prompt="a fox", model=str(model), formats=(), seed=1, loras=loras),
                             Settings()) for loras in ([], [str(a), str(b)]))
    numel = sum(t.numel() for f in (a, b) for t in load_file(f).values())
    for how in (predict, estimate):
        plain, with_loras = (how(model, r, family=family_of_folder(model), plan="speed", device="cpu", dtype="fp32")
                             for r in (base, stacked))
        assert with_loras.weights_bytes["transformer"] - plain.weights_bytes["transformer"] == numel * 4
        assert with_loras.peak_bytes - plain.peak_bytes == numel * 4


def test_an_adapters_hash_is_read_once_while_its_file_is_unchanged(tmp_path, monkeypatch):
    """A server's jobs that use the same LoRA do not read its bytes again; a changed file is read again."""
    import os

    from t2v.families import get_family
    from t2v.models import loader
    from t2v.requests import LoraSpec

    family, file = get_family("wan"), tmp_path / "style.safetensors"
    file.write_bytes(b"one" * 1000)
    reads = []
    original = type(family).lora_hash
    monkeypatch.setattr(type(family), "lora_hash", lambda self, adapter: reads.append(adapter) or original(self, adapter))
    spec = LoraSpec(path=str(file))
    first = loader.adapter_digests(family, (spec,))
    assert loader.adapter_digests(family, (spec,)) == first and len(reads) == 1
    file.write_bytes(b"two" * 1000)
    os.utime(file, ns=(1, 10**18))
    assert loader.adapter_digests(family, (spec,)) != first and len(reads) == 2
