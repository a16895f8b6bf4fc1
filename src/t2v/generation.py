"""``generate()``: request -> validated, resolved request -> model -> engine -> frames -> files + record."""

from __future__ import annotations

import logging
import re
import secrets
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from t2v.engine.base import CheckpointSpec, engine_for
from t2v.errors import Cancelled, InvalidRequest
from t2v.request import FORMATS, GenerationRequest, GenerationResult, ProgressEvent
from t2v.settings import Settings, get_settings

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[ProgressEvent], None]
_EXT_FORMATS = {"." + f: f for f in FORMATS if f != "png"}


def slugify(text: str, max_len: int = 40) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:max_len].rstrip("-") or "video"


def output_stem(output: str | Path | None, prompt: str) -> tuple[Path, str | None]:
    """Where files go: (path without extension, format implied by the extension or None).

    ``None`` -> ``./outputs/<time>-<slug>``; an existing folder (or a path ending in /) -> a file named
    that way inside it; ``clip.mp4`` -> ``clip`` + mp4.
    """
    name = f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{slugify(prompt)}"
    if output is None:
        return Path("outputs") / name, None
    text = str(output)
    path = Path(text).expanduser()
    if text.endswith(("/", "\\")) or path.is_dir():
        return path / name, None
    fmt = _EXT_FORMATS.get(path.suffix.lower())
    return (path.with_suffix(""), fmt) if fmt else (path, None)


def resolve(request: GenerationRequest, settings: Settings) -> GenerationRequest:
    """Fill model, defaults, seed, device and dtype; validate all of it. Loads no weights."""
    from t2v.models.loader import model_defaults

    image_mode = getattr(request, "mode", "video") != "video"
    model = request.model or (settings.default_image_model if image_mode else settings.default_model)
    family, defaults = model_defaults(model)
    if image_mode and family not in ("sd", "sdxl", "unknown"):
        hint = f"it is a {family} model; image mode needs a text-to-image (Stable Diffusion 1.x/2.x/XL) model"
        raise InvalidRequest(f"model: {model} cannot make images: {hint}", field="model")
    seed = request.seed if request.seed is not None else secrets.randbelow(2**32)
    extra = {"model": model, "seed": seed}
    if request.device == "auto":
        extra["device"] = settings.device
    if request.dtype == "auto":
        extra["dtype"] = settings.dtype
    resolved = request.with_defaults(defaults, **extra)
    limits = (("num_frames", settings.max_frames), ("num_inference_steps", settings.max_steps),
              ("width", settings.max_side), ("height", settings.max_side))
    for field, limit in limits:
        if getattr(resolved, field) > limit:
            raise InvalidRequest(f"{field}: {getattr(resolved, field)} is over this server's limit of {limit}", field=field)
    if resolved.lora:
        from t2v.models.lora import check_lora

        resolved = resolved.model_copy(update={"lora": str(check_lora(resolved.lora))})
    if len(resolved.prompt) > settings.max_prompt_chars:
        raise InvalidRequest(f"prompt: longer than {settings.max_prompt_chars} characters", field="prompt")
    return resolved


def check_outputs(stem: Path, formats, *, extra: tuple[str, ...] = ()) -> None:
    """Refuse, before any work, outputs that could not be written: the folder (or, when it does not exist yet,
    its nearest existing parent: nothing is created here) must take new files, and no file about to be written
    (a video, the ``.json`` sidecar, ``stem`` + each of ``extra``) may be an existing folder. Raises
    OutputNotWritable naming the path."""
    from t2v.errors import OutputNotWritable
    from t2v.export import EXTENSIONS, check_writable

    existing = next(p for p in (stem.parent, *stem.parent.parents) if p.exists() or p == Path(p.anchor))
    if not existing.is_dir():
        raise OutputNotWritable(f"output: {existing} is a file, not a folder", field="output")
    check_writable(existing)  # a probe file, removed at once
    for suffix in [EXTENSIONS[f] for f in formats if f != "png"] + [".json", *extra]:  # png: a folder, replaced
        path = stem.with_name(stem.name + suffix)
        if path.is_dir():
            raise OutputNotWritable(f"output: {path} is an existing folder; choose another output name", field="output")


