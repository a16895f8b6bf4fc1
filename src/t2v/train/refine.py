"""Decoder refinement on the diffusion model's own latents (``t2v train --refine-steps N``).

The autoencoder's decoder is trained on the encoder's exact latents, but at generation time it decodes
what the UNet produced, which is never exact. On the shapes model the difference showed as dim middles on
the top and bottom edges of every square, so the detector read the squares as round (78 of 80).

Refinement shows the decoder what the UNet really makes: each training clip is noised part of the way
(SDEdit, a start drawn between ``REFINE_FROM`` and ``REFINE_TO`` of the schedule, so the layout stays the
clip's), denoised by the trained UNet with classifier-free guidance exactly as at generation time, and the
decoder learns to map that latent back to the clip's frames. A quarter of each batch keeps the exact
latents, so true reconstructions stay sharp. The encoder, and with it the UNet's latent space, is frozen.
"""

from __future__ import annotations

import random
import time

import numpy as np

from t2v.train.common import (Callback, TrainEvent, background_latent, jitter_amplitude, lr_at, reconstruction_loss,
                              to_tensor, tokenize)

REFINE_FROM, REFINE_TO = 0.25, 0.7  # SDEdit start, as a share of the training timesteps
REFINE_LR = 3e-4
EXACT_SHARE = 0.25  # of each decoder batch: exact encoder latents, the rest the UNet's own
SAMPLE_BATCH = 32


def own_latents(unet, text_encoder, tokenizer, scheduler, latents, captions: list[list[str]], *, guidance: float,
                steps: int, device: str, seed: int, emit: Callback):
    """For each clip's scaled latents (N, C, F, h, w): the UNet's SDEdit re-rendering of it (same shape)."""
    import torch
    from diffusers import DDIMScheduler

    sampler = DDIMScheduler.from_config(scheduler.config)
    sampler.set_timesteps(steps)
    ts = sampler.timesteps
    total = scheduler.config.num_train_timesteps
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    out = []
    with torch.no_grad():
        uncond = text_encoder(tokenize(tokenizer, [""]).to(device))[0]
        for i in range(0, len(latents), SAMPLE_BATCH):
            x = latents[i : i + SAMPLE_BATCH].to(device)
            b = x.shape[0]
            cond = text_encoder(tokenize(tokenizer, [rng.choice(c) for c in captions[i : i + b]]).to(device))[0]
            start = rng.randint(int(REFINE_FROM * total), int(REFINE_TO * total))
            k = int((ts <= start).nonzero()[0])
            z = sampler.add_noise(x, torch.randn(x.shape, generator=gen).to(device), ts[k].repeat(b))
            context = torch.cat([uncond.expand(b, -1, -1), cond])
            for t in ts[k:]:
                u, c = unet(torch.cat([z, z]), t.to(device), encoder_hidden_states=context).sample.chunk(2)
                z = sampler.step(u + guidance * (c - u), t, z).prev_sample
            out.append(z.cpu())
            emit(TrainEvent("refine-sample", min(i + b, len(latents)), len(latents)))
    return torch.cat(out)


def frame_probabilities(clip_weights, frames: int) -> np.ndarray | None:
    """Per-frame sampling probabilities (N * F) from per-clip weights (N); None (uniform) without weights."""
    if clip_weights is None:
        return None
    w = np.repeat(np.asarray(clip_weights, dtype=np.float64), frames)
    if w.min() < 0 or w.sum() <= 0:
        raise ValueError("clip_weights: must be non-negative and not all zero")
    return w / w.sum()


def refine_decoder(vae, own, exact, pixels: np.ndarray, *, steps: int, batch: int, device: str, seed: int,
                   emit: Callback, params: list | None = None, clip_weights=None, jitter: float = 0.0) -> float:
    """Train ``vae``'s decoder (or just ``params``, e.g. a LoRA on it) to map the UNet's latents ``own`` and the
    exact ``exact`` (both scaled, N, C, F, h, w) to the clips' ``pixels`` (N, F, H, W, 3). Returns the last loss.

    ``clip_weights`` (N, optional): how often each clip's frames are drawn, relative to the others (e.g. half
    the draws from a few new clips, half from many regularisation clips); uniform without it.

    ``jitter`` (0: off): each latent's difference from the background's is scaled by a factor from
    [1 - jitter, 1 + jitter] while the target stays the clip's frame, so the decoder reads colour from the
    latent's direction rather than its length (:func:`t2v.train.common.jitter_amplitude`)."""
    import torch

    def per_frame(z):
        return (z / vae.config.scaling_factor).permute(0, 2, 1, 3, 4).reshape(-1, z.shape[1], *z.shape[3:])

    prob = frame_probabilities(clip_weights, own.shape[2])
    own, exact = per_frame(own), per_frame(exact)
    target = to_tensor(pixels.reshape(-1, *pixels.shape[2:]))
    if params is None:
        params = [p.requires_grad_(True) for m in (vae.decoder, vae.post_quant_conv) for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=REFINE_LR, weight_decay=0.0)
    gen = np.random.default_rng(seed + 3)
    n_exact = max(1, round(batch * EXACT_SHARE))
    vae.to(device).train()
    background = background_latent(vae, device) if jitter > 0 else None
    tgen = torch.Generator().manual_seed(seed + 5)
    t0, loss = time.perf_counter(), torch.zeros(())
    for step in range(steps):
        # p=None draws exactly what gen.integers did before clip weights existed: same frames, same models
        i_own, i_exact = gen.choice(len(own), batch - n_exact, p=prob), gen.choice(len(exact), n_exact, p=prob)
        z = jitter_amplitude(torch.cat([own[i_own], exact[i_exact]]).to(device), background, jitter, tgen)
        y = torch.cat([target[i_own], target[i_exact]]).to(device)
        recon = vae.decode(z).sample
        loss = reconstruction_loss(recon, y)
        lr = lr_at(step, steps, REFINE_LR, min(50, steps))
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        emit(TrainEvent("refine", step + 1, steps, loss.item(), lr, extra={"elapsed_s": time.perf_counter() - t0}))
    vae.eval().requires_grad_(False)
    return float(loss.item())


def refine_model(unet, vae, text_encoder, tokenizer, scheduler, latents, pixels: np.ndarray, captions: list[list[str]], *,
                 steps: int, batch: int, guidance: float, sample_steps: int, device: str, seed: int, emit: Callback,
                 params: list | None = None, clip_weights=None, jitter: float = 0.0) -> float:
    """Re-render the clips with the trained UNet (sampled as t2v generates them: ``sample_steps`` DDIM steps at
    ``guidance``), then refine ``vae``'s decoder (or ``params``) on them for ``steps`` steps, drawing clips by
    ``clip_weights`` (see :func:`refine_decoder`). Returns the last loss."""
    unet.to(device).eval()
    text_encoder.to(device).eval()
    vae.to(device)
    own = own_latents(unet, text_encoder, tokenizer, scheduler, latents, captions, guidance=guidance, steps=sample_steps,
                      device=device, seed=seed, emit=emit)
    return refine_decoder(vae, own, latents, pixels, steps=steps, batch=batch, device=device, seed=seed, emit=emit,
                          params=params, clip_weights=clip_weights, jitter=jitter)
