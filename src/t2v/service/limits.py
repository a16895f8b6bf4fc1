"""What the service checks before it queues a request from an API or web UI caller: the models and LoRA
adapters callers may name (allow-lists), the cost limits, and whether the request fits in memory.

The command line (``t2v generate``) trusts its user: any local folder, no cost limit; it refuses requests
that do not fit in memory itself (:func:`t2v.runner.modes.generate`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from t2v.errors import InvalidRequest
from t2v.extend.plan import plan_segments
from t2v.families import get_family
from t2v.models.allowlist import allowed_folder, check_allowed, check_available
from t2v.models import weightfiles
from t2v.models.lora import check_lora
from t2v.models.source import check_motion_adapter
from t2v.post.stage import check_post, post_cost
from t2v.requests import UPSCALERS, WEIGHT_FILE_FIELDS, file_fields
from t2v.runner.mode import mode_of
from t2v.runner.plan import RunPlan, plan_run
from t2v.service.assets import is_asset_id
from t2v.settings import Settings

# The one answer to a LoRA adapter a caller may not use: the same whatever is (or is not) at that path.
NOT_ALLOWED_LORA = ("lora: not available on this server; name a LoRA adapter file or folder under its model roots "
                    "(T2V_MODEL_ROOTS)")
COST_FIELDS = "width x height x num_inference_steps"
#: What a caller uploads for an input file of each kind (``knob(file=...)``).
UPLOADS = {"image": "a PNG, JPEG or WebP", "video": "an mp4, webm or gif"}


@dataclass(frozen=True)
class Admitted:
    """A request as the service queues it: ``request`` resolved (model, defaults and seed fixed) and the
    :class:`~t2v.runner.plan.RunPlan` it was admitted with (``plan``; None for a request that runs no model)."""

    request: Any
    plan: RunPlan | None = None

    def row(self) -> dict[str, Any]:
        """What the job row keeps (JSON): its ``request`` and ``plan`` (:meth:`RunPlan.admitted`)."""
        return {"request": self.request.model_dump(mode="json"),
                "plan": None if self.plan is None else self.plan.admitted()}


def admit(request, settings: Settings, api_key=None):
    """``request`` resolved (model, defaults and seed fixed), or InvalidRequest / ModelUnavailable (HTTP 422):
    :func:`admit_plan`'s request."""
    return admit_plan(request, settings, api_key).request


def file_refs(request, kind: str | None = None) -> Iterator[tuple[str, str, str]]:
    """The input files ``request`` names (only those of ``kind``, ``"image"`` or ``"video"``, when given), from
    the fields its type declares as files (:func:`t2v.requests.file_fields`): ``(field, kind, ref)``, a
    tuple-valued field once per file."""
    for name, declared in file_fields(type(request)).items():
        if kind is not None and declared != kind:
            continue
        value = getattr(request, name, None)
        for ref in value if isinstance(value, tuple) else () if value is None else (value,):
            yield name, declared, ref


def admit_plan(request, settings: Settings, api_key=None) -> Admitted:
    """The request resolved and the :class:`~t2v.runner.plan.RunPlan` it is admitted with (:class:`Admitted`),
    or InvalidRequest / ModelUnavailable (HTTP 422).

    Every input file must be an asset id (the service checks it is one of the key's); a request that works on a
    clip made before (:attr:`~t2v.runner.mode.Mode.takes_source`: post) is checked against the upscaler
    allow-list here and against its source by the service.

    In order: the allow-lists (before anything looks at the named paths, so no message depends on them),
    the request's own limits (:func:`t2v.runner.resolve.resolve`), the model being loadable without a download
    the server may not make, the cost limits, and the memory budget (:func:`t2v.runner.plan.plan_run`, which
    downloads nothing: a model not on disk yet is planned when its job runs).
    """
    mode = mode_of(request)
    if mode.takes_source:  # post-processing of a job's or an asset's clip (checked by the service)
        check_post_allowed(request.post, settings)
        return Admitted(request)
    for name, kind, ref in file_refs(request):  # a file path: a server never reads one a caller names
        if not is_asset_id(ref):
            raise InvalidRequest(f"{name}: give an uploaded {kind}'s asset id (POST /v1/assets with {UPLOADS[kind]} "
                                 "file); file paths and URLs are not taken", field=name)
    if request.model is not None:
        check_available(request.model, settings, families=get_family, restricted=True)
    if getattr(request, "motion_adapter", None) is not None:
        check_allowed(request.motion_adapter, settings, get_family, check=check_motion_adapter)
    for i, spec in enumerate(getattr(request, "loras", ())):
        check_lora_allowed(spec.path, settings, field=f"loras.{i}.path")
    for name in WEIGHT_FILE_FIELDS:
        if getattr(request, name, None) is not None:
            check_weight_file_allowed(getattr(request, name), settings, field=name)
    check_post_allowed(getattr(request, "post", None), settings)

    def check(resolved) -> None:
        check_available(resolved.model, settings, families=get_family,
                        motion_adapter=getattr(resolved, "motion_adapter", None))
        check_cost(resolved, settings, api_key)

    # A job's progress is always watched (its ETA): planned from counted work, as its worker will plan it.
    plan = plan_run(request, settings, memory=mode.plans_memory, offline=True, check=check, times=True)
    return Admitted(plan.request, plan)


