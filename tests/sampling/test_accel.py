"""--attention and --compile: refusals before loading, kernels on a run's own view, compiled blocks reused."""

from __future__ import annotations

import gc
import json
import weakref

import numpy as np
import pytest
import torch

from typer.testing import CliRunner

from t2v.cli import app
from t2v.planner import memory, steptime
from t2v.sampling import accel
from t2v.errors import InvalidRequest
from t2v.families import all_families, get_family
from t2v import generate
from t2v.requests import GenerationRequest
from t2v.progress import critical_path

SMALL = dict(prompt="a red circle moving right", seed=5, num_frames=2, width=32, height=32, num_inference_steps=2,
             formats=())


def request(**fields) -> GenerationRequest:
    return GenerationRequest.create(**{"prompt": "a red circle", **fields})


@pytest.fixture
def cuda_machine(monkeypatch):
    """A machine that looks like it has a CUDA GPU, flash-attn, sageattention and triton (flip one off to test
    its refusal)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    present = {"flash_attn": True, "sageattention": True, "triton": True}
    monkeypatch.setattr(accel, "installed", lambda name: present.get(name, False))
    return present


def refusal(family: str, **fields) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        accel.check(get_family(family), request(**fields), model="m")
    return info.value


# -- attention: refusals ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kernel", ["auto", "sdpa"])
def test_auto_and_sdpa_accepted_by_every_family(kernel):
    for family in all_families().values():
        accel.check(family, request(attention=kernel, device="cpu"), model="m")


@pytest.mark.parametrize("kernel, package", [("flash", "flash-attn"), ("sage", "sageattention")])
def test_gpu_kernel_refused_on_cpu_and_without_its_package(cuda_machine, monkeypatch, kernel, package):
    accel.check(get_family("wan"), request(attention=kernel, device="cuda"), model="m")  # all present: accepted
    e = refusal("wan", attention=kernel, device="cpu")
    assert e.field == "attention" and "needs a CUDA GPU" in str(e) and "on cpu" in str(e) and "nearest valid: sdpa" in str(e)
    cuda_machine[{"flash": "flash_attn", "sage": "sageattention"}[kernel]] = False
    e = refusal("wan", attention=kernel, device="cuda")
    assert e.field == "attention" and f"pip install {package}" in str(e) and "nearest valid: sdpa" in str(e)


def test_gpu_kernel_refused_where_no_cuda_even_if_asked(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("auto", "cuda"):  # cuda falls back to cpu on this machine: refused, not silently ignored
        e = refusal("wan", attention="flash", device=device)
        assert "needs a CUDA GPU" in str(e) and "on cpu" in str(e)


def test_gpu_kernel_refused_in_fp32(cuda_machine):
    e = refusal("wan", attention="sage", device="cuda", dtype="fp32")
    assert e.field == "attention" and "fp16 or bf16" in str(e) and "--dtype bf16" in str(e)


@pytest.mark.parametrize("family", ["modelscope", "animatediff", "sd"])
def test_gpu_kernel_refused_for_denoisers_that_cannot_use_it(cuda_machine, family):
    e = refusal(family, attention="flash", device="cuda")
    assert e.field == "attention" and "cannot use the flash kernel" in str(e) and "takes auto, sdpa" in str(e)


# -- compile: refusals ------------------------------------------------------------------------------------------
def test_compile_on_cpu_needs_a_cpp_compiler(monkeypatch):
    monkeypatch.setattr(accel, "cpp_compiler", lambda: "g++")
    accel.check(get_family("modelscope"), request(compile=True, device="cpu"), model="m")
    monkeypatch.setattr(accel, "cpp_compiler", lambda: None)
    e = refusal("modelscope", compile=True, device="cpu")
    assert e.field == "compile" and "needs a C++ compiler" in str(e) and "without --compile" in str(e)


def test_compile_refusals_name_the_cause(cuda_machine, monkeypatch):
    accel.check(get_family("wan"), request(compile=True, device="cuda"), model="m")
    cuda_machine["triton"] = False
    e = refusal("wan", compile=True, device="cuda")
    assert e.field == "compile" and "needs the triton package" in str(e)
    monkeypatch.setattr(accel, "dynamo_problem", lambda: "Python 3.15+ not yet supported for torch.compile")
    e = refusal("wan", compile=True, device="cpu")
    assert "cannot run here (Python 3.15+" in str(e)


def test_compile_refused_on_mps(monkeypatch):
    monkeypatch.setattr(accel, "target_device", lambda req: "mps")
    e = refusal("modelscope", compile=True, device="mps")
    assert e.field == "compile" and "not supported on mps" in str(e)


@pytest.mark.parametrize("family, cache", [("modelscope", "deepcache"), ("wan", "fbc")])
def test_compile_with_a_step_cache_refused(monkeypatch, family, cache):
    monkeypatch.setattr(accel, "cpp_compiler", lambda: "g++")
    e = refusal(family, compile=True, cache=cache, device="cpu")
    assert e.field == "compile" and f"--cache {cache}" in str(e) and "either --compile or --cache" in str(e)


def test_generate_refuses_before_loading(tiny_model, monkeypatch):
    monkeypatch.setattr(accel, "cpp_compiler", lambda: None)
    loads = []
    from t2v.runner import core  # the runner's own name for the loader (patched there, and undone after)

    monkeypatch.setattr(core, "load_model", lambda *a, **k: loads.append(a))
    with pytest.raises(InvalidRequest, match="C\\+\\+ compiler") as info:
        generate(GenerationRequest.create(model=str(tiny_model), compile=True, device="cpu", **SMALL))
    assert info.value.field == "compile" and not loads


# -- attention: applied on a private view -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_wan(tmp_path_factory):
    from tests.tinymodels import make_tiny_model

    return make_tiny_model("wan", tmp_path_factory.mktemp("accel") / "wan", seed=0)


def test_sdpa_kernel_on_a_dit_matches_auto_and_leaves_the_cached_model_alone(tiny_wan):
    from diffusers.models.attention_dispatch import AttentionBackendName

    import t2v

    fields = dict(SMALL, num_frames=5, model=str(tiny_wan))
    auto = generate(GenerationRequest.create(**fields))
    sdpa = generate(GenerationRequest.create(attention="sdpa", **fields))
    assert np.abs(auto.frames.astype(int) - sdpa.frames.astype(int)).max() <= 2
    assert auto.frames.std() > 1 and sdpa.record["attention"] == "sdpa"

    base = t2v.load_pipeline(str(tiny_wan), device="cpu", dtype="fp32")
    view = accel.apply(get_family("wan"), base, request(attention="sdpa")).transformer
    processors = [m.processor for m in view.modules() if hasattr(getattr(m, "processor", None), "_attention_backend")]
    assert processors and all(p._attention_backend == AttentionBackendName.NATIVE for p in processors)
    base_processors = [m.processor for m in base.transformer.modules() if hasattr(getattr(m, "processor", None), "_attention_backend")]
    assert all(p._attention_backend is None for p in base_processors)  # the shared model: untouched
    assert view is not base.transformer and view.blocks[0].attn1.to_q.weight is base.transformer.blocks[0].attn1.to_q.weight


def test_kernel_on_a_unet_view_is_refused(tiny_model):
    import t2v
    from t2v.sampling.views import private_view

    base = t2v.load_pipeline(str(tiny_model), device="cpu", dtype="fp32")
    with pytest.raises(InvalidRequest, match="no attention that can use the flash kernel"):
        accel.set_kernel(private_view(base.unet), "flash")
    assert accel.apply(get_family("modelscope"), base, request(attention="sdpa")).unet is base.unet  # SDPA already


# -- compile ------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_compiled_unet_matches_eager_and_is_reused(tiny_model, monkeypatch):
    """Compile of the tiny UNet3D: frames within 2/255 of eager; a second request of the same shape compiles
    nothing new and runs the same compiled module; the cached base model is unchanged. Dynamo captures the
    graphs as for inductor, but aot_eager runs them without building C++ kernels (80 s here with inductor;
    inductor's own kernels are checked on the tiny Wan below and measured in benchmarks/bench_compile.py)."""
    from torch._dynamo.utils import counters

    import t2v

    monkeypatch.setattr(accel, "COMPILE_BACKEND", "aot_eager")

    base = t2v.load_pipeline(str(tiny_model), device="cpu", dtype="fp32").unet
    before = {k: v.clone() for k, v in base.state_dict().items()}
    fields = dict(SMALL, model=str(tiny_model), device="cpu", dtype="fp32")
    family = get_family("modelscope")
    # a dry run first: runs planned from it count their work, so the step-times store keeps them (below)
    memory.estimate(tiny_model, GenerationRequest.create(guidance_scale=9.0, **fields), family=family, plan="speed",
                    device="cpu", dtype="fp32")
    eager = generate(GenerationRequest.create(**fields))
    first = generate(GenerationRequest.create(compile=True, **fields))
    graphs = counters["stats"]["unique_graphs"]
    assert graphs > 0 and first.record["compile"] is True and not first.record.get("warnings")
    assert np.abs(eager.frames.astype(int) - first.frames.astype(int)).max() <= 2
    assert eager.frames.std() > 1

    # The compile is a stage of its own in the record, out of denoise's time, and the stages still add up.
    timings = first.record["timings"]
    assert timings["compile_s"] > 0.3 and timings["denoise_s"] > 0
    assert abs(critical_path(timings) - timings["total_s"]) <= 0.01 * timings["total_s"]
    assert "compile_s" not in eager.record["timings"]

    second = generate(GenerationRequest.create(compile=True, **fields))
    assert counters["stats"]["unique_graphs"] == graphs  # nothing recompiled
    assert "compile_s" not in second.record["timings"]
    assert np.array_equal(first.frames, second.frames)

    # The compiled runs' times are kept apart from the eager run's, with the compile time: the plan predicts it.
    plan = first.record["memory_plan"]["plan"]
    store = json.loads(steptime.cache_path(steptime.CACHE_NAME).read_text())["keys"]
    compiled_key = memory.run_key(tiny_model, first.request, plan=plan, device="cpu", dtype="fp32")
    eager_key = memory.run_key(tiny_model, eager.request, plan=plan, device="cpu", dtype="fp32")
    kept = [r.get("compile_s") for r in store[compiled_key]["runs"]]
    assert compiled_key != eager_key and kept[1] is None and all("compile_s" not in r for r in store[eager_key]["runs"])
    assert kept[0] == pytest.approx(timings["compile_s"], abs=1e-4)  # the record rounds to 0.1 ms
    predicted = memory.predict(tiny_model, first.request, family=family, plan=plan, device="cpu", dtype="fp32")
    assert predicted.time_runs == 2 and predicted.est_compile_s == kept[0]
    shown = CliRunner().invoke(app, ["plan", SMALL["prompt"], "--model", str(tiny_model), "--compile", "--memory", plan,
                                     "--frames", "2", "--width", "32", "--height", "32", "--steps", "2", "--dtype",
                                     "fp32"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and f"+ compile {kept[0]:.2f} s" in shown.stdout, shown.output
    variants = accel.compiled_count()
    variant = accel.compiled_variant(get_family("modelscope"), base, "auto")
    assert accel.compiled_count() == variants  # the same variant served both requests (made once per base)
    assert variant.module is not base and variant.failed is None
    assert any(isinstance(m.__dict__.get("forward"), accel.Guarded) for m in variant.module.modules())

    assert not any("forward" in m.__dict__ for m in base.modules())  # the shared module: not compiled
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())
    again = generate(GenerationRequest.create(**fields))
    assert np.array_equal(again.frames, eager.frames)

    # Unloading the model frees the compiled variant too (dynamo's caches keep no strong reference to it).
    from t2v.models.loader import clear_cache

    gone = weakref.ref(variant.module)
    del variant, base
    clear_cache()
    gc.collect()
    assert gone() is None and accel.compiled_count() == 0


def test_one_compiled_variant_per_base_module_across_threads(tiny_model):
    """Concurrent requests (a server's workers) get the same compiled variant, made once; torch.compile is lazy,
    so nothing compiles here."""
    from concurrent.futures import ThreadPoolExecutor

    import t2v

    accel.reset()
    model = t2v.load_pipeline(str(tiny_model), device="cpu", dtype="fp32")
    family = get_family("modelscope")
    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(lambda _: accel.apply(family, model, request(compile=True)), range(8)))
    assert len({id(r.unet) for r in runs}) == 1 and accel.compiled_count() == 1
    assert runs[0].unet is not model.unet and runs[0].vae is model.vae
    compiled = [m for m in runs[0].unet.modules() if isinstance(m.__dict__.get("forward"), accel.Guarded)]
    assert compiled == [runs[0].unet]  # the whole UNet: its blocks differ in shape, regions would compile more
    accel.reset()
    assert accel.compiled_count() == 0


def test_compile_falls_back_to_eager_with_a_warning(tiny_wan, monkeypatch):
    """A block that dynamo cannot compile: the run finishes eagerly (the same frames), its warnings say so, and
    later runs of that variant say it runs eagerly."""
    from torch._dynamo.exc import Unsupported

    import t2v
    from t2v.families import RunContext
    from t2v.planner.plans import get_plan
    from t2v.sampling.views import private_view

    def broken(self, *args, **kwargs):
        raise Unsupported("test: cannot compile this block")

    made = []

    def make(family, base, attention):
        view = private_view(base)
        variant = accel.CompiledVariant(view, [], fullgraph=True)
        for block in view.blocks:  # a compiled forward that always fails, as dynamo would
            eager_forward = block.forward
            variant.blocks.append((block, eager_forward))
            block.forward = accel.Guarded(variant, broken.__get__(block), eager_forward)
        made.append(variant)
        return variant

    monkeypatch.setattr(accel, "make_variant", make)
    accel.reset()  # no compiled variant of this model from an earlier test
    fields = dict(SMALL, num_frames=5, model=str(tiny_wan), device="cpu", dtype="fp32")
    eager = generate(GenerationRequest.create(**fields))
    first = generate(GenerationRequest.create(compile=True, **fields))
    assert np.array_equal(first.frames, eager.frames) and first.record["compile"] is True
    assert any(w.startswith("compile: fell back to eager (Unsupported: test: cannot compile") for w in first.record["warnings"])
    assert len(made) == 1 and made[0].failed.startswith("Unsupported: test: cannot compile")

    accel.reset()
    family, model = get_family("wan"), t2v.load_pipeline(str(tiny_wan), device="cpu", dtype="fp32")
    req = GenerationRequest.create(compile=True, **fields).with_defaults(family.defaults)
    for expected in ("compile: fell back to eager (Unsupported: test: cannot compile",
                     "compile: running eagerly, compiling failed earlier"):
        ctx = RunContext(on_stage=lambda *a: None, on_step=lambda *a: None, should_cancel=lambda: False,
                         memory=get_plan("speed"))
        with torch.inference_mode():
            family.sample(accel.apply(family, model, req, ctx), req, ctx)
        assert any(w.startswith(expected) for w in ctx.warnings), ctx.warnings
    assert len(made) == 2


# -- on a GPU -----------------------------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.slow
def test_gpu_compiled_dit_matches_eager_and_is_reused(tiny_wan):
    from torch._dynamo.utils import counters

    fields = dict(SMALL, num_frames=5, model=str(tiny_wan), device="cuda", dtype="fp32")
    eager = generate(GenerationRequest.create(**fields))
    first = generate(GenerationRequest.create(compile=True, **fields))
    graphs = counters["stats"]["unique_graphs"]
    assert not first.record.get("warnings") and graphs > 0
    assert np.abs(eager.frames.astype(int) - first.frames.astype(int)).max() <= 2
    generate(GenerationRequest.create(compile=True, **fields))
    assert counters["stats"]["unique_graphs"] == graphs


@pytest.mark.gpu
@pytest.mark.slow
def test_gpu_compiled_unet_matches_eager(tiny_model):
    fields = dict(SMALL, model=str(tiny_model), device="cuda", dtype="fp32")
    eager = generate(GenerationRequest.create(**fields))
    compiled = generate(GenerationRequest.create(compile=True, **fields))
    assert not compiled.record.get("warnings")
    assert np.abs(eager.frames.astype(int) - compiled.frames.astype(int)).max() <= 2


@pytest.mark.gpu
@pytest.mark.parametrize("kernel, package", [("flash", "flash_attn"), ("sage", "sageattention")])
def test_gpu_kernel_matches_sdpa(tiny_wan, kernel, package):
    if not accel.installed(package):
        pytest.skip(f"{package} is not installed")
    fields = dict(SMALL, num_frames=5, model=str(tiny_wan), device="cuda", dtype="bf16")
    sdpa = generate(GenerationRequest.create(attention="sdpa", **fields))
    other = generate(GenerationRequest.create(attention=kernel, **fields))
    assert np.abs(sdpa.frames.astype(int) - other.frames.astype(int)).max() <= 8  # bf16 kernels round differently


def test_inductor_compiled_dit_blocks_match_eager(tiny_wan):
    """The real backend: inductor's C++ kernels for the tiny Wan's repeated blocks, frames within 2/255 of eager."""
    import torch._dynamo

    from t2v.models.loader import clear_cache

    clear_cache()  # a fresh base module: earlier tests leave variants that failed on purpose
    gc.collect()
    fields = dict(SMALL, num_frames=5, model=str(tiny_wan), device="cpu", dtype="fp32")
    eager = generate(GenerationRequest.create(**fields))
    compiled = generate(GenerationRequest.create(compile=True, **fields))
    assert compiled.record["compile"] is True and not compiled.record.get("warnings")
    assert np.abs(eager.frames.astype(int) - compiled.frames.astype(int)).max() <= 2 and eager.frames.std() > 1
    torch._dynamo.reset()
