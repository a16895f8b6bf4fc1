"""Video-to-video (SDEdit) steps every family shares: the timesteps a strength keeps, and noising the input's
latents to the first of them with the run's seeded generator.

The shape is diffusers' video2video pipelines' (``VideoToVideoSDPipeline``, ``WanVideoToVideoPipeline``,
``CogVideoXVideoToVideoPipeline``, ``AnimateDiffVideoToVideoPipeline``): ``get_timesteps(steps, strength)``
drops the first ``steps - int(steps * strength)`` timesteps, and ``scheduler.add_noise`` (``scale_noise`` for
flow-matching Euler) noises the encoded clip to the first timestep kept. A family supplies only how its VAE
encodes frames to the latents its decode inverts (:func:`pixels` gives it the frames as the VAE takes them).

Strength 0 keeps no timestep: the latents are the input's, decoded unchanged (the VAE round trip). Strength 1
keeps them all, from the input noised to the first timestep (for most schedules all but pure noise).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


def start_step(steps: int, strength: float) -> int:
    """The index of the first timestep kept: ``steps - int(steps * strength)`` (diffusers' ``get_timesteps``)."""
    init = min(int(steps * strength), steps)
    return max(steps - init, 0)


def strength_timesteps(scheduler, steps: int, strength: float):
    """The scheduler's timesteps (already ``set_timesteps(steps)``) from :func:`start_step` on; the scheduler's
    begin index is set there, as diffusers' img2img pipelines do, so multistep schedulers start cleanly."""
    t_start = start_step(steps, strength) * getattr(scheduler, "order", 1)
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(t_start)
    return scheduler.timesteps[t_start:]


def noised(scheduler, latents, timesteps, generator):
    """``latents`` (the encoded input, normalised as the family's decode expects) noised to ``timesteps[0]``
    with fp32 noise from the run's CPU ``generator`` (the same draw text-to-video makes for its start latents);
    unchanged when no timestep is kept (strength 0)."""
    import torch

    noise = torch.randn(latents.shape, generator=generator, dtype=torch.float32).to(latents.device)
    if len(timesteps) == 0:
        return latents
    t = timesteps[:1].to(latents.device)
    x = latents.float()
    if hasattr(scheduler, "add_noise"):
        out = scheduler.add_noise(x, noise, t)
    else:  # flow matching (FlowMatchEulerDiscreteScheduler)
        out = scheduler.scale_noise(x, t, noise)
    return out.to(latents.dtype)


def pixels(frames: np.ndarray, device, dtype):
    """(F, H, W, 3) uint8 frames -> a (1, 3, F, H, W) tensor in [-1, 1], as video VAEs take them."""
    import torch

    x = torch.from_numpy(frames).to(torch.float32).div(127.5).sub(1.0)
    return x.permute(3, 0, 1, 2).unsqueeze(0).to(device, dtype)


def fingerprint(fp: str, video: Any) -> str:
    """A checkpoint fingerprint ``fp`` extended with the input video's hash (none: ``fp`` unchanged), so a
    checkpoint resumes only a run on the same input bytes."""
    if video is None:
        return fp
    return hashlib.sha256(f"{fp}:video:{video.sha256}".encode()).hexdigest()
