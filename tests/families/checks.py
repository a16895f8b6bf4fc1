"""Checks every family's tests share: resume after a cancel and from periodic checkpoints, bitwise.

``run(*args, **fields) -> (uint8 frames, result)`` is the test file's own runner (its model, image, fields)."""

from __future__ import annotations

import numpy as np
import pytest

from t2v.sampling.base import CheckpointSpec
from t2v.errors import Cancelled


def denoise_steps(done: list):
    """An on_progress that collects finished denoising steps into ``done``."""
    return lambda e: done.append(e.step) if e.stage == "denoise" and e.step else None


def cancel_after(run, path, at: int, *args, **fields) -> CheckpointSpec:
    """Run until ``at`` steps are done, cancel; the checkpoint it left (asserted to exist)."""
    spec, done = CheckpointSpec(path), []
    with pytest.raises(Cancelled):
        run(*args, checkpoint=spec, should_cancel=lambda: len(done) >= at, on_progress=denoise_steps(done), **fields)
    assert len(done) == at and spec.path.is_file()
    return spec


def assert_resume_after_cancel_is_bitwise(run, tmp_path, at: int, *args, whole=None, **fields) -> CheckpointSpec:
    """Cancel after ``at`` steps and resume: the frames of an uninterrupted run (``whole``, else run now)."""
    whole = run(*args, **fields)[0] if whole is None else whole
    spec = cancel_after(run, tmp_path / "ckpt.pt", at, *args, **fields)
    resumed, result = run(*args, checkpoint=spec, **fields)
    assert result.record["resumed_from_step"] == at
    assert np.array_equal(resumed, whole)
    return spec


def assert_periodic_checkpoints_resume_bitwise(run, tmp_path, *args, whole=None, crash_at: int = 3, **fields) -> None:
    """A run that dies after step ``crash_at`` without a cancel leaves only its periodic checkpoint (every
    step); resuming from it gives an uninterrupted run's frames."""
    whole = run(*args, **fields)[0] if whole is None else whole
    spec = CheckpointSpec(tmp_path / "every.pt", every=1)

    def crash(event):
        if event.stage == "denoise" and event.step == crash_at:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(*args, checkpoint=spec, on_progress=crash, **fields)
    resumed, result = run(*args, checkpoint=spec, **fields)
    assert result.record["resumed_from_step"] == crash_at
    assert np.array_equal(resumed, whole)


def assert_checkpoint_is_the_images(run, tmp_path, model, at: int = 1, **fields) -> None:
    """A checkpoint left by image-to-video from one image is not resumed by the same request from another
    image under the same path (the image's pixels are in its fingerprint), and is by the same image."""
    from PIL import Image

    path = tmp_path / "in.png"
    size = (fields.get("width") or 64, fields.get("height") or 64)
    Image.new("RGB", size, (200, 40, 40)).save(path)
    spec = cancel_after(run, tmp_path / "image.pt", at, model, image=str(path), **fields)
    Image.new("RGB", size, (40, 40, 200)).save(path)
    assert run(model, image=str(path), checkpoint=spec, **fields)[1].record.get("resumed_from_step") is None
    spec = cancel_after(run, tmp_path / "image.pt", at, model, image=str(path), **fields)
    assert run(model, image=str(path), checkpoint=spec, **fields)[1].record["resumed_from_step"] == at


def assert_scale_0_is_the_base(off, base, with_lora) -> None:
    """A LoRA fused at scale 0 leaves every weight bitwise as it was (t2v fuses into a copy), but the copy's
    tensors are freshly allocated while the base's are memory-mapped from the file: on some CPUs (AVX-512)
    the BLAS kernels then round a few sums differently. So: at most 1 level off on at most 0.1% of values,
    where the adapter at scale 1 moves the frames by far more."""
    off_by = np.abs(off.astype(int) - base.astype(int))
    assert off_by.max() <= 1 and (off_by > 0).mean() < 1e-3
    assert np.abs(with_lora.astype(int) - base.astype(int)).max() > 1


def assert_a_lora_changes_the_frames_and_scale_0_is_the_base(run, model, lora, **fields) -> None:
    """With ``lora`` the frames and the record's model hash change; at scale 0 the frames are the base's."""
    base, plain = run(model, **fields)
    with_lora, result = run(model, lora=str(lora), **fields)
    assert not np.array_equal(with_lora, base) and result.record["model_hash"] != plain.record["model_hash"]
    assert_scale_0_is_the_base(run(model, lora=str(lora), lora_scale=0.0, **fields)[0], base, with_lora)


