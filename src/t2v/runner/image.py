"""The runner's image and keyframe-sequence modes, :func:`generate_images` and :func:`generate_sequence`: a
text-to-image model on the same resolve / record / export path as video (the coherence methods of a sequence are
:mod:`t2v.image.modes`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import numpy as np

from t2v.errors import Cancelled
from t2v.export import remove_output, write_sidecar
from t2v.export.figures import contact_sheet, denoise_grid
from t2v.export.outputs import check_outputs, export_result
from t2v.export.writers import write_image
from t2v.image import sd
from t2v.image.modes import SequenceRunner, total_steps
from t2v.requests import GenerationResult, ImageRequest, SequenceRequest
from t2v.runner.core import ProgressCallback, Run, post_process, start
from t2v.settings import Settings

logger = logging.getLogger(__name__)


def _check_sequence_outputs(stem: Path, request) -> None:
    if request.formats:
        check_outputs(stem, request.formats, extra=(".contact.png", ".denoise.png"))


def _check_image_outputs(stem: Path, request) -> None:
    """<stem>.png + .json, or <stem>-NN.png + .json for several."""
    for name in image_names(stem, request.count):
        check_outputs(name, (), extra=(".png",))


def image_names(stem: Path, count: int) -> list[Path]:
    return [stem] if count == 1 else [stem.with_name(f"{stem.name}-{i:02d}") for i in range(count)]


def generate_sequence(
    request: SequenceRequest,
    *,
    on_progress: ProgressCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
    output: str | Path | None = None,
    settings: Settings,
    on_preview: Callable[[int, np.ndarray], None] | None = None,
    checkpoint=None,  # accepted for the worker's sake; sequences restart from frame 0
) -> GenerationResult:
    """Make a video from keyframe prompts with a text-to-image model; see :mod:`t2v.image.modes`."""
    run = start(request, settings=settings, output=output, on_progress=on_progress, should_cancel=should_cancel,
                check=_check_sequence_outputs)
    request, stem = run.request, run.stem
    if run.cancel():
        raise Cancelled("cancelled before the first step")
    run.emit("encode_prompt")
    warnings: list[str] = []
    embeds = [sd.text_embeddings(run.loaded, p, warnings) for _, p in request.keyframes]
    uncond = sd.text_embeddings(run.loaded, request.negative_prompt or "", [], negative=True)
    run.total = total_steps(request)
    run.emit("denoise", 0, run.total)  # (the frames' decodes are among the steps)
    out = SequenceRunner(run.loaded, request, embeds, uncond, on_step=run.step, should_cancel=run.cancel).run()
    if on_preview is not None:
        on_preview(run.total, out.frames[len(out.frames) // 2])
    record = run.record(request, out.frames, warnings=warnings, timings=run.emit.timings())
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

    frames, fps = post_process(out.frames, request, record, emit=run.emit, cancel=run.cancel)
    result = GenerationResult(request=request, frames=frames, record=record)
    try:
        export_result(result, stem, emit=run.emit, cancel=run.cancel, extra_files=figures, fps=fps)
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
    settings: Settings,
) -> list[GenerationResult]:
    """``count`` images (seeds ``seed`` .. ``seed + count - 1``), each a PNG with its record + a JSON sidecar."""
    request = request.model_copy(update={"formats": ("png",)})
    if output is not None and str(output).lower().endswith(".png"):
        output = str(output)[:-4]
    run: Run = start(request, settings=settings, output=output, on_progress=on_progress, should_cancel=should_cancel,
                     check=_check_image_outputs)
    request, stem, loaded, cancel, emit = run.request, run.stem, run.loaded, run.cancel, run.emit
    warnings: list[str] = []
    emit("encode_prompt")
    cond = sd.text_embeddings(loaded, request.prompt, warnings)
    uncond = sd.text_embeddings(loaded, request.negative_prompt or "", [], negative=True)
    run.total = request.count * request.num_inference_steps

    results: list[GenerationResult] = []
    try:
        for i in range(request.count):
            emit("denoise", run.done, run.total)
            seed = request.seed + i
            noise = sd.seeded_noise(loaded, seed, request.height, request.width)
            out = sd.denoise(loaded, cond, uncond, noise, steps=request.num_inference_steps, guidance=request.guidance_scale,
                             scheduler=request.scheduler, on_step=run.step, should_cancel=cancel)
            emit("decode")
            image = sd.decode(loaded, out.latents)
            one = request.model_copy(update={"seed": seed, "count": 1})
            record = run.record(one, image, warnings=warnings, timings=emit.timings())
            record["index"] = i
            name = image_names(stem, request.count)[i]
            result = GenerationResult(request=one, frames=image, record=record)
            if cancel():
                raise Cancelled("cancelled before export")
            emit("export", message=f"writing {name.name}.png")
            result.outputs = [write_image(image[0], name.with_name(name.name + ".png"), metadata=dict(record))]
            results.append(result)
            record["outputs"] = [o.to_dict() for o in result.outputs]
            record["timings"] = {k: round(v, 4) for k, v in emit.lap().items()}  # this image's share of the run
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
