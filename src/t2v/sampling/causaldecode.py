"""Decoding a causal video VAE's latents a few frames at a time, as they are finished (a stream of the clip).

Wan's VAE (``AutoencoderKLWan``, also SkyReels-V2's) decodes one latent frame after another, each conv keeping
the last frames of its input in a cache: :class:`CausalDecoder` runs the same loop as ``AutoencoderKLWan._decode``
but keeps that cache between calls, so the frames of latents given in parts are those of the whole latents given
at once, and no frame is decoded twice. The VAE's cache attributes are diffusers' own: a VAE without them, or
one that decodes in tiles, is decoded whole at the end instead (:func:`incremental` says which).
"""

from __future__ import annotations

from typing import Any


def incremental(vae) -> bool:
    """Whether ``vae`` decodes frame by frame with a cache this module can carry between calls (Wan's VAE, not
    tiled)."""
    needed = ("clear_cache", "post_quant_conv", "decoder")
    return (type(vae).__name__ == "AutoencoderKLWan" and all(hasattr(vae, n) for n in needed)
            and not getattr(vae, "use_tiling", False))


class CausalDecoder:
    """``decode(latents)`` for the next latent frames (VAE-scaled, (1, C, k, h, w)): their pixels in [-1, 1]
    ((1, 3, frames, H, W)), continuing the frames decoded before. Use as a context manager: the cache is
    cleared on entry and on exit."""

    def __init__(self, vae):
        self.vae = vae
        self.first = True

    def __enter__(self) -> "CausalDecoder":
        self.vae.clear_cache()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.vae.clear_cache()

    def decode(self, latents):
        import torch
        from diffusers.models.autoencoders.autoencoder_kl_wan import unpatchify

        vae = self.vae
        x = vae.post_quant_conv(latents)
        parts = []
        for i in range(x.shape[2]):
            vae._conv_idx = [0]
            kw = {"first_chunk": True} if self.first else {}
            parts.append(vae.decoder(x[:, :, i:i + 1], feat_cache=vae._feat_map, feat_idx=vae._conv_idx, **kw))
            self.first = False
        out = torch.cat(parts, 2)
        if vae.config.patch_size is not None:
            out = unpatchify(out, patch_size=vae.config.patch_size)
        return torch.clamp(out, min=-1.0, max=1.0)
