"""``generate()`` and what every mode shares before and after sampling: output names, resolving a request
(defaults, seed, limits, the model family's rules), output checks, export. The runner is :mod:`t2v.pipeline`."""

from __future__ import annotations

import logging
import os
import re
import secrets
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from t2v.engine.base import CheckpointSpec
from t2v.errors import Cancelled, InvalidRequest
from t2v.requests import FORMATS, GenerationRequest, GenerationResult, ProgressEvent
from t2v.settings import Settings, get_settings

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[ProgressEvent], None]
_EXT_FORMATS = {"." + f: f for f in FORMATS if f != "png"}
# Video file endings of formats t2v does not write (any other ending is kept as part of the name: run.v2; image
# endings are image mode's: light.png).
OTHER_MEDIA = (".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".ogv", ".3gp")


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
    if fmt is None and path.suffix.lower() in OTHER_MEDIA:
        from t2v.errors import InvalidRequest

        raise InvalidRequest(f"output: t2v does not write {path.suffix} files; end the name in "
                             f"{', '.join(_EXT_FORMATS)} (e.g. {path.with_suffix('.mp4').name}), or give a folder",
                             field="output")
    return (path.with_suffix(""), fmt) if fmt else (path, None)


def resolve(request: GenerationRequest, settings: Settings) -> GenerationRequest:
    """Fill model, defaults, seed, device and dtype; validate all of it, with the model family's rules where
    the model is known without downloading it. Loads no weights."""
    from t2v.families import get_family
    from t2v.models.source import local_folder, model_defaults
    from t2v.models.registry import lookup

    model = request.model or (settings.default_model if request.mode == "video" else settings.default_image_model)
    adapter, folder = getattr(request, "motion_adapter", None), None
    spec = lookup(model)
    if spec is not None and spec.base_model and adapter is None:  # a motion adapter's entry: SD 1.5 + the adapter
        model, adapter = spec.base_model, spec.id
    if adapter is not None and request.mode != "video":
        raise InvalidRequest("motion_adapter: a motion adapter makes videos; image mode takes a text-to-image model",
                             field="motion_adapter")
    if adapter is not None:
        family_name, defaults, folder = motion_defaults(model, adapter, settings)
    else:
        family_name, defaults = model_defaults(model)
        folder = local_folder(model)
    seed = request.seed if request.seed is not None else secrets.randbelow(2**32)
    extra = {"model": model, "seed": seed, **({"motion_adapter": adapter} if adapter is not None else {})}
    if request.device == "auto":
        extra["device"] = settings.device
    if request.dtype == "auto":
        extra["dtype"] = settings.dtype
    if request.mode == "video":  # the server's (or T2V_*) speed options where the request leaves them
        for name, unset in (("attention", "auto"), ("weights", "auto"), ("compile", False)):
            if getattr(request, name) == unset and getattr(settings, name) != unset:
                extra[name] = getattr(settings, name)
    resolved = request.with_defaults(defaults, **extra)
    if request.mode != "video" and resolved.image:
        raise InvalidRequest("image: only video requests take an input image (image-to-video)", field="image")
    if request.mode != "video" and resolved.is_long:
        raise InvalidRequest("seconds: only video requests make longer videos (seconds, prompt_schedule, extend); a "
                             "sequence takes keyframes", field="seconds")
    if request.mode != "video":
        for name, off in (("cache", None), ("compile", False), ("weights", "auto"), ("attention", "auto")):
            if getattr(resolved, name) != off:
                raise InvalidRequest(f"{name}: only video requests take speed options yet; leave it at {off}", field=name)
    limits = (("num_frames", settings.max_frames), ("num_inference_steps", settings.max_steps),
              ("width", settings.max_side), ("height", settings.max_side))
    for field, limit in limits:
        if getattr(resolved, field) > limit:
            raise InvalidRequest(f"{field}: {getattr(resolved, field)} is over this server's limit of {limit}", field=field)
    family = get_family(family_name) if family_name != "unknown" else None
    if family is not None:
        family.check(resolved, folder, model=model)
    if resolved.lora:
        from t2v.models.lora import check_lora

        adapter = family.check_lora(resolved.lora) if family is not None else check_lora(resolved.lora)
        resolved = resolved.model_copy(update={"lora": str(adapter)})
    if len(resolved.prompt) > settings.max_prompt_chars:
        raise InvalidRequest(f"prompt: longer than {settings.max_prompt_chars} characters", field="prompt")
    post = getattr(resolved, "post", None)
    if post is not None and request.mode == "image":
        raise InvalidRequest("post: post-processing is for videos (video and sequence requests); leave it out",
                             field="post")
    if post is not None and post.active:  # a target fps the clip's fps cannot reach, an output over the limits
        from t2v.post.stage import check_post

        check_post(post, resolved.fps, num_frames=resolved.num_frames, width=resolved.width, height=resolved.height,
                   max_frames=settings.max_frames, max_side=settings.max_side)
    return resolved


def motion_defaults(model: str, adapter: str, settings: Settings):
    """(family, defaults, composed folder or None) of SD 1.5 ``model`` animated by motion adapter ``adapter``,
    without downloading: from the composed folder when both are on disk, else the family's and the
    adapter's registry defaults."""
    from t2v.errors import ModelUnavailable
    from t2v.families import get_family
    from t2v.models.source import resolve_source
    from t2v.models.registry import lookup

    try:
        source = resolve_source(model, settings.model_copy(update={"offline": True}), motion_adapter=adapter)
        return source.family, source.defaults, source.path
    except ModelUnavailable as e:
        if "is not in the cache" not in str(e):  # a refusal, not a model still to download
            raise
    spec = lookup(adapter)
    family = get_family("animatediff")
    return family.name, {**family.defaults, **(spec.defaults if spec else {})}, None


def check_outputs(stem: Path, formats, *, extra: tuple[str, ...] = (), inputs=()) -> None:
    """Refuse, before any work, outputs that could not be written: the folder (or, when it does not exist yet,
    its nearest existing parent: nothing is created here) must take new files, and no file about to be written
    (a video, the ``.json`` sidecar, ``stem`` + each of ``extra``) may be an existing folder or one of the run's
    ``inputs`` (the clip it extends, its input video or image: writing over it would lose it, and the record
    would name a file that no longer exists). Raises OutputNotWritable / InvalidRequest naming the path."""
    from t2v.errors import OutputNotWritable
    from t2v.export import EXTENSIONS, check_writable

    existing = next(p for p in (stem.parent, *stem.parent.parents) if p.exists() or p == Path(p.anchor))
    if not existing.is_dir():
        raise OutputNotWritable(f"output: {existing} is a file, not a folder", field="output")
    check_writable(existing)  # a probe file, removed at once
    taken = {os.path.realpath(Path(p).expanduser()) for p in inputs if p and Path(p).expanduser().is_file()}
    for suffix in [EXTENSIONS[f] for f in formats if f != "png"] + [".json", *extra]:  # png: a folder, replaced
        path = stem.with_name(stem.name + suffix)
        if path.is_dir():
            raise OutputNotWritable(f"output: {path} is an existing folder; choose another output name", field="output")
        if os.path.realpath(path) in taken:
            from t2v.errors import InvalidRequest

            raise InvalidRequest(f"output: {path} is an input of this run; choose another output name (e.g. "
                                 f"{stem.name}-2{suffix})", field="output")


def check_fits(request: GenerationRequest, settings: Settings) -> None:
    """Refuse now, as :func:`generate` would before loading weights, a resolved video request that no memory
    plan is predicted to fit in the budget (InvalidRequest naming the fields and what would fit).

    Costs arithmetic once the model's reference dry run is cached (see :func:`t2v.models.memory.estimate`).
    Loads no weights and downloads nothing: a model not on disk yet is checked when its job runs.
    """
    from t2v.errors import ModelUnavailable
    from t2v.models.device import fit_to_model, plan_device
    from t2v.models.fit import memory_budget
    from t2v.models.source import resolve_source
    from t2v.models.memory import choose

    if request.mode != "video":
        return  # image mode has no memory planner yet
    try:
        source = resolve_source(request.model, settings.model_copy(update={"offline": True}),
                                motion_adapter=getattr(request, "motion_adapter", None))
    except ModelUnavailable:
        return
    plan = fit_to_model(plan_device(request.device, request.dtype, cpu_bf16=settings.cpu_bf16), source.path,
                        asked=request.dtype, cpu_bf16=settings.cpu_bf16)
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
    resolve_image: Callable[[str], Path] | None = None,
) -> GenerationResult:
    """Generate a video for ``request``; write its files (``request.formats``) and JSON record.

    ``on_progress`` receives :class:`ProgressEvent` s; ``should_cancel`` is polled between denoising
    steps and raises :class:`t2v.errors.Cancelled` when it returns True. ``on_preview(step, image)`` gets a
    cheap RGB preview of the middle frame after each step (throttle in the callback). Files go to ``output``
    (see :func:`output_stem`); with ``formats=()`` nothing is written and the frames are returned. With
    ``request.image`` (image-to-video), ``resolve_image`` maps it to a file (default: it is a path).
    """
    from t2v.pipeline import generate_video

    return generate_video(request, on_progress=on_progress, should_cancel=should_cancel, output=output,
                          checkpoint=checkpoint, settings=settings or get_settings(), on_preview=on_preview,
                          resolve_image=resolve_image)


