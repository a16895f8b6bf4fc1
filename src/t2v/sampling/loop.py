"""The one denoising loop: the state it carries, checkpoints that resume bitwise, cancel between steps, per-step
progress and latent previews. Every family's run and image mode step through it; each supplies only its step::

    state = LoopState(latents)
    checkpoints = Checkpoints(ctx, model, request, scheduler, generator)
    start = checkpoints.resume(state, device)          # 0, or the step a checkpoint of this request reached
    ctx.on_stage("denoise", start, len(timesteps))
    denoise(ctx, len(timesteps), state, step, checkpoints, start=start)   # step(i, state) updates state

``ctx`` is anything with ``should_cancel()``, ``on_step(done, total, latents)`` and ``checkpoint`` (a
:class:`t2v.sampling.base.CheckpointSpec` or None): a family's :class:`t2v.families.base.RunContext`, or
:class:`Hooks`. The stage's time is measured where the stage is announced (``ctx.on_stage``), not here.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from t2v.errors import Cancelled
from t2v.sampling import checkpoint as ckpt
from t2v.sampling.v2v import fingerprint

logger = logging.getLogger(__name__)


@dataclass
class LoopState:
    """What a denoising loop carries from step to step: the latents, and ``extra`` state some schedulers and step
    caches keep outside themselves (CogVideoX DPM's previous prediction); both go into checkpoints."""

    latents: Any
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Hooks:
    """The loop's callbacks for a caller without a family's run context (image mode): progress after each step,
    cancel between steps, and no checkpoints unless ``checkpoint`` is given."""

    on_step: Callable[[int, int, Any], None] = lambda done, total, latents: None
    should_cancel: Callable[[], bool] = lambda: False
    checkpoint: Any = None


def run_fingerprint(model, request, image=None, last_image=None) -> str:
    """The checkpoint fingerprint of the request, with the input images' pixels when there are some."""
    fp = ckpt.fingerprint(model, request)
    for img in (image, last_image):
        if img is not None:
            pixels = hashlib.sha256(f"{img.mode}{img.size}".encode() + img.tobytes()).hexdigest()
            fp = hashlib.sha256(f"{fp}:{pixels}".encode()).hexdigest()
    return fp


def restore_scheduler(scheduler, state: dict[str, Any], device) -> None:
    """:func:`t2v.sampling.checkpoint.restore_scheduler`, keeping the tensors a scheduler holds on the CPU
    there (UniPC keeps ``sigmas`` on the CPU): the resumed steps then compute exactly as uninterrupted ones."""
    import torch

    devices = {k: v.device for k, v in vars(scheduler).items() if isinstance(v, torch.Tensor)}
    ckpt.restore_scheduler(scheduler, state, device)
    for k, dev in devices.items():
        v = getattr(scheduler, k, None)
        if isinstance(v, torch.Tensor) and v.device != dev:
            setattr(scheduler, k, v.to(dev))


class Checkpoints:
    """Resume from and save to ``ctx.checkpoint`` (no-ops without one) for one run of one request."""

    def __init__(self, ctx, model, request, scheduler, generator, image=None, video=None):
        self.ctx, self.scheduler, self.generator = ctx, scheduler, generator
        self.spec = ctx.checkpoint
        control = getattr(ctx, "control", None)
        fp = fingerprint(run_fingerprint(model, request, image, getattr(ctx, "last_image", None)), video) if self.spec else ""
        self.fingerprint = control.fingerprint(fp) if self.spec and control is not None else fp
        self.resumed: int | None = None  # the step resumed from (for the record)

    def resume(self, state: LoopState, device, dtype=None) -> int:
        """The step to start from: that of a checkpoint of this very request (its latents, in ``dtype`` if given,
        scheduler, generator and extra state restored into ``state``), else 0."""
        if not (self.spec and self.spec.resume):
            return 0
        saved = ckpt.load(self.spec.path, self.fingerprint)
        if saved is None:
            return 0
        state.latents = saved["latents"].to(device, dtype) if dtype is not None else saved["latents"].to(device)
        state.extra = {k: v.to(device) if hasattr(v, "to") else v for k, v in saved.get("extra", {}).items()}
        restore_scheduler(self.scheduler, saved["scheduler"], device)
        self.generator.set_state(saved["generator"])
        logger.info("resuming from step %d", saved["step"])
        self.resumed = int(saved["step"])
        return self.resumed

    def save(self, step: int, state: LoopState) -> None:
        if self.spec:
            ckpt.save(self.spec, fingerprint=self.fingerprint, step=step, latents=state.latents,
                      scheduler=self.scheduler, generator=self.generator, extra=state.extra)


def denoise(ctx, total: int, state: LoopState, step: Callable[[int, LoopState], None],
            checkpoints: Checkpoints | None = None, *, start: int = 0, stop: int | None = None,
            before_decode: bool = True) -> None:
    """Steps ``start`` .. ``stop`` (default ``total``) of ``total``: ``step(i, state)`` updates ``state``; a
    cancel between steps saves a checkpoint and raises Cancelled; periodic checkpoints every
    ``ctx.checkpoint.every`` steps; ``ctx.on_step`` after each. After the last step (``before_decode``) a cancel
    still stops the run before decoding (a resume from that checkpoint goes straight to decoding)."""
    every = ctx.checkpoint.every if ctx.checkpoint else 0
    save = checkpoints.save if checkpoints is not None else (lambda i, s: None)
    stop = total if stop is None else stop
    for i in range(start, stop):
        if ctx.should_cancel():
            save(i, state)
            raise Cancelled(f"cancelled at step {i} of {total}")
        step(i, state)
        if every and (i + 1) % every == 0 and i + 1 < total:
            save(i + 1, state)
        logger.debug("step %d/%d", i + 1, total)
        ctx.on_step(i + 1, total, state.latents)
    if before_decode and stop == total and ctx.should_cancel():
        save(total, state)
        raise Cancelled("cancelled before decoding")


def linear_preview(latents, factors, bias, scale: int):
    """A latent -> RGB preview of the middle frame of (B, C, F, H, W) latents through a linear map (``factors``:
    one RGB row per latent channel, ComfyUI's latent formats; the first three channels, normalised, when the
    channel count differs), upscaled ``scale`` times to about the output size (uint8, H x W x 3)."""
    import torch

    frame = latents[0, :, latents.shape[2] // 2].float().cpu()
    if frame.shape[0] == len(factors):
        rgb = torch.einsum("chw,cr->hwr", frame, torch.tensor(factors)) + torch.tensor(bias)
    else:
        rgb = frame[:3].permute(1, 2, 0)
        rgb = rgb / rgb.abs().amax().clamp(min=1e-6)
    img = ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    return img.repeat(scale, axis=0).repeat(scale, axis=1)
