"""Step caches: ``--cache NAME[:KEY=VALUE,...]`` (names and defaults: :data:`t2v.requests.CACHES`).

A step cache reuses work from earlier denoising steps instead of recomputing it. The request names it, the
record keeps its canonical spelling (every parameter), so a replay runs the very same cache and gives the
same frames. Each family declares the caches it takes (``Family.caches``); :func:`check` refuses the others
before anything loads.

* ``deepcache`` (UNet families: ModelScope / Zeroscope, AnimateDiff): t2v's own DeepCache-style reuse of the
  deep U-Net features every ``interval`` steps (:mod:`t2v.sampling.deepcache`). Resumes bitwise.
* diffusers' hooks (transformer families): ``fbc`` (FirstBlockCache), ``taylorseer``, ``magcache`` (needs
  ``t2v cache calibrate``), ``pab`` (PyramidAttentionBroadcast), ``fastercache``.

Every cache works on the run's private view of the denoiser (:func:`t2v.sampling.runtime.private_view`), never
on the loaded model that concurrent runs share. For diffusers' hooks the run's transformer is a dispatcher:
each guidance branch (told apart by its prompt embeddings, the same tensor at every step) gets its own
hooked view, called inside ``cache_context`` with the step's timestep. PAB's and FasterCache's states are
not kept per context by diffusers, so separate views keep a conditional pass from reusing an
unconditional one. FasterCache skips the unconditional half of a batched guidance pass only where the family
names its output layout (``Family.fastercache_layout``, CogVideoX); elsewhere it reuses attention only.

A run resumed from a checkpoint with one of diffusers' hooks starts the hook's state afresh at the resumed
step (the first step after it is computed in full; MagCache's ratio schedule starts again from its first
entry), so its frames may differ from an uninterrupted run's; DeepCache's kept feature is in the checkpoint.
"""

from __future__ import annotations

import json
import logging
import re
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Callable

from t2v.requests import CacheSpec, cache_spec
from t2v.errors import InvalidRequest

logger = logging.getLogger(__name__)

HOOKED = ("fbc", "taylorseer", "magcache", "pab", "fastercache")  # diffusers' hooks
STEP_CACHE = "t2v_step_cache"  # the attribute a run's denoiser view carries its cache under
TRANSFORMERS = ("transformer", "transformer_2")
# TaylorSeer predicts the outputs of every block's attention and feed-forward (diffusers' default patterns
# match attention modules named "attn" only, none of these families' "attn1" / "attn2" / "ffn").
TAYLORSEER_MODULES = r"(?:transformer_blocks|single_transformer_blocks|blocks)\.\d+\.(?:attn\d?|ff|ffn|ff_context)"
_calibration: ContextVar[dict | None] = ContextVar("t2v_magcache_calibration", default=None)


def check(family, request, *, model: str = "this model") -> None:
    """Refuse (InvalidRequest naming ``cache``) a cache ``family`` does not take, before anything loads."""
    spec = cache_spec(getattr(request, "cache", None))
    if spec is None:
        return
    if spec.name not in family.caches:
        offered = ", ".join(family.caches) or "none"
        raise InvalidRequest(f"cache: {model} ({family.name}) cannot use the {spec.name} step cache; "
                             f"it takes: {offered}", field="cache")
    if spec.name == "pab" and not any(spec.params[k] for k in ("spatial", "temporal", "cross")):
        raise InvalidRequest("cache: pab needs at least one of spatial, temporal or cross above 0, e.g. pab:spatial=2",
                             field="cache")


@contextmanager
def applied(family, model, request, ctx):
    """``model`` with the request's step cache on private views of its denoiser(s)."""
    from t2v.sampling.runtime import private_view, with_components

    spec = cache_spec(getattr(request, "cache", None))
    calibration = _calibration.get()
    if spec is None and calibration is None:
        yield model
        return
    if spec is not None and spec.name == "deepcache":
        from t2v.sampling.deepcache import DeepCache

        view = private_view(model.components[family.denoiser])
        setattr(view, STEP_CACHE, DeepCache(view, **spec.params))
        yield with_components(model, **{family.denoiser: view})
        return
    names = [n for n in dict.fromkeys((*TRANSFORMERS, family.denoiser)) if model.components.get(n) is not None]
    ratios = magcache_ratios(model, request) if spec is not None and spec.name == "magcache" else {}
    views = {n: Branches(private_view(model.components[n]), spec, family, request, ratios.get(n), calibration)
             for n in names}
    try:
        yield with_components(model, **{n: b.front for n, b in views.items()})
    finally:
        if calibration is not None:
            calibration.update(hash=model.content_hash, ratios={n: b.calibrated() for n, b in views.items()})


