"""A diffusion-forcing clip streamed window by window (:mod:`t2v.families.skyreels_df`): when a window is done, its
new latent frames are decoded and the clip so far handed to the run's stream (``RunContext.on_frames``).

With Wan's causal VAE the new frames are decoded alone, the VAE's cache carried from one window to the next
(:mod:`t2v.sampling.causaldecode`), and the frames decoded for the stream are the clip's: the run decodes nothing
again at its end. A VAE that decodes in tiles (the low memory plan) decodes every frame made so far after each
window instead, and the last of those decodes is the final one."""

from __future__ import annotations

from typing import Any

import numpy as np

from t2v.families.wan import latent_stats
from t2v.sampling.causaldecode import CausalDecoder, incremental
from t2v.sampling.offload import resident
from t2v.sampling.vae import video_uint8


def decoded(vae, latents, spatial: int, device, memory):
    """Finished latent frames through the VAE, with its statistics: uint8 frames."""
    from diffusers.video_processor import VideoProcessor

    with resident(vae, device, memory.offload):
        latents = latents.to(vae.device, vae.dtype)
        mean, inv_std = latent_stats(vae, latents)
        video = vae.decode(latents / inv_std + mean, return_dict=False)[0]
    return video_uint8(VideoProcessor(vae_scale_factor=spatial), video)


class WindowStream:
    """The stream of one run (``on_frames`` None: nobody watches, nothing is decoded early). Use as a context
    manager around the denoising; :meth:`window_done` after each window, :meth:`frames` for the clip at the end."""

    def __init__(self, on_frames, vae, spatial: int, device, memory):
        self.on_frames, self.vae, self.spatial, self.device, self.memory = on_frames, vae, spatial, device, memory
        self.decoder = CausalDecoder(vae) if on_frames is not None and incremental(vae) else None
        self.blocks: list[np.ndarray] = []  # the uint8 frames decoded so far, block by block
        self.latents = 0  # the latent frames they decode

    def __enter__(self) -> "WindowStream":
        if self.decoder is not None:
            self.decoder.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.decoder is not None:
            self.decoder.__exit__(*exc)

    def window_done(self, done) -> None:
        """``done``: every finished latent frame so far (1, C, F, h, w); stream the clip they make."""
        if self.on_frames is None:
            return
        if self.decoder is None:
            self.blocks, self.latents = [decoded(self.vae, done, self.spatial, self.device, self.memory)], done.shape[2]
        elif done.shape[2] > self.latents:
            from diffusers.video_processor import VideoProcessor

            with resident(self.vae, self.device, self.memory.offload):
                new = done[:, :, self.latents:].to(self.vae.device, self.vae.dtype)
                mean, inv_std = latent_stats(self.vae, new)
                video = self.decoder.decode(new / inv_std + mean)
            self.blocks.append(video_uint8(VideoProcessor(vae_scale_factor=self.spatial), video))
            self.latents = done.shape[2]
        self.on_frames(np.concatenate(self.blocks))

    def frames(self, done) -> np.ndarray:
        """The clip of ``done`` (every latent frame made): the stream's frames when it decoded them all, else
        decoded now."""
        if self.blocks and self.latents == done.shape[2]:
            return np.concatenate(self.blocks)
        return decoded(self.vae, done, self.spatial, self.device, self.memory)
