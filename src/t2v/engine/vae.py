"""VAE decode of video latents in frame chunks (bounded memory for long clips)."""

from __future__ import annotations

import numpy as np

DEFAULT_CHUNK = 8


def decode_latents(vae, latents, *, chunk: int = DEFAULT_CHUNK) -> np.ndarray:
    """(1, C, F, h, w) latents -> (F, H, W, 3) float32 frames in [0, 1]."""
    import torch

    b, c, f, h, w = latents.shape
    flat = (latents / vae.config.scaling_factor).permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
    out = []
    with torch.inference_mode():
        for i in range(0, flat.shape[0], chunk):
            img = vae.decode(flat[i : i + chunk].to(vae.dtype)).sample
            out.append((img.float() / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).cpu())
    return torch.cat(out).numpy()


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """[0, 1] float frames -> uint8, rounded."""
    return np.clip(np.round(frames * 255.0), 0, 255).astype(np.uint8)