def check_fits(request: GenerationRequest, settings: Settings) -> None:
    """Refuse now, as :func:`generate` would before loading weights, a resolved video request that no memory
    plan is predicted to fit in the budget (InvalidRequest naming the fields and what would fit).

    Costs arithmetic once the model's reference dry run is cached (see :func:`t2v.models.memory.estimate`).
    Loads no weights and downloads nothing: a model not on disk yet is checked when its job runs.
    """
    from t2v.errors import ModelUnavailable
    from t2v.models.device import plan_device
    from t2v.models.fit import memory_budget
    from t2v.models.loader import resolve_source
    from t2v.models.memory import choose

    if getattr(request, "mode", "video") != "video":
        return  # image mode has no memory planner yet
    try:
        source = resolve_source(request.model, settings.model_copy(update={"offline": True}))
    except ModelUnavailable:
        return
    if source.family != "modelscope":
        return  # the planner models UNet3D (ModelScope-layout) models only
    plan = plan_device(request.device, request.dtype)
    choose(source.path, request, requested=request.memory, device=plan.device, dtype=plan.dtype,
           budget=memory_budget(plan.device, settings.memory_budget_gb))


def generate(
    request: GenerationRequest,
    *,
    on_progress: ProgressCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
    output: str | Path | None = None,
    checkpoint: CheckpointSpec | None = None,
    settings: Settings | None = None,
    on_preview: Callable[[int, np.ndarray], None] | None = None,
) -> GenerationResult:
    """Generate a video for ``request``; write its files (``request.formats``) and JSON record.

    ``on_progress`` receives :class:`ProgressEvent` s; ``should_cancel`` is polled between denoising
    steps and raises :class:`t2v.errors.Cancelled` when it returns True. ``on_preview(step, image)`` gets a
    cheap RGB preview of the middle frame after each step (throttle in the callback). Files go to ``output``
    (see :func:`output_stem`); with ``formats=()`` nothing is written and the frames are returned.
    """
    from t2v.engine.vae import to_uint8
    from t2v.export import frames_sha256
    from t2v.models.device import plan_device
    from t2v.models.fit import memory_budget
    from t2v.models.loader import load_model, resolve_source
    from t2v.models.memory import choose as choose_memory_plan
    from t2v.models.temporal import folder_frame_limit
    from t2v.record import build_record

    settings = settings or get_settings()
    cancel = should_cancel or (lambda: False)
    t_start = time.perf_counter()
    emit = _emitter(on_progress, t_start)

    stem, implied = output_stem(output, request.prompt)
    if implied and implied not in request.formats:
        request = request.model_copy(update={"formats": (implied, *request.formats)})
    request = resolve(request, settings)
    if request.formats:
        check_outputs(stem, request.formats)

    emit("load", message=f"loading {request.model}")
    plan = plan_device(request.device, request.dtype)
    source = resolve_source(request.model, settings, want_fp16=plan.is_accelerator and plan.dtype != "fp32")
    frame_limit = folder_frame_limit(source.path)
    if frame_limit and request.num_frames > frame_limit:
        raise InvalidRequest(f"num_frames: {request.num_frames} is more than this model's frame-position embeddings cover "
                             f"({frame_limit})", field="num_frames")
    if cancel():
        raise Cancelled("cancelled before loading the model")
    memory, predictions = choose_memory_plan(source.path, request, requested=request.memory, device=plan.device, dtype=plan.dtype,
                                             budget=memory_budget(plan.device, settings.memory_budget_gb))
    loaded = load_model(source, plan, offload=memory.offload, lora=request.lora, lora_scale=request.lora_scale)
    # Record what actually ran (after fallbacks), not what was asked.
    request = request.model_copy(update={"device": plan.device, "dtype": plan.dtype})

    def on_step(step: int, total: int, latents) -> None:
        emit("denoise", step, total)
        if on_preview is not None:
            from t2v.engine.vae import latent_preview

            on_preview(step, latent_preview(latents, 2 ** (len(loaded.vae.config.block_out_channels) - 1)))

    run = engine_for(source.family).run(
        loaded,
        request,
        on_stage=lambda stage: emit(stage),
        on_step=on_step,
        should_cancel=cancel,
        checkpoint=checkpoint,
        memory=memory,
    )
    frames = to_uint8(run.frames)
    timings = {"load_s": loaded.load_s, **run.timings}
    record = build_record(request, source=source, loaded=loaded, warnings=[*plan.warnings, *run.warnings],
                          timings=timings, frames_sha256=frames_sha256(frames), resumed_from_step=run.resumed_from_step)
    chosen = next(p for p in predictions if p.plan == memory.name)
    record["memory_plan"] = {"requested": request.memory, "plan": memory.name, "predicted_peak_mb": round(chosen.peak_bytes / 2**20, 1)}
    for w in run.warnings:
        logger.warning(w)

    result = GenerationResult(request=request, frames=frames, record=record)
    export_result(result, stem, emit=emit, cancel=cancel, t_start=t_start)
    emit("done", message="done")
    return result


