"""diffusers' step caches for the transformer families, each a registered :class:`~t2v.sampling.cachekinds.CacheKind`
whose ``config`` is the diffusers hook config for one guidance branch's view: ``fbc`` (FirstBlockCache),
``taylorseer``, ``magcache`` (needs ``t2v cache calibrate``), ``pab`` (PyramidAttentionBroadcast),
``fastercache``."""

from __future__ import annotations

from typing import Any

from t2v.errors import InvalidRequest
from t2v.requests import CacheSpec
from t2v.sampling.cachekinds import CacheKind
from t2v.sampling.magcache import magcache_ratios

# TaylorSeer predicts the outputs of every block's attention and feed-forward (diffusers' default patterns
# match attention modules named "attn" only, none of these families' "attn1" / "attn2" / "ffn").
TAYLORSEER_MODULES = r"(?:transformer_blocks|single_transformer_blocks|blocks)\.\d+\.(?:attn\d?|ff|ffn|ff_context)"


# Transformer blocks diffusers' block-level hooks (FirstBlockCache, MagCache) do not know yet, with where their
# outputs are: (the block class's module, its name, the hidden states' index, the second stream's index or None).
BLOCKS = (("diffusers.models.transformers.transformer_skyreels_v2", "SkyReelsV2TransformerBlock", 0, None),
          ("diffusers.models.transformers.transformer_hunyuan_video15", "HunyuanVideo15TransformerBlock", 0, 1))


def register_blocks() -> None:
    """Tell diffusers' block registry the output layout of the :data:`BLOCKS` it lacks (once; a block it has
    learned since is left as diffusers registers it)."""
    import importlib

    from diffusers.hooks._helpers import TransformerBlockMetadata, TransformerBlockRegistry

    known = TransformerBlockRegistry._registry
    for module, name, hidden, second in BLOCKS:
        cls = getattr(importlib.import_module(module), name, None)
        if cls is not None and cls not in known:
            TransformerBlockRegistry.register(cls, TransformerBlockMetadata(return_hidden_states_index=hidden,
                                                                            return_encoder_hidden_states_index=second))


class Hooked(CacheKind):
    hooked = True


class FirstBlockCache(Hooked):
    name = "fbc"

    def config(self, branches, view, batch: int):
        import diffusers

        return diffusers.FirstBlockCacheConfig(threshold=branches.spec.params["threshold"])


class TaylorSeer(Hooked):
    name = "taylorseer"

    def config(self, branches, view, batch: int):
        import diffusers

        p = branches.spec.params
        return diffusers.TaylorSeerCacheConfig(cache_interval=p["interval"], disable_cache_before_step=p["warmup"],
                                               max_order=p["order"], taylor_factors_dtype=view.dtype,
                                               cache_identifiers=[TAYLORSEER_MODULES])


class MagCache(Hooked):
    name = "magcache"

    def ratios(self, model: Any, request: Any) -> dict[str, list[float]]:
        return magcache_ratios(model, request)

    def config(self, branches, view, batch: int):
        import diffusers

        p = branches.spec.params
        return diffusers.MagCacheConfig(threshold=p["threshold"], max_skip_steps=p["max_skip"],
                                        retention_ratio=p["retention"], num_inference_steps=len(branches.ratios),
                                        mag_ratios=list(branches.ratios))


class PyramidAttentionBroadcast(Hooked):
    name = "pab"

    def check(self, spec: CacheSpec) -> None:
        if not any(spec.params[k] for k in ("spatial", "temporal", "cross")):
            raise InvalidRequest("cache: pab needs at least one of spatial, temporal or cross above 0, e.g. "
                                 "pab:spatial=2", field="cache")

    def config(self, branches, view, batch: int):
        import diffusers

        p = branches.spec.params
        window = (p["start"], p["end"])
        skip = {k: p[k] or None for k in ("spatial", "temporal", "cross")}
        return diffusers.PyramidAttentionBroadcastConfig(
            spatial_attention_block_skip_range=skip["spatial"], temporal_attention_block_skip_range=skip["temporal"],
            cross_attention_block_skip_range=skip["cross"], spatial_attention_timestep_skip_range=window,
            temporal_attention_timestep_skip_range=window, cross_attention_timestep_skip_range=window,
            current_timestep_callback=lambda: branches.timestep)


class FasterCache(Hooked):
    name = "fastercache"

    def config(self, branches, view, batch: int):
        import diffusers

        p = branches.spec.params
        window = (p["start"], p["end"])
        # diffusers' FasterCache fails when a branch's first step is inside its window (it would reuse attention
        # it has not computed yet): the first call reads a timestep outside every window.
        clock = lambda: float("inf") if branches.first else branches.timestep  # noqa: E731
        layout = getattr(branches.family, "fastercache_layout", None)
        batched = layout is not None and batch == 2  # [uncond, cond] in one call: FasterCache may skip uncond
        return diffusers.FasterCacheConfig(
            spatial_attention_block_skip_range=p["spatial"] or None, spatial_attention_timestep_skip_range=window,
            unconditional_batch_skip_range=p["uncond_skip"], attention_weight_callback=lambda _: 0.5,
            tensor_format=layout or "BCFHW", is_guidance_distilled=not batched, current_timestep_callback=clock)


FBC, TAYLORSEER, MAGCACHE, PAB, FASTERCACHE = (FirstBlockCache(), TaylorSeer(), MagCache(),
                                               PyramidAttentionBroadcast(), FasterCache())