_RUNTIME_MODULES = ("t2v.pipeline", "t2v.engine.vae", "t2v.engine.schedulers", "t2v.engine.checkpoint",
                    "t2v.models.memory", "t2v.models.lora", "t2v.record", "t2v.export", "t2v.sequence.run", "av", "PIL.Image")


def import_runtime() -> None:
    """Import everything running a request needs (torch, the diffusers/transformers classes t2v loads, t2v's
    engine and writers) in the calling thread.

    diffusers and transformers resolve their classes lazily, on first use, and not thread-safely: two threads
    doing it at once can fail with ``ImportError: cannot import name 'AutoencoderKL'``. So a server calls this
    before it starts threads that load models or run jobs (:meth:`t2v.service.JobService.start`).
    """
    import importlib

    import diffusers
    import torch  # noqa: F401
    import transformers
    from diffusers.models.embeddings import SinusoidalPositionalEmbedding  # noqa: F401
    from diffusers.models.transformers.transformer_temporal import TransformerTemporalModel  # noqa: F401

    from t2v.families import all_families

    # every family module (and plugin) once, here, and every class a family may load
    names = {cls for fam in all_families().values() for c in fam.components for cls in c.classes}
    for name in sorted(names | {"AutoencoderKL", "CLIPTextConfig", "AutoTokenizer"}):
        for library in (diffusers, transformers):
            try:
                getattr(library, name)
                break
            except (AttributeError, ImportError):
                continue

    for name in _RUNTIME_MODULES:
        importlib.import_module(name)


def run_request(request: GenerationRequest, **kwargs) -> GenerationResult:
    """Run a video, sequence or (single) image request with :func:`generate`'s arguments (see
    :func:`t2v.pipeline.run`)."""
    from t2v.pipeline import run

    return run(request, **kwargs)


def export_result(result: GenerationResult, stem: Path, *, emit, cancel: Callable[[], bool], t_start: float,
                  extra_files: Callable[[dict], None] | None = None, fps: float | None = None) -> None:
    """Write ``result``'s formats (record embedded) and then its sidecar; all or nothing.

    ``extra_files(record)`` may write more files (figures) and note them in the record before the sidecar.
    ``fps``: the frames' rate when post-processing changed it (else the request's).
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
    result.outputs = write_outputs(result.frames, stem, request.formats, fps or request.fps, metadata=dict(record),
                                   crf=request.crf)
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
