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

Each method is a :class:`Method` (its run and its step count), registered in :data:`METHODS`; the runner looks the
request's up there. Adding a method is a class and one entry (and its name in :data:`t2v.requests.METHODS`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np

from t2v.errors import InvalidRequest
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


@dataclass
class SequenceOutput:
    frames: np.ndarray  # (F, H, W, 3) uint8
    seeds: list[int]  # the seed whose noise each frame (or keyframe, for latent-walk/interpolate) used
    grid: list[tuple[str, list[tuple[int, np.ndarray]]]] = field(default_factory=list)
    model_calls: int = 0


class SequenceRunner:
    """One sequence being made: the model, the request, the keyframes' text embeddings, and what every method
    uses (a frame's embedding, seeded noise, a text-to-image run that counts its steps and captures the denoise
    grid, decoding)."""

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
        """The frames of the request's method (:data:`METHODS`), with the denoise grid and the model calls made."""
        out = method_of(self.req).run(self)
        out.grid, out.model_calls = self.grid, self.calls
        return out

    def decode(self, latents: list) -> np.ndarray:
        """The frames of ``latents`` (one per frame), decoded at once."""
        import torch

        return sd.decode(self.model, torch.cat(latents))


class Method:
    """A coherence method: how a sequence's frames get their noise, prompt and start image (``run``, with the
    :class:`SequenceRunner`'s helpers), and how many model steps that takes (``steps``: the progress total)."""

    name: str = ""

    def steps(self, req: SequenceRequest) -> int:
        """Model steps in all (default: a full text-to-image run per frame)."""
        return req.num_frames * req.num_inference_steps

    def run(self, r: SequenceRunner) -> SequenceOutput:
        raise NotImplementedError(f"{type(self).__name__} must define run")


class LatentWalk(Method):
    name = "latent-walk"

    def run(self, r: SequenceRunner) -> SequenceOutput:
        seeds = [r.req.seed + k for k in range(len(r.keys))]
        noises = [r.noise(s) for s in seeds]
        latents = []
        for i in range(r.req.num_frames):
            a, b, t = segment(r.keys, i)
            latents.append(r.txt2img(i, noises[a] if a == b else sd.slerp(noises[a], noises[b], t)).latents)
        return SequenceOutput(r.decode(latents), seeds)


class PromptInterp(Method):
    name = "prompt-interp"

    def run(self, r: SequenceRunner) -> SequenceOutput:
        noise = r.noise(r.req.seed)
        latents = [r.txt2img(i, noise).latents for i in range(r.req.num_frames)]
        return SequenceOutput(r.decode(latents), [r.req.seed])


class Independent(Method):
    name = "independent"

    def run(self, r: SequenceRunner) -> SequenceOutput:
        seeds = [r.req.seed + i for i in range(r.req.num_frames)]
        latents = [r.txt2img(i, r.noise(s)).latents for i, s in enumerate(seeds)]
        return SequenceOutput(r.decode(latents), seeds)


class Interpolate(Method):
    name = "interpolate"

    def steps(self, req: SequenceRequest) -> int:
        return len(req.keyframes) * req.num_inference_steps  # the keyframes only

    def run(self, r: SequenceRunner) -> SequenceOutput:
        seeds = [r.req.seed + k for k in range(len(r.keys))]
        clean = [r.txt2img(f, r.noise(s)).latents for f, s in zip(r.keys, seeds)]
        latents = []
        for i in range(r.req.num_frames):
            a, b, t = segment(r.keys, i)
            latents.append(clean[a] if a == b or t == 0 else sd.slerp(clean[a], clean[b], t))
        return SequenceOutput(r.decode(latents), seeds)


class Img2Img(Method):
    name = "img2img"

    def steps(self, req: SequenceRequest) -> int:
        steps = req.num_inference_steps  # frame 0 from text, then each later frame's img2img steps
        return steps + (req.num_frames - 1) * sd.img2img_steps(steps, req.strength)

    def run(self, r: SequenceRunner) -> SequenceOutput:
        req = r.req
        noise = r.noise(req.seed)  # fixed noise: only the moved previous frame and the prompt change
        first = r.txt2img(0, noise)
        frames = [sd.decode(r.model, first.latents)[0]]
        for i in range(1, req.num_frames):
            moved = sd.camera(frames[-1], zoom=req.zoom, pan_x=req.pan_x, pan_y=req.pan_y, rotate=req.rotate)
            init = sd.encode_image(r.model, moved)
            out = sd.denoise(r.model, r.embedding(i), r.uncond, noise,
                             steps=req.num_inference_steps, guidance=req.guidance_scale, scheduler=req.scheduler,
                             init_latents=init, strength=req.strength, on_step=r.on_step,
                             should_cancel=r.should_cancel)
            r.calls += out.steps_run
            frames.append(sd.decode(r.model, out.latents)[0])
        return SequenceOutput(np.stack(frames), [req.seed])


# The methods by name (the request's ``method``; its choices are t2v.requests.METHODS).
METHODS: dict[str, Method] = {m.name: m for m in (LatentWalk(), PromptInterp(), Img2Img(), Interpolate(), Independent())}


def method_of(req: SequenceRequest) -> Method:
    """The :class:`Method` ``req`` names (InvalidRequest naming ``method`` for one t2v does not know)."""
    method = METHODS.get(req.method)
    if method is None:
        raise InvalidRequest(f"method: unknown {req.method!r}; choose one of: {', '.join(METHODS)}", field="method")
    return method


def total_steps(req: SequenceRequest) -> int:
    """The model steps ``req`` takes in all (the progress total)."""
    return method_of(req).steps(req)
