"""Frame-position embeddings and clip-wide attention for the temporal layers of ``UNet3DConditionModel``.

The ModelScope UNet's temporal transformers attend across frames without any position embedding, so the only
frame-order signal is the zero padding of its temporal convolutions. diffusers' ``BasicTransformerBlock``
supports sinusoidal position embeddings (AnimateDiff's motion modules use them), but ``UNet3DConditionModel``
does not expose them. A model trained with them records that in its UNet config under a private key, which
stock diffusers carries along silently; :func:`apply_temporal_config` (called by the loader and the trainer)
switches them back on. The embeddings are fixed sinusoids kept out of the state dict, so the weight files stay
in the stock layout.

Clip-wide temporal attention (:func:`add_clip_attention`): each temporal transformer's self-attention attends
over every (frame, position) token of the clip instead of one position's frames. A moving object sits at
another position in every frame, so per-position attention cannot carry its colour from frame to frame; the
shapes model drew a red object's frames red, yellow, red. Same weights, another attention processor, recorded
under a second private config key.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

CONFIG_KEY = "_t2v_temporal_positions"
CLIP_ATTENTION_KEY = "_t2v_clip_attention"
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


class ClipAttention:
    """An attention processor for a temporal block's self-attention that attends across the whole clip.

    The block sees ``(batch x height x width, frames, channels)``; the forward pre-hook that
    :func:`add_clip_attention` puts on the temporal transformer tells the processor the batch size, so the
    tokens can be regrouped as ``(batch, height x width x frames, channels)``. The size is kept per thread, so
    one loaded model may run in several threads at once."""

    def __init__(self) -> None:
        self.local = threading.local()

    @property
    def batch(self) -> int:
        return getattr(self.local, "batch", 1)

    @batch.setter
    def batch(self, value: int) -> None:
        self.local.batch = value

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        import torch.nn.functional as F

        n, frames, _ = hidden_states.shape
        b = self.batch if self.batch and n % self.batch == 0 else 1
        x = hidden_states.reshape(b, (n // b) * frames, hidden_states.shape[-1])
        q, k, v = attn.to_q(x), attn.to_k(x), attn.to_v(x)
        head = q.shape[-1] // attn.heads
        q, k, v = (t.view(b, -1, attn.heads, head).transpose(1, 2) for t in (q, k, v))
        o = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, -1, attn.heads * head).to(q.dtype)
        o = attn.to_out[1](attn.to_out[0](o))
        return o.reshape(n, frames, -1) / attn.rescale_output_factor


def _record_batch(processor: ClipAttention):
    def hook(module, args, kwargs):
        states = args[0] if args else kwargs["hidden_states"]
        processor.batch = states.shape[0] // max(int(kwargs.get("num_frames", 1)), 1)

    return hook


def add_clip_attention(unet) -> int:
    """Make every temporal transformer's self-attention clip-wide (idempotent); records it in the UNet config.
    Returns the number of temporal transformers changed."""
    from diffusers.models.transformers.transformer_temporal import TransformerTemporalModel

    changed = 0
    for module in unet.modules():
        if not isinstance(module, TransformerTemporalModel) or getattr(module, "clip_attention", None):
            continue
        processor = ClipAttention()
        module.register_forward_pre_hook(_record_batch(processor), with_kwargs=True)
        for block in module.transformer_blocks:
            block.attn1.set_processor(processor)
        module.clip_attention = processor
        changed += 1
    unet.register_to_config(**{CLIP_ATTENTION_KEY: True})
    return changed


def clip_attention(unet) -> bool:
    """Whether a UNet was trained with clip-wide temporal attention."""
    return bool(getattr(unet, "config", {}).get(CLIP_ATTENTION_KEY))


def apply_temporal_config(unet):
    """Switch on the frame-position embeddings and the clip-wide attention a loaded UNet's config asks for
    (no-op for stock models); returns ``unet``."""
    n = temporal_positions(unet)
    if n:
        add_temporal_positions(unet, n)
    if clip_attention(unet):
        add_clip_attention(unet)
    return unet


def folder_frame_limit(folder: Path) -> int | None:
    """The frame limit a model folder's UNet position embeddings set, or None (no embeddings, or no UNet3D)."""
    try:
        return _limit(json.loads((Path(folder) / "unet" / "config.json").read_text()))
    except (OSError, ValueError, AttributeError):
        return None