def check_post_allowed(post, settings: Settings) -> None:
    """A ``post`` block's upscaler and interpolation model allowed on this server (none: nothing to check)."""
    if post is None:
        return
    if post.upscale:
        check_upscaler_allowed(post.upscaler, settings)
    check_interpolation_model_allowed(post.interpolation_model, settings)


def check_lora_allowed(lora: str, settings: Settings, *, field: str = "loras") -> None:
    """A LoRA adapter (a folder, or a .safetensors file) under ``settings.model_roots`` (symlinks and ``..``
    resolved), else :data:`NOT_ALLOWED_LORA`, the same answer whatever is or is not at that path."""
    folder = allowed_folder(lora, settings, cache=False)
    try:
        if folder is not None and (check_lora_folder(folder) or any(folder.glob("*.safetensors"))):
            return
        real = Path(os.path.realpath(lora))
        if real.suffix == ".safetensors" and real.is_file() and allowed_folder(str(real.parent), settings, cache=False):
            return
    except (InvalidRequest, OSError, ValueError):
        pass
    raise InvalidRequest(NOT_ALLOWED_LORA.replace("lora:", f"{field}:", 1), field=field)


def check_weight_file_allowed(file: str, settings: Settings, *, field: str) -> None:
    """A single weight file (``transformer``, ``vae``, ...) under ``settings.model_roots`` (symlinks and ``..``
    resolved), else the same answer whatever is or is not at that path."""
    try:
        real = Path(os.path.realpath(os.path.expanduser(file)))
        if real.suffix in weightfiles.EXTS and real.is_file() and allowed_folder(str(real.parent), settings, cache=False):
            return
    except (OSError, ValueError, RuntimeError):
        pass
    raise InvalidRequest(f"{field}: not available on this server; name a .safetensors or .gguf file under its model "
                         "roots (T2V_MODEL_ROOTS)", field=field)


def check_lora_folder(folder: Path) -> bool:
    try:
        return bool(check_lora(folder))
    except InvalidRequest:
        return False


def check_upscaler_allowed(upscaler: str, settings: Settings) -> None:
    """A built-in upscaler, or a weight file under ``settings.model_roots`` (symlinks and ``..`` resolved): a caller
    never makes the server read a file anywhere else."""
    if upscaler in UPSCALERS:
        return
    try:
        path = Path(os.path.realpath(Path(upscaler).expanduser()))
        if path.is_file() and any(root in path.parents for root in settings.model_root_paths):
            return
    except (OSError, ValueError, RuntimeError):
        pass
    raise InvalidRequest(f"post.upscaler: not available on this server; choose {', '.join(UPSCALERS)}, or a weight "
                         "file under its model roots (T2V_MODEL_ROOTS)", field="post.upscaler")


def check_interpolation_model_allowed(folder: str | None, settings: Settings) -> None:
    """No model folder (rife's ``interpolation_model``), or one under ``settings.model_roots`` (symlinks and ``..``
    resolved): a caller never makes the server read a folder anywhere else."""
    if not folder:
        return
    try:
        path = Path(os.path.realpath(Path(folder).expanduser()))
        if path.is_dir() and any(root in path.parents for root in settings.model_root_paths):
            return
    except (OSError, ValueError, RuntimeError):
        pass
    raise InvalidRequest("post.interpolation_model: not available on this server; give a RIFE model folder under "
                         "its model roots (T2V_MODEL_ROOTS)", field="post.interpolation_model")


def request_cost(request) -> int:
    """frames (images for image mode) x width x height x steps; a longer video's frames: every segment's."""
    mode = mode_of(request)
    frames = getattr(request, mode.count_field)
    if mode.takes_long and getattr(request, "is_long", False):
        frames *= len(plan_segments(request, clip_frames=1 if request.extend else 0, continuation="video").segments)
    return frames * request.width * request.height * request.num_inference_steps


def inline_post_cost(request) -> int:
    """What a request's own ``post`` block costs on the clip it makes (:func:`t2v.post.stage.post_cost`); 0 for
    none, and for a post job, whose steps are counted against its source (:func:`check_post_cost`)."""
    post = getattr(request, "post", None)
    if post is None or not post.active or mode_of(request).takes_source:
        return 0
    return post_cost(post, request.fps, num_frames=request.num_frames, width=request.width, height=request.height)


