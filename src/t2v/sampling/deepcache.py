"""DeepCache-style reuse of a video U-Net's deep features (``--cache deepcache:interval=N,branch=B``).

From one denoising step to the next the deep, low-resolution features of a U-Net change little (Ma et al.,
"DeepCache", 2023). Every ``interval`` steps the whole U-Net runs and the input of up block ``-(B+1)`` (what
the deeper blocks hand back to skip branch ``B``, 0 the outermost) is kept; on the steps in between only
the shallow part runs: ``conv_in``, down blocks ``0..B``, up blocks ``-(B+1)..-1`` with their fresh skip
connections, ``conv_out``, and the deeper down blocks, the mid block and the deeper up blocks are skipped.

It works on the blocks' calls, not by rewriting the U-Net's ``forward``: on a shallow step the deeper
blocks' ``forward`` return stand-ins of the right count (their outputs only feed other skipped blocks) and
the last skipped up block returns the kept feature. So it fits every diffusers U-Net whose forward is the
usual down / mid / up walk with skip connections sliced by ``len(up_block.resnets)``: ``UNet3DConditionModel``
(ModelScope / Zeroscope, t2v-shapes) and ``UNetMotionModel`` (AnimateDiff).

The blocks patched are those of the run's private view (:func:`t2v.sampling.views.private_view`), never the
shared cached model. The loop tells the cache which step it is on and hands it its checkpointed ``extra``
state (:func:`t2v.sampling.stepcache.at_step`): the kept feature lives there, so a run resumed from a
checkpoint reuses exactly what the uninterrupted run would have, and its frames are the same, bitwise.
"""

from __future__ import annotations

from typing import Any

from t2v.errors import InvalidRequest
from t2v.sampling.cachekinds import CacheKind

FEATURE = "deepcache_feature"  # the key of the kept feature in the loop's extra (checkpointed) state


class DeepCache:
    """Patches ``unet`` (a private view) in place; :meth:`at_step` before each step's U-Net call(s)."""

    def __init__(self, unet, *, interval: int, branch: int):
        ups = len(unet.up_blocks)
        if branch > ups - 2:
            raise InvalidRequest(f"cache: this U-Net has {ups} levels, so deepcache's branch must be at most "
                                 f"{ups - 2}; nearest valid: {max(0, ups - 2)}", field="cache")
        self.interval, self.branch = interval, branch
        self.step: int | None = None
        self.extra: dict[str, Any] = {}
        self.shallow = False
        self.full_calls = self.shallow_calls = 0
        for block in unet.down_blocks[branch + 1:]:
            count = len(block.resnets) + len(getattr(block, "downsamplers", None) or ())
            _patch(block, self, lambda hs, count=count: (hs, (hs,) * count))
        _patch(unet.mid_block, self, lambda hs: hs)
        deep_ups = list(unet.up_blocks[:ups - branch - 1])
        for block in deep_ups[:-1]:
            _patch(block, self, lambda hs: hs)
        _patch(deep_ups[-1], self, lambda hs: self.extra[FEATURE], keep=True)
        original = unet.forward

        def forward(*args, **kwargs):
            step = self.step if self.step is not None else self.full_calls + self.shallow_calls
            self.shallow = FEATURE in self.extra and step % self.interval != 0
            if self.shallow:
                self.shallow_calls += 1
            else:
                self.full_calls += 1
            try:
                return original(*args, **kwargs)
            finally:
                self.shallow = False

        unet.forward = forward

    def at_step(self, step: int, extra: dict[str, Any]) -> None:
        self.step, self.extra = step, extra


def _patch(block, cache: DeepCache, stand_in, *, keep: bool = False) -> None:
    """On shallow steps ``block`` returns ``stand_in(hidden_states)``; with ``keep`` its output on full steps
    is kept as the feature."""
    original = block.forward

    def forward(*args, **kwargs):
        if cache.shallow:
            return stand_in(kwargs["hidden_states"] if "hidden_states" in kwargs else args[0])
        out = original(*args, **kwargs)
        if keep:
            cache.extra[FEATURE] = out
        return out

    block.forward = forward


class DeepCacheKind(CacheKind):
    """``--cache deepcache``: the deep U-Net features reused every ``interval`` steps (UNet families)."""

    name = "deepcache"

    def attach(self, view, params: dict[str, Any]) -> DeepCache:
        return DeepCache(view, **params)


DEEPCACHE = DeepCacheKind()
