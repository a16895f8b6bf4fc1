"""LTX-2 with conditions: a first and a last frame (``--image`` with ``--last-image``), as ``LTX2ConditionPipeline``
runs two image conditions, and a reference video for an IC-LoRA (``--control-video`` with the IC-LoRA as
``--lora``), as ``LTX2InContextPipeline`` runs it. The first image replaces latent frame 0's tokens (strength 1);
the last image is appended as keyframe tokens at the last latent frame, and the reference video's tokens after
them, each with positions of their own; every token's timestep is scaled by one minus its strength, and the guided
x0 keeps the clean conditions at their strength each step (:func:`t2v.families.ltx2_steps.step_fn` with a
:class:`Conditioned`). The conditions are prepared by the stock pipelines' own ``prepare_latents`` (resize and
crop, the H.264 re-compression at the model's CRF, the VAE, the appended tokens' positions and the noise), so a
seed gives their latents; the appended tokens are dropped before decoding. An IC-LoRA that was trained on
references smaller than the output says so in its file's metadata (``reference_downscale_factor``), as stock
reads it. How strongly the clip's tokens and the reference's attend to each other is ``control_scale`` (0 to 1,
the stock call's ``conditioning_attention_strength``), and where, ``mask_video`` (white: fully; the stock call's
``conditioning_attention_mask``): both through the stock call's own self-attention mask.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from t2v.errors import InvalidRequest
from t2v.families.ltx_steps import Grid


@dataclasses.dataclass
class Conditioned:
    """The conditions of a run: per-token strengths (packed, (1, tokens, 1)), the clean condition latents (zero
    where none), the keyframe tokens' positions (or None) and how many tokens the clip itself has."""

    mask: Any
    clean: Any
    coords: Any
    clip_tokens: int
    attention: Any = None  # the video self-attention mask (1, tokens, tokens) of a reference at less than full strength

    def clip(self, latents):
        """The clip's own tokens of packed ``latents`` (the keyframe tokens dropped)."""
        return latents[:, :self.clip_tokens]


def _shell(cls, vae, transformer):
    """A stock pipeline of class ``cls`` holding only what its ``prepare_latents`` reads (no weights of its own)."""
    from diffusers.video_processor import VideoProcessor

    shell = object.__new__(cls)
    for name, value in {"vae": vae, "transformer": transformer,
                        "vae_spatial_compression_ratio": vae.spatial_compression_ratio,
                        "vae_temporal_compression_ratio": vae.temporal_compression_ratio,
                        "transformer_spatial_patch_size": transformer.config.patch_size,
                        "transformer_temporal_patch_size": transformer.config.patch_size_t,
                        "video_processor": VideoProcessor(vae_scale_factor=vae.spatial_compression_ratio)}.items():
        object.__setattr__(shell, name, value)
    return shell


def conditioned(vae, transformer, request, grid: Grid, *, crf: int, rate: float, noise_scale: float, generator,
                device, image=None, last_image=None, reference=None, downscale: int = 1, attention: float = 1.0,
                attention_mask=None, latents=None):
    """The noised packed latents (the clip's tokens, then the appended keyframe and reference tokens) and their
    :class:`Conditioned`, as the stock pipeline makes them from the request's generator, at ``grid``'s size: ``image``
    at latent frame 0 and ``last_image`` at the last, strength 1 (``LTX2ConditionPipeline``), and ``reference``
    ((F, H, W, 3) uint8 frames, strength 1, at 1/``downscale`` of the grid's size) for an IC-LoRA
    (``LTX2InContextPipeline``), attended to at strength ``attention`` where ``attention_mask`` ((F, H, W) of 0 and
    1, or None: everywhere) says. ``latents`` (unnormalised, unpacked: a two-stage run's upscaled stage 1) are the
    clip's before they are conditioned and noised to ``noise_scale``, as the stock call's ``latents``."""
    import torch
    from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2ConditionPipeline, LTX2VideoCondition

    conditions = [LTX2VideoCondition(frames=img, index=index, strength=1.0, crf=crf)
                  for img, index in ((image, 0), (last_image, -1)) if img is not None]
    common = dict(conditions=conditions, batch_size=1, num_channels_latents=transformer.config.in_channels,
                  height=grid.height * grid.spatial, width=grid.width * grid.spatial, num_frames=request.num_frames,
                  frame_rate=rate, noise_scale=noise_scale, dtype=torch.float32, device=torch.device(device),
                  generator=generator)
    if latents is not None:
        common["latents"] = latents
    if reference is None:
        latents, mask, clean, coords = _shell(LTX2ConditionPipeline, vae, transformer).prepare_latents(**common)
    else:
        from diffusers.pipelines.ltx2.pipeline_ltx2_ic_lora import LTX2InContextPipeline, LTX2ReferenceCondition

        pixels = None if attention_mask is None else torch.from_numpy(attention_mask).float()[None, None].to(device)
        shell = _shell(LTX2InContextPipeline, vae, transformer)
        latents, mask, clean, coords, refs, cross, counts = shell.prepare_latents(
            reference_conditions=[LTX2ReferenceCondition(frames=reference, strength=1.0)],
            reference_downscale_factor=downscale, conditioning_attention_strength=attention,
            conditioning_attention_mask=pixels, **common)
        self_attention = None if cross is None else shell._build_video_self_attention_mask(
            num_noisy_tokens=grid.tokens, num_prefix_tokens=latents.shape[1] - refs,
            extras_cross_masks=list(torch.split(cross, counts, dim=1)), device=torch.device(device))
        return latents, Conditioned(mask, clean, coords, grid.tokens, self_attention)
    return latents, Conditioned(mask, clean, coords, grid.tokens)


def reference_downscale(files) -> int:
    """The ``reference_downscale_factor`` an IC-LoRA file's metadata names (the first that names one), else 1."""
    from safetensors import safe_open

    for file in files:
        try:
            with safe_open(str(file), framework="pt") as f:
                value = (f.metadata() or {}).get("reference_downscale_factor")
        except (OSError, ValueError, RuntimeError):
            continue
        if value:
            return int(float(value))
    return 1


def check_reference_size(height: int, width: int, downscale: int, spatial: int, *, stage: float = 1.0,
                         multiple: int = 32) -> None:
    """Refuse an output size whose IC-LoRA reference (at 1/``downscale`` of the size the reference is read at: the
    output's, or stage 1's at 1/``stage`` of it) is under one latent (``spatial`` px) a side, naming the field and
    the nearest valid size (a multiple of ``multiple`` times ``stage``)."""
    import math

    for name, side in (("height", height), ("width", width)):
        if side and int(side / stage) // downscale < spatial:
            step = multiple * stage
            nearest = int(math.ceil(spatial * downscale * stage / step) * step)
            where = f" in stage 1 ({int(side / stage)} px, 1/{stage:g} of it)" if stage != 1 else ""
            raise InvalidRequest(
                f"{name}: at {side} px the IC-LoRA's reference is read at 1/{downscale} of the size{where}, "
                f"{int(side / stage) // downscale} px, under the {spatial} px of one latent; nearest valid: {nearest}",
                field=name)