def check_inline_post(request, settings: Settings, budget: int | None) -> None:
    """A request's own ``post`` block on the clip it makes, checked as a post job's is: the limits and the frames
    held at once against the memory ``budget`` (InvalidRequest naming ``post``)."""
    post = getattr(request, "post", None)
    if post is not None and post.active and not mode_of(request).takes_source:
        check_post(post, request.fps, num_frames=request.num_frames, width=request.width, height=request.height,
                   max_frames=settings.max_frames, max_side=settings.max_side, max_bytes=budget)


def priority_limit(settings: Settings, api_key=None) -> int | None:
    """The highest priority a job of ``api_key`` may have: the key's own (``t2v keys create --max-priority``), else
    the server's ``T2V_MAX_PRIORITY``; None without a key (a server without keys serves one user)."""
    if api_key is None:
        return None
    own = getattr(api_key, "max_priority", None)
    return settings.max_priority if own is None else own


def check_priority(priority: int | None, settings: Settings, api_key=None) -> None:
    """Refuse a priority over the key's highest (InvalidRequest naming ``priority`` and the nearest valid value)."""
    limit = priority_limit(settings, api_key)
    if limit is not None and priority is not None and priority > limit:
        raise InvalidRequest(f"priority: {priority} is over this API key's highest priority, {limit}; nearest valid: "
                             f"{limit}", field="priority")


def cost_limit(settings: Settings, api_key=None) -> tuple[int, str] | None:
    """The cost limit that applies, the server's ``max_cost`` or the key's (the lower one), and whose it is."""
    limits = [(limit, whose) for limit, whose in ((settings.max_cost, "this server's"),
                                                  (getattr(api_key, "max_cost", None), "this API key's")) if limit]
    return min(limits, key=lambda pair: pair[0]) if limits else None


def check_post_cost(spec, fps: float, *, num_frames: int, width: int, height: int, settings: Settings,
                    api_key=None) -> None:
    """Refuse post-processing over the cost limit: each step costs the frames x width x height it makes (one
    pass over its output, as one denoising step costs one pass over the clip)."""
    found = cost_limit(settings, api_key)
    if found is None:
        return
    limit, whose = found
    cost = post_cost(spec, fps, num_frames=num_frames, width=width, height=height)
    if cost > limit:
        raise InvalidRequest(f"post: these steps on {num_frames} frames of {width}x{height} cost {cost:,} (each step's "
                             f"frames x width x height), over {whose} limit of {limit:,}; fewer steps, smaller "
                             "factors or a shorter clip", field="post")


def check_cost(request, settings: Settings, api_key=None) -> None:
    """Refuse a resolved request over the server's ``max_cost`` or the key's (the lower one applies)."""
    found = cost_limit(settings, api_key)
    if found is None:
        return
    limit, whose = found
    cost = request_cost(request)
    post = inline_post_cost(request)
    if cost <= limit < cost + post:
        raise InvalidRequest(f"post: the video costs {cost:,} ({COST_FIELDS}) and its post steps {post:,} (each step's "
                             f"frames x width x height), {cost + post:,} in all, over {whose} limit of {limit:,}; fewer "
                             "post steps, smaller factors or a shorter clip", field="post")
    if cost <= limit:
        return
    mode = mode_of(request)
    field, (w, h, steps) = mode.count_field, (request.width, request.height, request.num_inference_steps)
    most_frames, most_steps = limit // (w * h * steps), limit // (w * h)
    if mode.takes_long and getattr(request, "is_long", False):
        segments = cost // (request.num_frames * w * h * steps)
        raise InvalidRequest(
            f"seconds: a longer video of {segments} segments of {request.num_frames} frames at {w}x{h} and {steps} "
            f"steps costs {cost:,} (frames x {COST_FIELDS}), over {whose} limit of {limit:,}; at most "
            f"{most_frames} frames in all at this size and steps", field="seconds")
    if most_frames:
        hint = f"at {w}x{h} and {steps} steps at most {field}={most_frames}"
    elif most_steps:
        hint = f"at {w}x{h} and 1 {'image' if field == 'count' else 'frame'} at most num_inference_steps={most_steps}"
    else:
        hint = f"at most {limit:,} pixels x steps in all"
    raise InvalidRequest(
        f"{field}, width, height, num_inference_steps: the cost {getattr(request, field)} x {w} x {h} x {steps} = "
        f"{cost:,} ({field} x {COST_FIELDS}) is over {whose} limit of {limit:,}; {hint}", field=field)
