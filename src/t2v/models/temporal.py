"""Frame-position embeddings for the temporal attention layers of ``UNet3DConditionModel``.

The ModelScope UNet's temporal transformers attend across frames without any position embedding, so the only
frame-order signal is the zero padding of its temporal convolutions. diffusers' ``BasicTransformerBlock``
supports sinusoidal position embeddings (AnimateDiff's motion modules use them), but ``UNet3DConditionModel``
does not expose them. A model trained with them records that in its UNet config under a private key, which
stock diffusers carries along silently; :func:`apply_temporal_positions` (called by the loader and the trainer)
switches them back on. The embeddings are fixed sinusoids kept out of the state dict, so the weight files stay
in the stock layout.
"""

from __future__ import annotations

import json
from pathlib import Path

CONFIG_KEY = "_t2v_temporal_positions"
DEFAULT_MAX_FRAMES = 512  # = the default server limit (T2V_MAX_FRAMES); the sinusoids cost 512 x C floats


def add_temporal_positions(unet, max_frames: int = DEFAULT_MAX_FRAMES) -> int:
    """Give every temporal transformer block of ``unet`` a sinusoidal frame-position embedding (idempotent);
    records ``max_frames`` in the UNet config. Returns the number of blocks changed."""
    from diffusers.models.embeddings import SinusoidalPositionalEmbedding
    from diffusers.models.transformers.transformer_temporal import TransformerTemporalModel

    changed = 0
    for module in unet.modules():
        if not isinstance(module, TransformerTemporalModel):
            continue
        for block in module.transformer_blocks:
            if isinstance(block.pos_embed, SinusoidalPositionalEmbedding):
                continue
            ref = next(block.parameters())
            embed = SinusoidalPositionalEmbedding(block.norm1.normalized_shape[0], max_seq_length=max_frames)
            embed.register_buffer("pe", embed.pe.to(ref.device, ref.dtype), persistent=False)
            block.pos_embed = embed
            changed += 1
    unet.register_to_config(**{CONFIG_KEY: int(max_frames)})
    return changed


def _limit(config) -> int | None:
    value = config.get(CONFIG_KEY)
    return int(value) if value else None


def temporal_positions(unet) -> int | None:
    """The ``max_frames`` a UNet was built with position embeddings for, or None."""
    return _limit(getattr(unet, "config", {}))


def apply_temporal_positions(unet):
    """Switch on the embeddings a loaded UNet's config asks for (no-op for stock models); returns ``unet``."""
    n = temporal_positions(unet)
    if n:
        add_temporal_positions(unet, n)
    return unet


def folder_frame_limit(folder: Path) -> int | None:
    """The frame limit a model folder's UNet position embeddings set, or None (no embeddings, or no UNet3D)."""
    try:
        return _limit(json.loads((Path(folder) / "unet" / "config.json").read_text()))
    except (OSError, ValueError, AttributeError):
        return None
