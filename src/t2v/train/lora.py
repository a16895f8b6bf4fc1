"""``t2v train-lora``: LoRA fine-tuning of a text-to-video model's UNet attention on a folder of clips.

The base model stays frozen (VAE, text encoder, UNet); only low-rank A/B matrices on ``to_q``, ``to_k``,
``to_v`` and ``to_out.0`` of every attention layer learn. Works for any model in the ModelScope layout:
``t2v-shapes`` on a CPU here, ModelScope 1.7b on a GPU (mixed precision there).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from t2v.errors import InvalidRequest
from t2v.models.temporal import apply_temporal_config
from t2v.train.common import Callback, TrainEvent, diffusion_loss, encode_latents, lr_at, pick_device, tokenize
from t2v.models.source import model_defaults, resolve_source
from t2v.models.lora import DECODER, DECODER_TARGETS, adapters_off, add_lora, lora_parameters, save_lora
from t2v.settings import get_settings
from t2v.train.data import folder_clips
from t2v.train.refine import refine_model
from t2v import generate
from t2v.requests import GenerationRequest
from t2v.families import get_family


@dataclass
class LoraTrainConfig:
    base: str
    data: str
    out: Path
    rank: int = 4
    steps: int = 300
    batch: int = 8
    lr: float = 1e-3
    uncond_prob: float = 0.1
    seed: int = 0
    device: str = "auto"
    preview_prompt: str | None = None
    # Regularisation (prior-preservation) clips: half of every batch comes from here, so the adapter
    # learns the new thing without forgetting what the base model already did.
    reg_data: str | None = None
    # What the regularisation half learns: "base" = the frozen base model's own prediction on the same noisy
    # input (distillation; keeps the base's colours and motions exactly), "clips" = the clips' noise as usual.
    reg_target: str = "base"
    reg_weight: float = 1.0
    conv: bool = False  # LoCon: also the ResNet convolutions (colours, textures) besides attention
    # Adapters on the temporal attention too (False: the spatial layers alone; how frames follow each other stays
    # the base model's).
    temporal: bool = True
    # Then a LoRA on the autoencoder's decoder, refined on the adapted UNet's re-renderings of the clips
    # (t2v.train.refine): a colour the base decoder never saw generated comes out as itself.
    refine_steps: int = 0
    # The decoder adapter's amplitude jitter (t2v.train.refine: each latent's length scaled by 1 +- jitter about
    # the background's, the target the same frame), as ``t2v train --vae-jitter`` trains the base autoencoder.
    refine_jitter: float = 0.0

    def __post_init__(self):
        self.out = Path(self.out).expanduser()
        if not 1 <= self.rank <= 256:
            raise InvalidRequest("rank: must be between 1 and 256", field="rank")
        for name in ("steps", "batch"):
            if getattr(self, name) < 1:
                raise InvalidRequest(f"{name}: must be at least 1", field=name)
        if self.reg_target not in ("base", "clips"):
            raise InvalidRequest(f"reg_target: must be 'base' or 'clips', not {self.reg_target!r}", field="reg_target")
        if self.reg_weight < 0:
            raise InvalidRequest("reg_weight: must be 0 or more", field="reg_weight")
        if self.refine_steps < 0:
            raise InvalidRequest("refine_steps: must be 0 or more", field="refine_steps")
        if not 0.0 <= self.refine_jitter < 1.0:
            raise InvalidRequest("refine_jitter: must be at least 0 and below 1; nearest valid: 0.15",
                                 field="refine_jitter")
        for name in ("data", "reg_data"):
            value = getattr(self, name)
            if value is not None and not Path(value).expanduser().is_dir():
                raise InvalidRequest(f"{name}: {value} is not a folder of clips with captions.jsonl", field=name)


def train_lora(cfg: LoraTrainConfig, on_event: Callback | None = None) -> Path:
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    emit = on_event or (lambda e: None)
    source = resolve_source(cfg.base, get_settings(), families=get_family)
    _, defaults = model_defaults(str(source.path), get_family)
    device, amp = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    path = source.path
    tokenizer = CLIPTokenizer.from_pretrained(path, subfolder="tokenizer")
    text_encoder = CLIPTextModel.from_pretrained(path, subfolder="text_encoder").to(device).eval().requires_grad_(False)
    vae = AutoencoderKL.from_pretrained(path, subfolder="vae").to(device).eval().requires_grad_(False)
    unet = apply_temporal_config(UNet3DConditionModel.from_pretrained(path, subfolder="unet")).to(device)
    scheduler = DDIMScheduler.from_pretrained(path, subfolder="scheduler")
    scheduler.alphas_cumprod = scheduler.alphas_cumprod.to(device)

    emit(TrainEvent("data", 0, 1, message=f"loading {cfg.data}"))
    size, frames = int(defaults["width"]), int(defaults["num_frames"])
    clips = folder_clips(cfg.data, size=size, frames=frames)
    latents = encode_latents(vae, clips, device, emit) * vae.config.scaling_factor
    captions, n, pixels = list(clips.captions), latents.shape[0], [clips.pixels]
    if cfg.reg_data:
        reg = folder_clips(cfg.reg_data, size=size, frames=frames)
        latents = torch.cat([latents, encode_latents(vae, reg, device, emit) * vae.config.scaling_factor])
        captions += list(reg.captions)
        pixels.append(reg.pixels)
    texts = sorted({t for caps in captions for t in caps} | {""})
    with torch.inference_mode():
        embeds = {t: text_encoder(tokenize(tokenizer, [t]).to(device))[0][0].clone() for t in texts}
    lora_config = add_lora(unet, cfg.rank, conv=cfg.conv, temporal=cfg.temporal)

    def teacher(noisy, t, cond):
        with adapters_off(unet):
            return unet(noisy, t, encoder_hidden_states=cond).sample

    unet.train()
    params = lora_parameters(unet)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    t0 = time.perf_counter()
    n_reg = latents.shape[0] - n
    for step in range(cfg.steps):
        half = cfg.batch // 2 if n_reg else 0
        idx = np.concatenate([np.random.randint(0, n, cfg.batch - half), n + np.random.randint(0, max(n_reg, 1), half)])
        # With regularisation clips, only they teach the unconditional prediction (captions dropped), so it stays
        # the base model's: a drifted one is amplified by classifier-free guidance into every prompt's colours.
        drop = [cfg.uncond_prob if (i >= n or not n_reg) else 0.0 for i in idx]
        cond = torch.stack([embeds["" if random.random() < p else random.choice(captions[i])] for i, p in zip(idx, drop)])
        lr = lr_at(step, cfg.steps, cfg.lr, min(20, cfg.steps))
        for g in opt.param_groups:
            g["lr"] = lr
        new = cfg.batch - half
        with torch.autocast(device.split(":")[0], dtype=amp, enabled=amp is not None):
            loss = diffusion_loss(unet, cond[:new], latents[idx[:new]].to(device), scheduler) * new / cfg.batch
            if half:
                loss = loss + cfg.reg_weight * half / cfg.batch * diffusion_loss(
                    unet, cond[new:], latents[idx[new:]].to(device), scheduler, teacher=teacher if cfg.reg_target == "base" else None)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        emit(TrainEvent("lora", step + 1, cfg.steps, loss.item(), lr))
    jitter = cfg.refine_jitter
    meta = {"base": source.id, "data": str(Path(cfg.data).expanduser().resolve()), "rank": cfg.rank, "conv": cfg.conv, "temporal": cfg.temporal, "steps": cfg.steps,
            "batch": cfg.batch, "lr": cfg.lr, "clips": n, "refine_steps": cfg.refine_steps,
            "refine_jitter": jitter if cfg.refine_steps else None,
            "reg_data": str(Path(cfg.reg_data).expanduser().resolve()) if cfg.reg_data else None, "reg_clips": n_reg,
            "reg_target": cfg.reg_target if n_reg else None, "reg_weight": cfg.reg_weight if n_reg else None, "device": device, "seed": cfg.seed}
    if cfg.refine_steps:  # the clips (new and regularisation alike) as the adapted UNet draws them -> a decoder LoRA
        decoder_config = add_lora(vae, cfg.rank, targets=DECODER_TARGETS)
        # Half the decoder's frames from the new clips, half from the regularisation ones (as in the UNet stage),
        # however many of each there are: a large regularisation set must not crowd out the new colour.
        weights = np.array([0.5 / n] * n + [0.5 / n_reg] * n_reg) if n_reg else None
        refine_model(unet, vae, text_encoder, tokenizer, scheduler, latents, np.concatenate(pixels), captions,
                     steps=cfg.refine_steps, batch=16, guidance=float(defaults.get("guidance_scale", 9.0)),
                     sample_steps=int(defaults.get("num_inference_steps", 25)), device=device, seed=cfg.seed, emit=emit,
                     params=lora_parameters(vae), clip_weights=weights, jitter=jitter)
        save_lora(vae.to("cpu"), decoder_config, cfg.out / DECODER, meta)
    meta["elapsed_s"] = round(time.perf_counter() - t0, 1)
    save_lora(unet.to("cpu"), lora_config, cfg.out, meta)
    if cfg.preview_prompt:
        clip = cfg.out / "preview.mp4"
        generate(GenerationRequest(prompt=cfg.preview_prompt, model=cfg.base, seed=0, lora=str(cfg.out)), output=clip)
        emit(TrainEvent("preview", cfg.steps, cfg.steps, message=str(clip)))
    (cfg.out / "train_log.json").write_text(json.dumps({"final_loss": loss.item(), **meta}, indent=2) + "\n")
    emit(TrainEvent("done", cfg.steps, cfg.steps, message=str(cfg.out)))
    return cfg.out
