"""``generate_sequence()`` and ``generate_images()``: image mode on the same resolve / record / export path as video."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from t2v.errors import Cancelled, InvalidRequest
from t2v.generation import ProgressCallback, _emitter, export_result, output_stem, resolve
from t2v.request import GenerationResult
from t2v.sequence.request import ImageRequest, SequenceRequest
from t2v.settings import Settings, get_settings

logger = logging.getLogger(__name__)


@dataclass
class _Run:
    """A started image-mode run: the resolved request, where files go, the loaded model, progress."""

    request: ImageRequest | SequenceRequest
    stem: Path
    source: object
    loaded: object
    plan: object
    emit: Callable
    cancel: Callable[[], bool]
    t_start: float
    total: int = 0
    done: int = 0

    def step(self) -> None:
        """One model step done: report denoising progress (``done`` of ``total``)."""
        self.done += 1
        self.emit("denoise", self.done, self.total)

    def encode(self, prompt: str, warnings: list[str], *, negative: bool = False):
        from t2v.sequence import sd

        return sd.text_embeddings(self.loaded, prompt, warnings, negative=negative)


def _start(request, settings: Settings | None, output, on_progress, should_cancel) -> _Run:
    """Resolve the request (image-model default), load the model, check it is a text-to-image model."""
    from t2v.generation import check_outputs
    from t2v.models.device import plan_device
    from t2v.models.loader import load_model, resolve_source

    settings = settings or get_settings()
    t_start = time.perf_counter()
    emit = _emitter(on_progress, t_start)
    emit("load", message=f"loading {request.model or settings.default_image_model}")
    stem, implied = output_stem(output, request.prompt)
    if implied and implied not in request.formats:
        request = request.model_copy(update={"formats": (implied, *request.formats)})
    request = resolve(request, settings)
    if getattr(request, "count", None):  # images: <stem>.png + .json, or <stem>-NN.png + .json for several
        names = [stem] if request.count == 1 else [stem.with_name(f"{stem.name}-{i:02d}") for i in range(request.count)]
        for name in names:
            check_outputs(name, (), extra=(".png",))
    elif request.formats:
        check_outputs(stem, request.formats, extra=(".contact.png", ".denoise.png"))
    plan = plan_device(request.device, request.dtype)
    source = resolve_source(request.model, settings, want_fp16=plan.is_accelerator and plan.dtype != "fp32")
    if source.family not in ("sd", "sdxl"):
        raise InvalidRequest(f"model: {request.model} cannot make images: it is not a Stable Diffusion model", field="model")
    loaded = load_model(source, plan, lora=request.lora, lora_scale=request.lora_scale)
    request = request.model_copy(update={"device": plan.device, "dtype": plan.dtype})
    return _Run(request, stem, source, loaded, plan, emit, should_cancel or (lambda: False), t_start)


def _record(run: _Run, request, frames: np.ndarray, timings: dict, warnings: list[str]) -> dict:
    from t2v.export import frames_sha256
    from t2v.record import build_record

    return build_record(request, source=run.source, loaded=run.loaded, warnings=[*run.plan.warnings, *warnings],
                        timings=timings, frames_sha256=frames_sha256(frames))


def generate_sequence(
    request: SequenceRequest,
    *,
    on_progress: ProgressCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
    output: str | Path | None = None,
    settings: Settings | None = None,
    on_preview: Callable[[int, np.ndarray], None] | None = None,
    checkpoint=None,  # accepted for the worker's sake; sequences restart from frame 0
) -> GenerationResult:
    """Make a video from keyframe prompts with a text-to-image model; see :mod:`t2v.sequence.modes`."""
    from t2v.export.figures import contact_sheet, denoise_grid
    from t2v.sequence.modes import SequenceRunner, total_steps

    run = _start(request, settings, output, on_progress, should_cancel)
    request, stem = run.request, run.stem
    if run.cancel():
        raise Cancelled("cancelled before the first step")
    timings = {"load_s": run.loaded.load_s}
    run.emit("encode_prompt")
    t0 = time.perf_counter()
    warnings: list[str] = []
    embeds = [run.encode(p, warnings) for _, p in request.keyframes]
    uncond = run.encode(request.negative_prompt or "", [], negative=True)
    timings["encode_prompt_s"] = time.perf_counter() - t0
    run.total = total_steps(request)
    t0 = time.perf_counter()
    run.emit("denoise", 0, run.total)
    out = SequenceRunner(run.loaded, request, embeds, uncond, on_step=run.step, should_cancel=run.cancel).run()
    timings["denoise_s"] = time.perf_counter() - t0
    if on_preview is not None:
        on_preview(run.total, out.frames[len(out.frames) // 2])
    record = _record(run, request, out.frames, timings, warnings)
    record.update(seeds=out.seeds, model_steps=out.model_calls, keyframes=[{"frame": f, "prompt": p} for f, p in request.keyframes])

    def figures(rec: dict) -> None:
        files = {}
        if request.contact_sheet:
            path = stem.with_name(stem.name + ".contact.png")
            rows, cols = contact_sheet(out.frames, path)
            files["contact_sheet"] = {"file": path.name, "rows": rows, "columns": cols}
        if request.denoise_grid and out.grid:
            path = stem.with_name(stem.name + ".denoise.png")
            rows, cols = denoise_grid(out.grid, path, total_steps=request.num_inference_steps)
            files["denoise_grid"] = {"file": path.name, "rows": rows, "columns": cols, "steps": list(request.denoise_grid)}
        rec["figures"] = files

    result = GenerationResult(request=request, frames=out.frames, record=record)
    try:
        export_result(result, stem, emit=run.emit, cancel=run.cancel, t_start=run.t_start, extra_files=figures)
    except BaseException:
        for suffix in (".contact.png", ".denoise.png"):
            stem.with_name(stem.name + suffix).unlink(missing_ok=True)
        raise
    run.emit("done", message="done")
    return result


def generate_images(
    request: ImageRequest,
    *,
    on_progress: ProgressCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
    output: str | Path | None = None,
    settings: Settings | None = None,
) -> list[GenerationResult]:
    """``count`` images (seeds ``seed`` .. ``seed + count - 1``), each a PNG with its record + a JSON sidecar."""
    from t2v.export import remove_output, write_sidecar
    from t2v.export.writers import write_image
    from t2v.sequence import sd

    request = request.model_copy(update={"formats": ("png",)})
    if output is not None and str(output).lower().endswith(".png"):
        output = str(output)[:-4]
    run = _start(request, settings, output, on_progress, should_cancel)
    request, stem, loaded, cancel, emit = run.request, run.stem, run.loaded, run.cancel, run.emit
    warnings: list[str] = []
    cond = run.encode(request.prompt, warnings)
    uncond = run.encode(request.negative_prompt or "", [], negative=True)
    run.total = request.count * request.num_inference_steps

    results: list[GenerationResult] = []
    try:
        for i in range(request.count):
            t0 = time.perf_counter()
            seed = request.seed + i
            noise = sd.seeded_noise(loaded, seed, request.height, request.width)
            out = sd.denoise(loaded, cond, uncond, noise, steps=request.num_inference_steps, guidance=request.guidance_scale,
                             scheduler=request.scheduler, on_step=run.step, should_cancel=cancel)
            image = sd.decode(loaded, out.latents)
            one = request.model_copy(update={"seed": seed, "count": 1})
            record = _record(run, one, image, {"load_s": loaded.load_s if i == 0 else 0.0,
                                               "denoise_s": time.perf_counter() - t0}, warnings)
            record["index"] = i
            name = stem if request.count == 1 else stem.with_name(f"{stem.name}-{i:02d}")
            result = GenerationResult(request=one, frames=image, record=record)
            if cancel():
                raise Cancelled("cancelled before export")
            emit("export", message=f"writing {name.name}.png")
            result.outputs = [write_image(image[0], name.with_name(name.name + ".png"), metadata=dict(record))]
            results.append(result)
            record["outputs"] = [o.to_dict() for o in result.outputs]
            record["timings"]["total_s"] = round(time.perf_counter() - t0, 4)
            result.sidecar = write_sidecar(record, name.with_name(name.name + ".json"))
    except BaseException:
        for r in results:  # all or nothing
            for o in r.outputs:
                remove_output(o.path)
            if r.sidecar:
                r.sidecar.unlink(missing_ok=True)
        raise
    emit("done", message="done")
    return results
