"""Resolving a request before anything loads: the model, its defaults, the seed, device and dtype, this machine's
or server's limits and the model family's rules (:func:`resolve`); and whether any memory plan fits (:func:`check_fits`)."""

from __future__ import annotations

import secrets

from t2v.errors import InvalidRequest, ModelUnavailable
from t2v.families import get_family
from t2v.models.catalog import CATALOG
from t2v.models.device import fit_to_model, plan_device
from t2v.models.presets import NONE, apply_preset
from t2v.models.registry import lookup
from t2v.models.source import local_folder, model_defaults, resolve_source
from t2v.planner.fit import memory_budget
from t2v.planner.memory import choose
from t2v.post.stage import check_post
from t2v.requests import GenerationRequest, check_extras
from t2v.settings import Settings


def resolve(request: GenerationRequest, settings: Settings) -> GenerationRequest:
    """Fill model, defaults, seed, device and dtype; validate all of it, with the model family's rules where
    the model is known without downloading it. Loads no weights."""
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
    family = get_family(family_name) if family_name != "unknown" else None
    if getattr(request, "loras", ()):
        if family is None:
            raise InvalidRequest(f"loras: {model} is not a model t2v knows the family of, so no LoRA can be applied "
                                 "to it", field="loras")
        request = request.model_copy(update={"loras": family.check_loras(request.loras, request.lora_scale, folder)})
    if request.mode == "video" and family is not None:  # a few-step distill's settings, before the model's defaults
        request = apply_preset(request, family_name, model)
    elif getattr(request, "preset", None) not in (None, NONE):
        raise InvalidRequest(f"preset: {model} is not a model t2v knows the family of; leave preset out", field="preset")
    seed = request.seed if request.seed is not None else secrets.randbelow(2**32)
    extra = {"model": model, "seed": seed, **({"motion_adapter": adapter} if adapter is not None else {})}
    card = CATALOG.card(family_name) if family_name != "unknown" else None
    if card is not None and request.mode == "video":  # the family's own settings, with the model's defaults
        extra["extras"] = check_extras(card.extras, request.extras, family=card.name, defaults=defaults)
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
    if family is not None:
        family.check(resolved, folder, model=model)
    if len(resolved.prompt) > settings.max_prompt_chars:
        raise InvalidRequest(f"prompt: longer than {settings.max_prompt_chars} characters", field="prompt")
    post = getattr(resolved, "post", None)
    if post is not None and request.mode == "image":
        raise InvalidRequest("post: post-processing is for videos (video and sequence requests); leave it out",
                             field="post")
    if post is not None and post.active:  # a target fps the clip's fps cannot reach, an output over the limits
        check_post(post, resolved.fps, num_frames=resolved.num_frames, width=resolved.width, height=resolved.height,
                   max_frames=settings.max_frames, max_side=settings.max_side)
    return resolved


def motion_defaults(model: str, adapter: str, settings: Settings):
    """(family, defaults, composed folder or None) of SD 1.5 ``model`` animated by motion adapter ``adapter``,
    without downloading: from the composed folder when both are on disk, else the family's and the
    adapter's registry defaults."""
    try:
        source = resolve_source(model, settings.model_copy(update={"offline": True}), motion_adapter=adapter)
        return source.family, source.defaults, source.path
    except ModelUnavailable as e:
        if "is not in the cache" not in str(e):  # a refusal, not a model still to download
            raise
    spec = lookup(adapter)
    family = get_family("animatediff")
    return family.name, {**family.defaults, **(spec.defaults if spec else {})}, None


def check_fits(request: GenerationRequest, settings: Settings) -> None:
    """Refuse now, as :func:`generate` would before loading weights, a resolved video request that no memory
    plan is predicted to fit in the budget (InvalidRequest naming the fields and what would fit).

    Costs arithmetic once the model's reference dry run is cached (see :func:`t2v.planner.memory.estimate`).
    Loads no weights and downloads nothing: a model not on disk yet is checked when its job runs.
    """
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
           budget=memory_budget(plan.device, settings.memory_budget_gb), defaults=source.defaults)


