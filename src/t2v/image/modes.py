"""The coherence methods of ``t2v sequence``: how each frame's noise, prompt and start image are chosen.

- ``latent-walk``: one seed per keyframe; a frame's noise is the slerp of its two keyframes' noise and its
  text embedding the lerp of their embeddings; every frame is a full text-to-image run.
- ``prompt-interp``: one noise for every frame (the request's seed); only the text embedding moves.
- ``img2img``: frame 0 from text; each later frame starts from the previous one, moved by the camera
  (zoom, pan, rotate), noised to ``strength`` with the same seeded noise every frame, and denoised with
  the interpolated prompt (Deforum's img2img loop with a fixed seed).
- ``interpolate``: only the keyframes are generated (seed + k for keyframe k); frames in between are
  decoded from the slerp of the keyframes' clean latents: far fewer model calls.
- ``independent``: no coherence at all (seed + i for frame i): the baseline the tests compare against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np

from t2v.image import sd

if TYPE_CHECKING:
    from t2v.models.loader import LoadedModel
    from t2v.requests import SequenceRequest


def segment(keyframes: list[int], frame: int) -> tuple[int, int, float]:
    """(index of the keyframe at or before ``frame``, index of the next one, position between them 0..1)."""
    k = max(i for i, f in enumerate(keyframes) if f <= frame)
    if k == len(keyframes) - 1:
        return k, k, 0.0
    a, b = keyframes[k], keyframes[k + 1]
    return k, k + 1, (frame - a) / (b - a)


def total_steps(req: SequenceRequest) -> int:
    n, steps = req.num_frames, req.num_inference_steps
    if req.method == "interpolate":
        return len(req.keyframes) * steps
    if req.method == "img2img":
        return steps + (n - 1) * sd.img2img_steps(steps, req.strength)
    return n * steps


@dataclass
class SequenceOutput:
    frames: np.ndarray  # (F, H, W, 3) uint8
    seeds: list[int]  # the seed whose noise each frame (or keyframe, for latent-walk/interpolate) used
    grid: list[tuple[str, list[tuple[int, np.ndarray]]]] = field(default_factory=list)
    model_calls: int = 0


class SequenceRunner:
    def __init__(self, model: LoadedModel, req: SequenceRequest, embeds: list, uncond, *,
                 on_step: Callable[[], None], should_cancel: Callable[[], bool]) -> None:
        self.model, self.req, self.embeds, self.uncond = model, req, embeds, uncond
        self.on_step, self.should_cancel = on_step, should_cancel
        self.keys = req.keyframe_indices()
        self.grid: list[tuple[str, list[tuple[int, np.ndarray]]]] = []
        self.calls = 0

    def embedding(self, frame: int):
        a, b, t = segment(self.keys, frame)
        return self.embeds[a] if a == b or t == 0 else sd.lerp(self.embeds[a], self.embeds[b], t)

    def noise(self, seed: int):
        return sd.seeded_noise(self.model, seed, self.req.height, self.req.width)

    def txt2img(self, frame: int, noise) -> "sd.Denoised":
        req = self.req
        capture = req.denoise_grid if frame in self.keys else ()
        out = sd.denoise(self.model, self.embedding(frame), self.uncond, noise,
                         steps=req.num_inference_steps, guidance=req.guidance_scale, scheduler=req.scheduler,
                         capture=capture, on_step=self.on_step, should_cancel=self.should_cancel)
        self.calls += out.steps_run
        if out.x0:
            label = f"frame {frame}: {self.req.keyframes[self.keys.index(frame)][1][:28]}"
            self.grid.append((label, [(s, sd.decode(self.model, x)[0]) for s, x in sorted(out.x0.items())]))
        return out

    def run(self) -> SequenceOutput:
        method = self.req.method.replace("-", "_")
        out = getattr(self, f"_{method}")()
        out.grid, out.model_calls = self.grid, self.calls
        return out

    def _latent_walk(self) -> SequenceOutput:
        seeds = [self.req.seed + k for k in range(len(self.keys))]
        noises = [self.noise(s) for s in seeds]
        latents = []
        for i in range(self.req.num_frames):
            a, b, t = segment(self.keys, i)
            latents.append(self.txt2img(i, noises[a] if a == b else sd.slerp(noises[a], noises[b], t)).latents)
        return SequenceOutput(self._decode(latents), seeds)

    def _prompt_interp(self) -> SequenceOutput:
        noise = self.noise(self.req.seed)
        latents = [self.txt2img(i, noise).latents for i in range(self.req.num_frames)]
        return SequenceOutput(self._decode(latents), [self.req.seed])

    def _independent(self) -> SequenceOutput:
        seeds = [self.req.seed + i for i in range(self.req.num_frames)]
        latents = [self.txt2img(i, self.noise(s)).latents for i, s in enumerate(seeds)]
        return SequenceOutput(self._decode(latents), seeds)

    def _interpolate(self) -> SequenceOutput:
        seeds = [self.req.seed + k for k in range(len(self.keys))]
        clean = [self.txt2img(f, self.noise(s)).latents for f, s in zip(self.keys, seeds)]
        latents = []
        for i in range(self.req.num_frames):
            a, b, t = segment(self.keys, i)
            latents.append(clean[a] if a == b or t == 0 else sd.slerp(clean[a], clean[b], t))
        return SequenceOutput(self._decode(latents), seeds)

    def _img2img(self) -> SequenceOutput:
        req = self.req
        noise = self.noise(req.seed)  # fixed noise: only the moved previous frame and the prompt change
        first = self.txt2img(0, noise)
        frames = [sd.decode(self.model, first.latents)[0]]
        for i in range(1, req.num_frames):
            moved = sd.camera(frames[-1], zoom=req.zoom, pan_x=req.pan_x, pan_y=req.pan_y, rotate=req.rotate)
            init = sd.encode_image(self.model, moved)
            out = sd.denoise(self.model, self.embedding(i), self.uncond, noise,
                             steps=req.num_inference_steps, guidance=req.guidance_scale, scheduler=req.scheduler,
                             init_latents=init, strength=req.strength, on_step=self.on_step,
                             should_cancel=self.should_cancel)
            self.calls += out.steps_run
            frames.append(sd.decode(self.model, out.latents)[0])
        return SequenceOutput(np.stack(frames), [req.seed])

    def _decode(self, latents: list) -> np.ndarray:
        import torch

        return sd.decode(self.model, torch.cat(latents))