_RUNTIME_MODULES = ("t2v.engine.unet3d", "t2v.engine.vae", "t2v.engine.schedulers", "t2v.engine.checkpoint",
                    "t2v.models.memory", "t2v.models.lora", "t2v.record", "t2v.export", "t2v.sequence.run", "av", "PIL.Image")


def import_runtime() -> None:
    """Import everything running a request needs (torch, the diffusers/transformers classes t2v loads, t2v's
    engine and writers) in the calling thread.

    diffusers and transformers resolve their classes lazily, on first use, and not thread-safely: two threads
    doing it at once can fail with ``ImportError: cannot import name 'AutoencoderKL'``. So a server calls this
    before it starts threads that load models or run jobs (:meth:`t2v.service.JobService.start`).
    """
    import importlib

    import torch  # noqa: F401
    from diffusers import (AutoencoderKL, DDIMScheduler, DPMSolverMultistepScheduler,  # noqa: F401
                           EulerDiscreteScheduler, UNet2DConditionModel, UNet3DConditionModel, UniPCMultistepScheduler)
    from diffusers.models.embeddings import SinusoidalPositionalEmbedding  # noqa: F401
    from diffusers.models.transformers.transformer_temporal import TransformerTemporalModel  # noqa: F401
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer  # noqa: F401

    for name in _RUNTIME_MODULES:
        importlib.import_module(name)


def run_request(request: GenerationRequest, **kwargs) -> GenerationResult:
    """Run a video, sequence or (single) image request with :func:`generate`'s arguments."""
    mode = getattr(request, "mode", "video")
    if mode == "sequence":
        from t2v.sequence.run import generate_sequence

        return generate_sequence(request, **kwargs)
    if mode == "image":
        from t2v.sequence.run import generate_images

        kwargs.pop("checkpoint", None), kwargs.pop("on_preview", None)
        return generate_images(request, **kwargs)[-1]
    return generate(request, **kwargs)


def export_result(result: GenerationResult, stem: Path, *, emit, cancel: Callable[[], bool], t_start: float,
                  extra_files: Callable[[dict], None] | None = None) -> None:
    """Write ``result``'s formats (record embedded) and then its sidecar; all or nothing.

    ``extra_files(record)`` may write more files (figures) and note them in the record before the sidecar.
    """
    from t2v.export import remove_output, write_outputs, write_sidecar

    record, request = result.record, result.request
    if not request.formats and extra_files is None:
        record["outputs"] = []
        record["timings"]["total_s"] = round(time.perf_counter() - t_start, 4)
        return
    if cancel():
        raise Cancelled("cancelled before export")
    emit("export", message="encoding " + ", ".join(request.formats))
    t_enc = time.perf_counter()
    result.outputs = write_outputs(result.frames, stem, request.formats, request.fps, metadata=dict(record), crf=request.crf)
    record["timings"]["encode_s"] = round(time.perf_counter() - t_enc, 4)
    record["outputs"] = [o.to_dict() for o in result.outputs]
    try:
        if extra_files is not None:
            extra_files(record)
        record["timings"]["total_s"] = round(time.perf_counter() - t_start, 4)
        result.sidecar = write_sidecar(record, stem.with_name(stem.name + ".json"))
    except BaseException:
        for o in result.outputs:
            remove_output(o.path)
        raise


def _emitter(on_progress: ProgressCallback | None, t_start: float):
    denoise_start: list[float] = []

    def emit(stage: str, step: int = 0, total: int = 0, message: str = "") -> None:
        if on_progress is None:
            return
        now = time.perf_counter()
        eta = None
        if stage == "denoise":
            if not denoise_start:
                denoise_start.append(now)
            if step and total:
                eta = (now - denoise_start[0]) / step * (total - step)
        on_progress(ProgressEvent(stage=stage, step=step, total=total, elapsed_s=now - t_start, eta_s=eta, message=message))

    return emit
