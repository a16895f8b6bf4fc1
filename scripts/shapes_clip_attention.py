"""Clip-wide temporal attention against more of the same training: the ablation of docs/model-card.md.

    .venv/bin/python scripts/shapes_clip_attention.py BASE [--steps 600] [--lr 3e-4] [--seeds 4] [--json out.json]

BASE is a shapes model folder `t2v train` wrote. The script fine-tunes its UNet twice from the same start, with
the same batches: once as it is, once with clip-wide temporal attention (t2v.models.temporal.add_clip_attention);
half of every batch from t >= 750 (EMA 0.995, AdamW, warm-up and cosine decay), then scores the held-out
combinations on fresh seeds (100, 101, ...; 25 DDIM steps, guidance 5) per clip and per frame.
About 8 minutes per arm on two cores, plus the base's own scores.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

from t2v.models.temporal import add_clip_attention, apply_temporal_config
from t2v.train.common import EMA, diffusion_loss, encode_latents, lr_at, tokenize
from t2v.train.data import load_clips
from t2v.train.detect import detect, frame_scores
from t2v.train.evaluate import default_cases


def load(base: Path):
    tok = CLIPTokenizer.from_pretrained(base, subfolder="tokenizer")
    te = CLIPTextModel.from_pretrained(base, subfolder="text_encoder").eval().requires_grad_(False)
    vae = AutoencoderKL.from_pretrained(base, subfolder="vae").eval().requires_grad_(False)
    unet = apply_temporal_config(UNet3DConditionModel.from_pretrained(base, subfolder="unet"))
    return tok, te, vae, unet, DDIMScheduler.from_pretrained(base, subfolder="scheduler")


def finetune(unet, te, tok, latents, captions, scheduler, steps: int, lr: float) -> float:
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    unet.train()
    opt = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=1e-2)
    ema = EMA([unet], 0.995)
    start = time.perf_counter()
    for step in range(steps):
        idx = np.random.randint(0, len(latents), 16)
        texts = ["" if random.random() < 0.1 else random.choice(captions[i]) for i in idx]
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, lr, 50)
        with torch.no_grad():
            cond = te(tokenize(tok, texts))[0]
        loss = diffusion_loss(unet, cond, latents[idx], scheduler, high_share=0.5, high_from=0.75)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        ema.update(step)
    ema.swap()
    unet.eval()
    return time.perf_counter() - start


def score(unet, te, tok, vae, scheduler, seeds: int) -> dict:
    scheduler.set_timesteps(25)
    sf = vae.config.scaling_factor
    rows = []
    with torch.no_grad():
        uncond = te(tokenize(tok, [""]))[0]
        for case in default_cases(None, "heldout"):
            cond = te(tokenize(tok, [case.prompt]))[0]
            z = torch.cat([torch.randn((1, 4, 8, 8, 8), generator=torch.Generator().manual_seed(100 + s)) for s in range(seeds)])
            emb = torch.cat([uncond.expand(seeds, -1, -1), cond.expand(seeds, -1, -1)])
            for t in scheduler.timesteps:
                u, c = unet(torch.cat([z, z]), t, encoder_hidden_states=emb).sample.chunk(2)
                z = scheduler.step(u + 5.0 * (c - u), t, z).prev_sample
            for k in range(seeds):
                x = vae.decode(z[k].permute(1, 0, 2, 3) / sf).sample
                frames = ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
                d = detect(frames)
                rows.append({"color": d.color == case.color, "direction": d.direction == case.direction,
                             "shape": d.shape == case.shape, **frame_scores(d, case.color, case.shape, case.direction)})
    keys = ("color", "direction", "shape", "color_stable", "shape_stable", "track_ok", "flicker_ok")
    return {"clips": len(rows), **{k: round(float(np.mean([bool(r[k]) for r in rows])), 3) for k in keys}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("base", type=Path)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(2)
    tok, te, vae, unet, scheduler = load(args.base)
    clips = load_clips("shapes", size=64, frames=8, count=3000, seed=0)
    latents = encode_latents(vae, clips, "cpu", lambda e: None) * vae.config.scaling_factor
    report = {"base": score(unet, te, tok, vae, scheduler, args.seeds)}
    print("base", report["base"], flush=True)
    for arm in ("same", "clip"):
        unet = load(args.base)[3]
        if arm == "clip":
            add_clip_attention(unet)
        seconds = finetune(unet, te, tok, latents, clips.captions, scheduler, args.steps, args.lr)
        report[arm] = {**score(unet, te, tok, vae, scheduler, args.seeds), "train_s": round(seconds)}
        print(arm, report[arm], flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
