"""Where a shapes model's frame-to-frame colour flicker comes from: the measurements of docs/model-card.md.

    .venv/bin/python scripts/shapes_flicker.py [--model t2v-shapes] [--seeds 4] [--json flicker.json]

1. decoder: rendered clips -> encoder -> (plus Gaussian noise) -> decoder, frame by frame: is every frame's
   colour still right? (if yes, decoding one frame at a time is not what flickers)
2. amplitude: each frame's latent scaled about the background's latent by 0.8 ... 1.3: which colours survive?
   (how far apart the colours lie in the latent space, against how wrong a latent may come out)
3. sampler and guidance: held-out prompts generated with 10 / 25 / 50 steps and guidance 1 ... 7.5: the share
   of clips whose colour is right in every frame
4. latent content: how much each frame's latent content (per-channel sum of latent - background latent, which
   moving an object does not change) differs from the clip's mean, in encoded rendered clips and in samples

Slow parts: 3 generates 40 clips per setting (about a minute each on two cores).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL

from t2v import generate
from t2v.models.source import local_folder
from t2v.requests import GenerationRequest
from t2v.train import shapes
from t2v.train.common import background_latent, jitter_amplitude
from t2v.train.detect import detect, frame_scores, object_mask as detect_mask
from t2v.train.evaluate import default_cases, evaluate


def frames_to_tensor(frames: np.ndarray) -> torch.Tensor:
    return torch.tensor(frames).permute(0, 3, 1, 2).float() / 127.5 - 1


def to_frames(x: torch.Tensor) -> np.ndarray:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def decoder_check(vae, clips, noise_levels=(0.0, 0.1, 0.2)) -> dict:
    g = torch.Generator().manual_seed(0)
    out = {}
    for noise in noise_levels:
        stable = []
        for s in clips:
            with torch.no_grad():
                z = vae.encode(frames_to_tensor(s.frames)).latent_dist.mean
                z = z + noise * z.std() * torch.randn(z.shape, generator=g)
                d = detect(to_frames(vae.decode(z).sample))
            stable.append(frame_scores(d, *s.label.combo)["color_stable"])
        out[str(noise)] = round(float(np.mean(stable)), 4)
    return out


def amplitude_check(vae, clips, scales=(0.8, 0.9, 1.0, 1.1, 1.2, 1.3)) -> dict:
    background = background_latent(vae, "cpu")
    out = {}
    for scale in scales:
        right: dict[str, list[bool]] = {}
        for s in clips:
            with torch.no_grad():
                z = vae.encode(frames_to_tensor(s.frames)).latent_dist.mean
                z = background + scale * (z - background)
                d = detect(to_frames(vae.decode(z).sample))
            right.setdefault(s.label.color, []).append(d.color == s.label.color)
        out[str(scale)] = {c: round(float(np.mean(v)), 3) for c, v in sorted(right.items())}
    return out


def reconstruction(vae, clips) -> dict:
    """PSNR of encoding and decoding the clips, and how far apart red and yellow objects lie in the latent space
    (the angle between their mean latents over the object's cells, about the background's latent)."""
    background = background_latent(vae, "cpu")[0, :, 0, 0]
    psnr, means = [], {}
    for s in clips:
        x = frames_to_tensor(s.frames)
        with torch.no_grad():
            z = vae.encode(x).latent_dist.mean
            y = vae.decode(z).sample.clamp(-1, 1)
        psnr.append(float(10 * torch.log10(4 / ((y - x) ** 2).mean())))
        cells = torch.nn.functional.avg_pool2d(torch.tensor(detect_mask(s.frames[0]), dtype=torch.float32)[None, None],
                                               s.frames.shape[1] // z.shape[-1])[0, 0] > 0.5
        if cells.any():
            means.setdefault(s.label.color, []).append(z[0][:, cells].mean(1) - background)
    red, yellow = (torch.stack(means[c]).mean(0) for c in ("red", "yellow"))
    angle = torch.rad2deg(torch.arccos((red @ yellow / red.norm() / yellow.norm()).clamp(-1, 1)))
    return {"psnr_db": round(float(np.mean(psnr)), 2), "red_yellow_degrees": round(float(angle), 1),
            "yellow_over_red_length": round(float(yellow.norm() / red.norm()), 3)}


def content_change(vae, z: torch.Tensor) -> float:
    """max over frames of |content_f - mean content| / |mean content|; z: (F, C, h, w), unscaled."""
    c = (z - background_latent(vae, "cpu")[0]).sum((2, 3))
    return float(((c - c.mean(0)).norm(dim=1) / c.mean(0).norm()).max())


def sampling_check(model: str, seeds: int) -> dict:
    cases = default_cases(None, "heldout")
    out = {}
    for name, kw in (("steps 10", {"steps": 10}), ("steps 25", {}), ("steps 50", {"steps": 50}),
                     *((f"guidance {g:g}", {"guidance": g}) for g in (1.0, 2.0, 3.0, 7.5))):
        s = evaluate(model, cases, seeds=seeds, **kw)["summary"]["heldout"]
        out[name] = {k: s[k] for k in ("color", "color_stable", "flicker_ok")}
        print(f"  {name}: {out[name]}", flush=True)
    return out


def latent_check(model: str, vae, clips, seeds: int) -> dict:
    real = []
    for s in clips:
        with torch.no_grad():
            real.append(content_change(vae, vae.encode(frames_to_tensor(s.frames)).latent_dist.mean))
    captured: list[torch.Tensor] = []
    decode = AutoencoderKL.decode

    def keep(self, z, *a, **k):  # the pipeline's latents, as the decoder receives them (unscaled)
        captured.append(z.detach().clone())
        return decode(self, z, *a, **k)

    AutoencoderKL.decode = keep
    sampled = []
    try:
        for case in default_cases(None, "heldout"):
            for seed in range(seeds):
                captured.clear()
                generate(GenerationRequest(prompt=case.prompt, model=model, seed=seed, formats=()))
                sampled.append(content_change(vae, torch.cat(captured)))
    finally:
        AutoencoderKL.decode = decode

    def stats(v):
        return {"median": round(float(np.median(v)), 3), "p90": round(float(np.percentile(v, 90)), 3), "n": len(v)}

    return {"encoded rendered clips": stats(real), "samples": stats(sampled)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="t2v-shapes")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--json", type=Path, default=Path("flicker.json"))
    ap.add_argument("--parts", default="1,2,3,4", help="Which measurements (1,2: the autoencoder alone; 3 is slow).")
    args = ap.parse_args()
    torch.manual_seed(0)
    folder = local_folder(args.model)
    if folder is None:
        raise SystemExit(f"{args.model}: not a local model folder or a model shipped with t2v")
    vae = AutoencoderKL.from_pretrained(folder / "vae").eval()
    clips = list(shapes.iterate(5, 120, split="all"))
    parts = {p.strip() for p in args.parts.split(",")}
    report = {"model": args.model, "reconstruction": reconstruction(vae, clips)}
    print("autoencoder:", report["reconstruction"], flush=True)
    if "1" in parts:
        report["decoder"] = decoder_check(vae, clips)
        print("1. decoder alone, colour right in every frame, by latent noise:", report["decoder"], flush=True)
    if "2" in parts:
        report["amplitude"] = amplitude_check(vae, clips)
        print("2. colour right after scaling each frame's latent about the background's:", flush=True)
        for k, v in report["amplitude"].items():
            print(f"  x{k}: {v}")
    if "3" in parts:
        print("3. held-out prompts, by sampler steps and guidance:", flush=True)
        report["sampling"] = sampling_check(args.model, args.seeds)
    if "4" in parts:
        report["latent_content_change"] = latent_check(args.model, vae, clips[:80], args.seeds)
        print("4. frame-to-frame latent content change (share of the clip mean):", report["latent_content_change"])
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
