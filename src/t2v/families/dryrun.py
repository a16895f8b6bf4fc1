"""The pieces of a video transformer family's dry run (:meth:`t2v.families.base.Family.measure`) and preview that the
families share: the folder's meta modules in the planner's dtype, a clip's latent grid, the numbers ``measure``
returns, and a preview upscaled by the VAE's spatial factor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from t2v.families.meta import blocks, meta_modules, params
from t2v.planner.memory import meta_cost
from t2v.planner.precision import cast


def meta_video(path: str | Path, frames: int, height: int, width: int) -> tuple[dict[str, Any], tuple[int, int, int]]:
    """The folder's modules on the meta device, cast as the planner measures them, and the latent frames, rows and
    columns of a ``frames`` x ``height`` x ``width`` clip on its VAE (a video VAE with spatial and temporal
    compression ratios whose first frame has a latent frame of its own)."""
    m = cast(meta_modules(str(path)))
    vae = m["vae"]
    s, t = vae.spatial_compression_ratio, vae.temporal_compression_ratio
    return m, ((frames - 1) // t + 1, height // s, width // s)


def measured(m: dict[str, Any], *, acts: dict[str, int], roles: dict[str, list[str]], step, decode, passes: int,
             latents_bytes: int, frames: int, height: int, width: int, vae_scales_with: str,
             **more: Any) -> dict[str, Any]:
    """What ``measure`` returns for a clip decoded whole: the parameters of the meta modules ``m``, each stage's
    activation peak (``acts``) and components (``roles``), a step's FLOPs and operations (``step``, a
    :func:`t2v.planner.memory.meta_cost` result, counted ``passes`` times: the passes a step makes of the
    measured call), the decode's (``decode``), the latents' bytes, the shape measured, how the VAE's cost scales
    (``vae_scales_with``: "area" or "clip"), and any ``more`` keys (a tiled decode's ``vae_tile``)."""
    return {
        "params": params(m),
        "blocks": blocks(m),
        "acts": acts,
        "roles": roles,
        "step_flops": step.flops * passes,
        "decode_flops": decode.flops,
        "step_ops": step.ops * passes,
        "decode_ops": decode.ops,
        "latents_bytes": latents_bytes,
        "shape": (frames, height, width, frames),
        "vae_scales_with": vae_scales_with,
        **more,
    }


def spatial_preview(model, latents):
    """The middle latent frame's first three channels, upscaled by the VAE's spatial factor."""
    from t2v.sampling.vae import latent_preview  # deferred: imports numpy

    return latent_preview(latents, scale=model.components["vae"].spatial_compression_ratio)


def text_peak(encoder, tokens: int, **kwargs: Any) -> int:
    """The activation peak of one pass of a meta text ``encoder`` over ``tokens`` token ids (``kwargs``: more
    arguments of its call, e.g. ``output_hidden_states=True``)."""
    import torch

    ids = torch.zeros(1, tokens, dtype=torch.long, device="meta")
    return meta_cost(lambda: encoder(input_ids=ids, **kwargs), part="text").peak
