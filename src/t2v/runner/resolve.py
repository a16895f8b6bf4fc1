"""Resolving a request before anything loads: the model, its defaults, the seed, device and dtype, this machine's
or server's limits and the model family's rules (:func:`resolve`). Planning the run from there is
:func:`t2v.runner.plan.plan_run`'s."""

from __future__ import annotations

import secrets

from t2v.errors import InvalidRequest, ModelUnavailable
from t2v.families import get_family
from t2v.models.catalog import CATALOG
from t2v.models.presets import NONE, apply_preset
from t2v.models.registry import REGISTRY, lookup
from t2v.models.source import local_folder, model_defaults, resolve_source
from t2v.post.stage import check_post
from t2v.requests import GenerationRequest, check_extras
from t2v.runner.mode import mode_of
from t2v.settings import Settings


def resolve(request: GenerationRequest, settings: Settings) -> GenerationRequest:
    """Fill model, defaults, seed, device and dtype; validate all of it, with the model family's rules where
    the model is known without downloading it. Loads no weights."""
    mode = mode_of(request)
    model = request.model or mode.default_model_of(settings)
    adapter, folder = getattr(request, "motion_adapter", None), None
    spec = lookup(model)
    if spec is not None and spec.base_model and adapter is None:  # a motion adapter's entry: SD 1.5 + the adapter
        model, adapter = spec.base_model, spec.id
    mode.check_adapter(adapter)
    if adapter is not None:
        family_name, defaults, folder = motion_defaults(model, adapter, settings)
    else:
        family_name, defaults = model_defaults(model, get_family)
        folder = local_folder(model)
    family = get_family(family_name) if family_name != "unknown" else None
    if getattr(request, "loras", ()):
        if family is None:
            raise InvalidRequest(f"loras: {model} is not a model t2v knows the family of, so no LoRA can be applied "
                                 "to it", field="loras")
        request = request.model_copy(update={"loras": family.check_loras(request.loras, request.lora_scale, folder)})
    if mode.takes_family_settings and family is not None:  # a few-step distill's settings, before the model's defaults
        request = apply_preset(request, family_name, model)
    elif getattr(request, "preset", None) not in (None, NONE):
        raise InvalidRequest(f"preset: {model} is not a model t2v knows the family of; leave preset out", field="preset")
    seed = request.seed if request.seed is not None else secrets.randbelow(2**32)
    extra = {"model": model, "seed": seed, **({"motion_adapter": adapter} if adapter is not None else {})}
    card = CATALOG.card(family_name) if family_name != "unknown" else None
    if card is not None and mode.takes_family_settings:  # the family's own settings, with the model's defaults
        extra["extras"] = check_extras(card.extras, request.extras, family=card.name, defaults=defaults)
    if request.device == "auto":
        extra["device"] = settings.device
    if request.dtype == "auto":
        extra["dtype"] = settings.dtype
    if mode.takes_speed_options:  # the server's (or T2V_*) speed options where the request leaves them
        for name, unset in (("attention", "auto"), ("weights", "auto"), ("text_encoder_weights", "auto"),
                            ("compile", False)):
            if getattr(request, name) == unset and getattr(settings, name) != unset:
                extra[name] = getattr(settings, name)
        needed = family.rules(folder).kernel if family is not None and folder is not None else None
        if needed and extra.get("attention", request.attention) == "auto":  # the one kernel this model runs with
            extra["attention"] = needed
    resolved = request.with_defaults(defaults, **extra)
    mode.check(resolved)  # what this mode does not take: an input image, a longer video, speed options, post
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
    if post is not None and post.active:  # a target fps the clip's fps cannot reach, an output over the limits
        check_post(post, resolved.fps, num_frames=resolved.num_frames, width=resolved.width, height=resolved.height,
                   max_frames=settings.max_frames, max_side=settings.max_side)
    return resolved


def motion_defaults(model: str, adapter: str, settings: Settings):
    """(family, defaults, composed folder or None) of SD 1.5 ``model`` animated by motion adapter ``adapter``,
    without downloading: from the composed folder when both are on disk, else the card's and the adapter's
    registry defaults. The family is the one the adapter's registry entry names (an adapter not registered: the
    one the registered adapters name), read from its card."""
    try:
        source = resolve_source(model, settings.model_copy(update={"offline": True}), families=get_family,
                                motion_adapter=adapter)
        return source.family, source.defaults, source.path
    except ModelUnavailable as e:
        if "is not in the cache" not in str(e):  # a refusal, not a model still to download
            raise
    spec = lookup(adapter)
    card = CATALOG.card(spec.family if spec else next(s.family for s in REGISTRY.values() if s.base_model))
    return card.name, {**card.defaults, **(spec.defaults if spec else {})}, None

