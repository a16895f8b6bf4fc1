"""LTX-2 from a first and a last frame (``--image`` with ``--last-image``), as ``LTX2ConditionPipeline`` runs
two image conditions: the first image at latent frame 0 (its tokens replaced, strength 1) and the last at the
last latent frame, appended as keyframe tokens with positions of their own; every token's timestep is scaled by
one minus its strength, and the guided x0 keeps the clean conditions at their strength each step
(:func:`t2v.families.ltx2_steps.step_fn` with a :class:`Conditioned`). The conditions are prepared by the stock
pipeline's own ``prepare_latents`` (resize and crop, the H.264 re-compression at the model's CRF, the VAE, the
keyframe positions and the noise), so a seed gives its latents; the keyframe tokens are dropped before decoding.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from t2v.families.ltx_steps import Grid


@dataclasses.dataclass
class Conditioned:
    """The conditions of a run: per-token strengths (packed, (1, tokens, 1)), the clean condition latents (zero
    where none), the keyframe tokens' positions (or None) and how many tokens the clip itself has."""

    mask: Any
    clean: Any
    coords: Any
    clip_tokens: int

    def clip(self, latents):
        """The clip's own tokens of packed ``latents`` (the keyframe tokens dropped)."""
        return latents[:, :self.clip_tokens]


def _shell(vae, transformer):
    """An ``LTX2ConditionPipeline`` holding only what its ``prepare_latents`` reads (no weights of its own)."""
    from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2ConditionPipeline

    shell = object.__new__(LTX2ConditionPipeline)
    for name, value in {"vae": vae, "vae_spatial_compression_ratio": vae.spatial_compression_ratio,
                        "vae_temporal_compression_ratio": vae.temporal_compression_ratio,
                        "transformer_spatial_patch_size": transformer.config.patch_size,
                        "transformer_temporal_patch_size": transformer.config.patch_size_t}.items():
        object.__setattr__(shell, name, value)
    return shell


def first_and_last(vae, transformer, image, last_image, request, grid: Grid, crf: int, rate: float, noise_scale: float,
                   generator, device):
    """The noised packed latents (clip tokens, then the last image's keyframe tokens) and their
    :class:`Conditioned`, as ``LTX2ConditionPipeline.prepare_latents`` makes them for conditions at latent frames
    0 and -1, strength 1, from the request's generator."""
    import torch
    from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2VideoCondition

    conditions = [LTX2VideoCondition(frames=image, index=0, strength=1.0, crf=crf),
                  LTX2VideoCondition(frames=last_image, index=-1, strength=1.0, crf=crf)]
    latents, mask, clean, coords = _shell(vae, transformer).prepare_latents(
        conditions=conditions, batch_size=1, num_channels_latents=transformer.config.in_channels,
        height=request.height, width=request.width, num_frames=request.num_frames, frame_rate=rate,
        noise_scale=noise_scale, dtype=torch.float32, device=torch.device(device), generator=generator)
    return latents, Conditioned(mask, clean, coords, grid.tokens)