def at_step(module, step: int, extra: dict[str, Any]) -> None:
    """Tell ``module``'s step cache (if it has one) the loop's step index and its checkpointed ``extra`` state,
    where a cache keeps what it reuses (so a resume reuses the same)."""
    cache = getattr(module, STEP_CACHE, None)
    if cache is not None:
        cache.at_step(step, extra)


# -- diffusers' hooks ------------------------------------------------------------------------------------


class Branches:
    """The run's transformer: ``front`` (a private view) dispatches each call to the hooked view of its
    guidance branch, made on the branch's first call, inside ``cache_context`` with the step's timestep."""

    def __init__(self, front, spec: CacheSpec | None, family, request, ratios, calibration):
        self.front, self.spec, self.family, self.request = front, spec, family, request
        self.ratios, self.calibrating = ratios, calibration is not None
        self.keys: list[Any] = []  # each branch's prompt embeddings (held, so their ids stay theirs)
        self.views: list[Any] = []
        self.steps: list[int] = []
        self.timestep, self.first = 1000.0, True
        setattr(front, STEP_CACHE, self)
        front.forward = self.forward

    def forward(self, *args, **kwargs):
        key = kwargs.get("encoder_hidden_states")
        index = next((i for i, k in enumerate(self.keys) if k is key), None)
        if index is None:
            index = len(self.keys)
            self.keys.append(key)
            self.views.append(self._hooked(key))
            self.steps.append(0)
        t = kwargs.get("timestep", args[1] if len(args) > 1 else None)
        self.timestep = float(t.max()) if hasattr(t, "max") else float(t if t is not None else 0)
        view, step = self.views[index], self.steps[index]
        self.steps[index] += 1
        self.first = step == 0
        with view.cache_context("cond", step_index=step, num_inference_steps=self.request.num_inference_steps,
                                timestep=self.timestep):
            return view(*args, **kwargs)

    def at_step(self, step: int, extra: dict[str, Any]) -> None:
        pass  # the hooks count steps themselves

    def _hooked(self, key):
        from t2v.sampling.runtime import private_view

        own = {a: self.front.__dict__.pop(a) for a in ("forward", STEP_CACHE)}  # not copied into the view
        try:
            view = private_view(self.front)
        finally:
            self.front.__dict__.update(own)
        batch = getattr(key, "shape", (1,))[0]
        quiet = logging.getLogger("diffusers.hooks.faster_cache")  # "purely experimental" on every enable
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            view.enable_cache(self._config(view, batch))
        finally:
            quiet.setLevel(level)
        return view

    def _config(self, view, batch: int):
        import diffusers

        clock = lambda: self.timestep  # noqa: E731
        if self.calibrating:
            return diffusers.MagCacheConfig(calibrate=True, num_inference_steps=10 ** 6)
        name, p = self.spec.name, self.spec.params
        if name == "fbc":
            return diffusers.FirstBlockCacheConfig(threshold=p["threshold"])
        if name == "taylorseer":
            return diffusers.TaylorSeerCacheConfig(cache_interval=p["interval"], disable_cache_before_step=p["warmup"],
                                                   max_order=p["order"], taylor_factors_dtype=view.dtype,
                                                   cache_identifiers=[TAYLORSEER_MODULES])
        if name == "magcache":
            return diffusers.MagCacheConfig(threshold=p["threshold"], max_skip_steps=p["max_skip"],
                                            retention_ratio=p["retention"], num_inference_steps=len(self.ratios),
                                            mag_ratios=list(self.ratios))
        window = (p["start"], p["end"])
        if name == "pab":
            skip = {k: p[k] or None for k in ("spatial", "temporal", "cross")}
            return diffusers.PyramidAttentionBroadcastConfig(
                spatial_attention_block_skip_range=skip["spatial"], temporal_attention_block_skip_range=skip["temporal"],
                cross_attention_block_skip_range=skip["cross"], spatial_attention_timestep_skip_range=window,
                temporal_attention_timestep_skip_range=window, cross_attention_timestep_skip_range=window,
                current_timestep_callback=clock)
        # diffusers' FasterCache fails when a branch's first step is inside its window (it would reuse attention
        # it has not computed yet): the first call reads a timestep outside every window.
        clock = lambda: float("inf") if self.first else self.timestep  # noqa: E731
        layout = getattr(self.family, "fastercache_layout", None)
        batched = layout is not None and batch == 2  # [uncond, cond] in one call: FasterCache may skip uncond
        return diffusers.FasterCacheConfig(
            spatial_attention_block_skip_range=p["spatial"] or None, spatial_attention_timestep_skip_range=window,
            unconditional_batch_skip_range=p["uncond_skip"], attention_weight_callback=lambda _: 0.5,
            tensor_format=layout or "BCFHW", is_guidance_distilled=not batched, current_timestep_callback=clock)

    def calibrated(self) -> list[float]:
        """MagCache's magnitude ratios measured on the first branch (calibration runs)."""
        from diffusers.hooks import HookRegistry
        from diffusers.hooks.hooks import CacheContext

        if not self.views:
            return []
        for module in self.views[0].modules():
            for hook in HookRegistry.check_if_exists_or_initialize(module).hooks.values():
                if getattr(hook, "is_tail", False) and hasattr(hook, "state_manager"):
                    hook.state_manager.set_context(CacheContext("cond"))
                    return [float(r) for r in hook.state_manager.get_state().calibration_ratios]
        return []