def without_ftfy(module) -> None:
    """A stock pipeline module that calls ftfy unguarded gets a stand-in that leaves the text as it is, where ftfy is
    not installed (t2v's prompt cleaning, Wan's, skips ftfy there too)."""
    import types

    if not hasattr(module, "ftfy"):
        module.ftfy = types.SimpleNamespace(fix_text=lambda text: text)


PROMPT = "a panda surfing a big wave at sunset"


def noise_image(folder, *, seed: int, size: tuple[int, int] = (80, 48), name: str = "first.png"):
    """A PNG of random pixels (``size`` = width, height) in ``folder``: a first frame not of the request's size."""
    from PIL import Image

    path = folder / name
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def run(model, image=None, **fields):
    """t2v's frames (uint8) and result for ``model`` with its tiny defaults (t2v.json), ``image`` for
    image-to-video, fields over the test defaults (seed 3, no files); progress, cancel, checkpoint, preview
    and output arguments go to :func:`t2v.generate`."""
    from t2v import generate
    from t2v.requests import GenerationRequest

    fields = {"prompt": PROMPT, "seed": 3, "formats": (), **fields}
    kw = {k: fields.pop(k) for k in ("should_cancel", "checkpoint", "on_preview", "on_progress", "output") if k in fields}
    result = generate(GenerationRequest(model=str(model), image=str(image) if image else None, **fields), **kw)
    return result.frames, result


def time_on_gpu(family: str, model, request, memory=None):
    """Run ``request`` on the full-size random-weight ``model`` on CUDA: (the run, its figures for
    docs/benchmarks.md: stage times, seconds per step, peak GiB, the GPU's name)."""
    import torch

    from t2v.families import RunContext, get_family
    from t2v.planner.memory import estimate
    from t2v.planner.plans import get_plan

    plan = memory or get_plan("speed")
    try:  # the planner's figure for this run (configs on the meta device), beside the measured peak
        est = estimate(model.source.path, request, family=model.family, plan=plan.name, device="cuda", dtype=model.plan.dtype)
        est_gib = round(est.peak_bytes / 2**30, 1)
    except Exception as e:  # recorded, not fatal: the timing is this test's subject
        est_gib = f"{type(e).__name__}: {e}"[:200]
    torch.cuda.reset_peak_memory_stats()
    ctx = RunContext(on_stage=lambda *a: None, on_step=lambda i, n, latents: None, should_cancel=lambda: False,
                     memory=plan)
    out = get_family(family).run(model, request, ctx)
    assert np.isfinite(out.frames).all()
    steps, peak_gib = request.num_inference_steps, round(torch.cuda.max_memory_allocated() / 2**30, 1)
    if isinstance(est_gib, float):  # what --memory auto plans with: at most 5% under (it keeps 10% free)
        assert est_gib >= 0.95 * peak_gib, (est_gib, peak_gib)
    return out, {**{k: round(v, 2) for k, v in out.timings.items()}, "step_s": round(out.timings["denoise_s"] / steps, 2),
                 "peak_gib": peak_gib, "planner_estimate_gib": est_gib, "gpu": torch.cuda.get_device_name()}


def random_lora(transformer_cls, model, out, *, seed: int, pipeline_cls, subfolder: str = "transformer",
                targets=("to_q", "to_k", "to_v", "to_out.0"), rank: int = 4):
    """A random rank-``rank`` LoRA on the tiny model's denoiser attention, saved in diffusers' format by the
    family's stock pipeline class (``pytorch_lora_weights.safetensors`` in ``out``)."""
    import torch
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    denoiser = transformer_cls.from_pretrained(model, subfolder=subfolder)
    torch.manual_seed(seed)
    denoiser.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=list(targets), init_lora_weights=False))
    out.mkdir(parents=True, exist_ok=True)
    pipeline_cls.save_lora_weights(out, transformer_lora_layers=get_peft_model_state_dict(denoiser))
    return out / "pytorch_lora_weights.safetensors"


