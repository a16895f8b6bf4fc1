"""The autoencoder phases of ``t2v train``: the whole autoencoder, or its decoder on the frozen encoder's latents."""

from __future__ import annotations

import numpy as np

from t2v.train.common import Callback, TrainEvent, background_latent, jitter_amplitude, lr_at, reconstruction_loss, to_tensor


def train_vae(vae, pools: list[np.ndarray], cfg, device: str, emit: Callback, *,
              decoder_only: bool = False) -> None:
    """Phase 1 of ``t2v train`` (``cfg``: its TrainConfig): the whole autoencoder, or with ``decoder_only`` the
    decoder on the frozen encoder's latents (sharper colours without changing the latent space a trained UNet
    depends on)."""
    import torch

    steps = cfg.decoder_steps if decoder_only else cfg.vae_steps
    modules = [vae.decoder, vae.post_quant_conv] if decoder_only else [vae]
    params = [p for m in modules for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=cfg.vae_lr, weight_decay=0.0)
    gen = np.random.default_rng(cfg.seed + (2 if decoder_only else 1))
    vae.train().to(device)
    phase = "decoder" if decoder_only else "vae"
    tgen = torch.Generator().manual_seed(cfg.seed + 7)
    for step in range(steps):
        share = [cfg.vae_batch // len(pools) + (i < cfg.vae_batch % len(pools)) for i in range(len(pools))]
        picked = np.concatenate([p[gen.integers(0, len(p), k)] for p, k in zip(pools, share)])
        batch = to_tensor(picked).to(device)
        with torch.set_grad_enabled(not decoder_only):
            post = vae.encode(batch).latent_dist
        z = post.mean if decoder_only else post.sample()
        if cfg.vae_jitter > 0:  # colour must survive a frame's latent coming out a little too strong or weak
            with torch.no_grad():
                background = background_latent(vae, device)
            z = jitter_amplitude(z, background, cfg.vae_jitter, tgen)
        recon = vae.decode(z).sample
        rec = reconstruction_loss(recon, batch)
        loss = rec if decoder_only else rec + 1e-6 * post.kl().mean()
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, cfg.vae_lr, min(50, steps))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        emit(TrainEvent(phase, step + 1, steps, rec.item(), opt.param_groups[0]["lr"]))
    vae.eval()