# -- MagCache calibration --------------------------------------------------------------------------------


def ratios_file(content_hash: str, steps: int) -> Path | None:
    """Where the MagCache ratios of the weights ``content_hash`` at ``steps`` steps are kept."""
    from t2v.models.diskcache import cache_path

    root = cache_path("magcache")
    return None if root is None else root / f"{re.sub(r'[^A-Za-z0-9]+', '_', content_hash)}-{int(steps)}.json"


def magcache_ratios(model, request) -> dict[str, list[float]]:
    """The calibrated ratios ({transformer name: ratios}) for this model at the request's step count;
    InvalidRequest naming the calibration command when there are none."""
    path = ratios_file(model.content_hash, request.num_inference_steps)
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path is not None else None
    except (OSError, ValueError):
        data = None
    ratios = data.get("ratios") if isinstance(data, dict) else None
    if not (isinstance(ratios, dict) and ratios and all(isinstance(v, list) and len(v) > 1 for v in ratios.values())):
        raise InvalidRequest(f"cache: magcache needs this model's magnitude ratios at {request.num_inference_steps} "
                             f"steps; make them once with `t2v cache calibrate --model {request.model} --steps "
                             f"{request.num_inference_steps}`", field="cache")
    return ratios


def calibrate(request, generate: Callable[..., Any], **generate_kwargs) -> tuple[Path | None, dict[str, list[float]]]:
    """Run ``request`` (no cache) with ``generate`` (the runner's entry, :func:`t2v.generate`) measuring MagCache's
    magnitude ratios, and keep them for its model and step count (:func:`ratios_file`). Returns (the file,
    {transformer name: ratios})."""
    found: dict[str, Any] = {}
    token = _calibration.set(found)
    try:
        result = generate(request.model_copy(update={"cache": None, "formats": ()}), **generate_kwargs)
    finally:
        _calibration.reset(token)
    ratios = {k: v for k, v in found.get("ratios", {}).items() if v}
    if not ratios:
        raise InvalidRequest(f"cache: {request.model} has no transformer to calibrate MagCache for", field="model")
    path = ratios_file(found["hash"], result.request.num_inference_steps)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps({"model": result.request.model, "steps": result.request.num_inference_steps,
                                   "ratios": ratios}) + "\n", encoding="utf-8")
        tmp.replace(path)
    return path, ratios