def stack_on_stock(pipe, loras, *, experts=("transformer",)) -> None:
    """What the stock pipeline does for stacked adapters: ``loras`` = [(file, {expert: weight})], each file
    loaded under its own name into each expert it names (``load_into_transformer_2`` for the second), then
    ``set_adapters(names, weights)`` in each transformer."""
    per_expert: dict[str, list] = {}
    for i, (file, weights) in enumerate(loras):
        for expert, weight in weights.items():
            extra = {"load_into_transformer_2": True} if expert == "transformer_2" else {}
            pipe.load_lora_weights(str(file), adapter_name=f"a{i}", **extra)
            per_expert.setdefault(expert, []).append((f"a{i}", weight))
    for expert, items in per_expert.items():
        getattr(pipe, expert).set_adapters([n for n, _ in items], weights=[w for _, w in items])


def assert_close_to_stock(ours, theirs, *, levels: int = 2) -> None:
    """The seed contract with adapters: within ``levels``/255 (fused against unfused adapters round apart)."""
    assert ours.shape == theirs.shape
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= levels


def assert_two_stacked_loras_match_stock(run, stock, model, first, second) -> None:
    """``first`` at 0.9 and ``second`` at 0.5 on a one-transformer model: the stock pipeline's frames with the same
    adapters and ``set_adapters`` (``stock(model, result, prepare=...)``), each adapter counting, both recorded."""
    ours, result = run(model, loras=[f"{first}:0.9", f"{second}:0.5"])
    theirs = stock(model, result, prepare=lambda pipe: stack_on_stock(
        pipe, [(first, {"transformer": 0.9}), (second, {"transformer": 0.5})]))
    assert_close_to_stock(ours, theirs)
    assert np.abs(ours.astype(int) - run(model, loras=[f"{first}:0.9"])[0].astype(int)).max() > 2, "both count"
    assert [a["scale"] for a in result.record["adapters"]] == [0.9, 0.5]


def run_stock(pipe, r, prepare=None, extra=None):
    """A Wan-shaped (Wan, SkyReels-V2) stock pipeline's frames for request ``r`` (its seed on a CPU generator), as uint8."""
    import torch

    from t2v.sampling.vae import to_uint8

    pipe.set_progress_bar_config(disable=True)
    if prepare is not None:
        prepare(pipe)
    out = pipe(prompt=r.prompt, negative_prompt=r.negative_prompt, height=r.height, width=r.width, num_frames=r.num_frames,
               num_inference_steps=r.num_inference_steps, guidance_scale=r.guidance_scale, max_sequence_length=512,
               generator=torch.Generator("cpu").manual_seed(r.seed), output_type="np", **(extra or {}))
    return to_uint8(out.frames[0])


def full_size_model(folder, device: str, dtype: str, *, family: str, pipeline: str, modules: dict, others: dict,
                    scheduler, defaults: dict | None = None):
    """A full-size random-weight model for a GPU timing test: ``modules`` ({name: (library, module)}, built on the
    device by the caller) with their configs written under ``folder``, ``others`` ({name: (library, object)}:
    tokenizers, processors, guiders) kept as they are, the ``scheduler``, and ``model_index.json``; returned as a
    :class:`~t2v.models.loader.LoadedModel` in ``dtype``."""
    import json as json_

    from t2v.models.device import DevicePlan
    from t2v.models.loader import LoadedModel
    from t2v.models.source import ModelSource

    plan = DevicePlan(device, dtype)
    index = {"_class_name": pipeline, "scheduler": ["diffusers", type(scheduler).__name__]}
    components = {"scheduler": scheduler}
    for name, (library, module) in modules.items():
        (module.config.save_pretrained if library == "transformers" else module.save_config)(folder / name)
        components[name] = module.to(plan.torch_dtype).eval().requires_grad_(False)
        index[name] = [library, type(module).__name__]
    for name, (library, obj) in others.items():
        components[name] = obj
        index[name] = [library, type(obj).__name__]
    scheduler.save_config(folder / "scheduler")
    (folder / "model_index.json").write_text(json_.dumps(index))
    source = ModelSource(id=f"{family}-random", path=folder, kind="folder", family=family, defaults=defaults or {})
    return LoadedModel(source=source, plan=plan, variant=None, components=components,
                       scheduler_config=dict(scheduler.config), content_hash="random", load_s=0.0)
