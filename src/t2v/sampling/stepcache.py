"""Step caches: ``--cache NAME[:KEY=VALUE,...]`` (names and defaults: :data:`t2v.requests.CACHES`).

A step cache reuses work from earlier denoising steps instead of recomputing it. The request names it, the
record keeps its canonical spelling (every parameter), so a replay runs the very same cache and gives the
same frames. Each family declares the caches it takes (``Family.caches``); :func:`check` refuses the others
before anything loads.

* ``deepcache`` (UNet families: ModelScope / Zeroscope, AnimateDiff): t2v's own DeepCache-style reuse of the
  deep U-Net features every ``interval`` steps (:mod:`t2v.sampling.deepcache`). Resumes bitwise.
* diffusers' hooks (transformer families): ``fbc`` (FirstBlockCache), ``taylorseer``, ``magcache`` (needs
  ``t2v cache calibrate``), ``pab`` (PyramidAttentionBroadcast), ``fastercache``.

Every cache works on the run's private view of the denoiser (:func:`t2v.sampling.views.private_view`), never
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

from t2v.errors import InvalidRequest
from t2v.requests import CacheSpec, cache_spec
from t2v.sampling.cachekinds import CacheKind
from t2v.sampling.deepcache import DEEPCACHE
from t2v.sampling.magcache import magcache_ratios, ratios_file  # noqa: F401  (named here too)
from t2v.sampling.hookcaches import FASTERCACHE, FBC, MAGCACHE, PAB, TAYLORSEER, register_blocks
from t2v.sampling.views import private_view, with_components

logger = logging.getLogger(__name__)

# Every step cache, by its request name: t2v's own and diffusers' hooks. Adding one is its own module and one
# entry here (its name and parameters are the request's: t2v.requests.CACHES).
KINDS: dict[str, CacheKind] = {kind.name: kind for kind in (DEEPCACHE, FBC, TAYLORSEER, MAGCACHE, PAB, FASTERCACHE)}
HOOKED = tuple(name for name, kind in KINDS.items() if kind.hooked)  # diffusers' hooks
STEP_CACHE = "t2v_step_cache"  # the attribute a run's denoiser view carries its cache under
TRANSFORMERS = ("transformer", "transformer_2")
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
    KINDS[spec.name].check(spec)


@contextmanager
def applied(family, model, request, ctx):
    """``model`` with the request's step cache on private views of its denoiser(s)."""
    spec = cache_spec(getattr(request, "cache", None))
    calibration = _calibration.get()
    if spec is None and calibration is None:
        yield model
        return
    kind = KINDS[spec.name] if spec is not None else None
    if kind is not None and not kind.hooked:  # t2v's own: an object on the denoiser's view
        view = private_view(model.components[family.denoiser])
        setattr(view, STEP_CACHE, kind.attach(view, spec.params))
        yield with_components(model, **{family.denoiser: view})
        return
    names = [n for n in dict.fromkeys((*TRANSFORMERS, family.denoiser)) if model.components.get(n) is not None]
    ratios = kind.ratios(model, request) if kind is not None else {}
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
        own = {a: self.front.__dict__.pop(a) for a in ("forward", STEP_CACHE)}  # not copied into the view
        try:
            view = private_view(self.front)
        finally:
            self.front.__dict__.update(own)
        batch = getattr(key, "shape", (1,))[0]
        quiet = logging.getLogger("diffusers.hooks.faster_cache")  # "purely experimental" on every enable
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        register_blocks()
        try:
            view.enable_cache(self._config(view, batch))
        finally:
            quiet.setLevel(level)
        return view

    def _config(self, view, batch: int):
        if self.calibrating:
            import diffusers

            return diffusers.MagCacheConfig(calibrate=True, num_inference_steps=10 ** 6)
        return KINDS[self.spec.name].config(self, view, batch)

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
