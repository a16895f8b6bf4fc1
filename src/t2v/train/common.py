"""Training building blocks shared by ``t2v train``, ``t2v train-lora`` and the decoder refinement: progress
events, device choice, the learning-rate schedule, the reconstruction loss, clip encoding and tokenization, and
the diffusion loss, and the EMA of the weights."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from t2v.train.shapes import BACKGROUND


@dataclass
class TrainEvent:
    phase: str  # "data", "vae", "encode", "unet", "preview", "done"
    step: int
    total: int
    loss: float | None = None
    lr: float | None = None
    message: str = ""
    extra: dict = field(default_factory=dict)


Callback = Callable[[TrainEvent], None]


def pick_device(device: str) -> tuple[str, "object"]:
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    amp = torch.bfloat16 if device.startswith("cuda") and torch.cuda.is_bf16_supported() else None
    return device, amp


def lr_at(step: int, total: int, base: float, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(total - warmup, 1)
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def to_tensor(pixels: np.ndarray):
    """uint8 (..., H, W, 3) -> float (..., 3, H, W) in [-1, 1]."""
    import torch

    t = torch.from_numpy(pixels).float().div_(127.5).sub_(1.0)
    return t.movedim(-1, -3)


def reconstruction_loss(recon, target):
    """The autoencoder's pixel loss (MSE + 0.5 L1 on [-1, 1]), for training it and for refining its decoder."""
    import torch

    return torch.nn.functional.mse_loss(recon, target) + 0.5 * torch.nn.functional.l1_loss(recon, target)


def encode_latents(vae, clips, device: str, emit: Callback, chunk: int = 256):
    """(N, 4, F, h, w) posterior means of every clip, unscaled."""
    import torch

    n, f = clips.pixels.shape[:2]
    flat = clips.pixels.reshape(n * f, *clips.pixels.shape[2:])
    out = []
    with torch.inference_mode():
        for i in range(0, len(flat), chunk):
            out.append(vae.encode(to_tensor(flat[i : i + chunk]).to(device)).latent_dist.mean.cpu())
            emit(TrainEvent("encode", min(i + chunk, len(flat)), len(flat)))
    lat = torch.cat(out)
    return lat.reshape(n, f, *lat.shape[1:]).permute(0, 2, 1, 3, 4).contiguous()


def tokenize(tokenizer, texts: list[str]):
    return tokenizer(texts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                     return_tensors="pt").input_ids


def sample_timesteps(n: int, total: int, device, high_share: float = 0.0, high_from: float = 0.75):
    """Uniform timesteps, with a ``high_share`` of them (in expectation) drawn from ``[high_from x total, total)``."""
    import torch

    t = torch.randint(0, total, (n,), device=device)
    if high_share > 0:
        high = torch.rand(n, device=device) < high_share
        lo = min(int(high_from * total), total - 1)
        t = torch.where(high, torch.randint(lo, total, (n,), device=device), t)
    return t


def diffusion_loss(unet, cond, latents, scheduler, snr_gamma: float = 5.0, high_share: float = 0.0,
                   high_from: float = 0.75, teacher=None):
    """Min-SNR-weighted loss on a batch of scaled latents (B, 4, F, h, w), for the scheduler's prediction type.

    epsilon: min(SNR, g) / SNR. v: (min(SNR, g) + 1) / (SNR + 1), which keeps full weight at the
    pure-noise end of a zero-terminal-SNR schedule (where the prompt alone must set the layout) and the
    epsilon weighting at the clean end. ``high_share``/``high_from``: see :func:`sample_timesteps`.
    ``teacher(noisy, t, cond)``: a model whose prediction replaces the noise/velocity target (distillation:
    keep what a base model does on these inputs)."""
    import torch

    noise = torch.randn_like(latents)
    t = sample_timesteps(latents.shape[0], scheduler.config.num_train_timesteps, latents.device, high_share, high_from)
    noisy = scheduler.add_noise(latents, noise, t)
    pred = unet(noisy, t, encoder_hidden_states=cond).sample
    alphas = scheduler.alphas_cumprod.to(latents.device)[t]
    snr = alphas / (1 - alphas)
    v_pred = scheduler.config.prediction_type == "v_prediction"
    weight = (torch.clamp(snr, max=snr_gamma) + 1) / (snr + 1) if v_pred else torch.clamp(snr, max=snr_gamma) / snr
    if teacher is not None:
        with torch.no_grad():
            target = teacher(noisy, t, cond)
    else:
        target = scheduler.get_velocity(latents, noise, t) if v_pred else noise
    per = ((pred.float() - target.float()) ** 2).mean(dim=(1, 2, 3, 4))
    return (per * weight).mean()


def background_latent(vae, device: str):
    """The encoder's latent (unscaled, 1, C, 1, 1: its mean over an empty shapes-world frame) of the background."""
    import torch

    size = 8 * 2 ** (len(vae.config.block_out_channels) - 1)
    frame = (torch.tensor(BACKGROUND, dtype=torch.float32) / 127.5 - 1).view(1, 3, 1, 1).expand(1, 3, size, size)
    with torch.no_grad():
        return vae.encode(frame.to(device)).latent_dist.mean.mean(dim=(2, 3), keepdim=True)


def jitter_amplitude(z, background, jitter: float, gen):
    """Scale each frame's difference from the background latent by a factor drawn from [1 - jitter, 1 + jitter]."""
    import torch

    if jitter <= 0:
        return z
    s = 1 + jitter * (2 * torch.rand((z.shape[0], 1, 1, 1), generator=gen) - 1)
    return background + s.to(z.device) * (z - background)


class EMA:
    """Exponential moving average of a set of modules' parameters (kept in fp32)."""

    def __init__(self, modules, decay: float):
        self.decay = decay
        self.params = [p for m in modules for p in m.parameters()]
        self.shadow = [p.detach().clone().float() for p in self.params]

    def update(self, step: int) -> None:
        import torch

        d = min(self.decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for s, p in zip(self.shadow, self.params):
                s.lerp_(p.detach().float(), 1 - d)

    def swap(self) -> None:
        """Exchange live and EMA weights (call twice to undo)."""
        import torch

        with torch.no_grad():
            for s, p in zip(self.shadow, self.params):
                tmp = p.detach().clone()
                p.copy_(s)
                s.copy_(tmp)
