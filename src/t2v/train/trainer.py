"""``t2v train``: a text-conditioned latent video diffusion model in the diffusers layout, from scratch.

Two phases. First an AutoencoderKL learns to compress frames (reconstruction + a small KL term); its
latent scale is measured and written to its config. Then the clips are encoded once and the UNet3D and
CLIP text encoder learn to denoise (v-prediction on a zero-terminal-SNR schedule by default, min-SNR
weighting, 10% empty captions for classifier-free guidance), with AdamW, warm-up + cosine decay, gradient clipping and an
EMA copy of the weights. Checkpoints (``OUT/checkpoints/step-N.pt``) hold everything needed to resume;
every export writes the EMA weights as a loadable model folder in ``OUT`` and a preview clip. Optional
decoder passes: ``decoder_steps`` on the frozen encoder's latents before the UNet, and ``refine_steps`` on
the UNet's own re-renderings after it (``t2v.train.refine``). Shared pieces live in ``t2v.train.common``.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from t2v.errors import InvalidRequest
from t2v.models.tiny import Arch, build_models, make_tokenizer, save_component, save_pipeline
from t2v.train.autoencoder import train_vae
from t2v.train.common import EMA, Callback, TrainEvent, diffusion_loss, encode_latents, lr_at, pick_device, tokenize
from t2v.models.hub.modelscope import SHAPES_DEFAULTS
from t2v.models.temporal import add_clip_attention, add_temporal_positions
from t2v.train.data import load_clip_sets
from t2v.train.shapes import WorldConfig, variety_frames
from t2v import generate
from t2v.models.loader import clear_cache
from t2v.requests import GenerationRequest
from t2v.train.refine import refine_model
from t2v.train.start import init_training, load_weights, start_state

logger = logging.getLogger(__name__)

PRESETS: dict[str, dict] = {
    # The shipped t2v-shapes model: 64x64, 8 frames, VAE factor 8 (8x8x4 latents).
    "shapes": dict(size=64, frames=8, clips=3000, arch=Arch(unet_channels=(32, 64, 64), cross_attention_dim=64,
                                                            vae_channels=(16, 32, 64, 64), text_intermediate=128,
                                                            max_tokens=16)),
    # For tests: seconds per step.
    "tiny": dict(size=32, frames=4, clips=64, arch=Arch(unet_channels=(16, 32), cross_attention_dim=32,
                                                        vae_channels=(16, 32), text_intermediate=64, max_tokens=16,
                                                        sample_size=32)),
}
PREVIEW_PROMPT = "a red circle moving right"
PREDICTIONS = ("v_prediction", "epsilon")
VARIETY_CLIPS = 2000  # random-colour 2-frame clips the autoencoder sees beside shapes data


@dataclass
class TrainConfig:
    data: str  # "shapes" or a folder with captions.jsonl
    out: Path
    preset: str = "shapes"
    steps: int = 2000
    batch: int = 16
    lr: float = 5e-4
    warmup: int = 100
    vae_steps: int = 800
    vae_batch: int = 16
    vae_lr: float = 1e-3
    # Each frame's latent is scaled by a factor from [1 - J, 1 + J] about the background's before decoding, in
    # the autoencoder and decoder phases (0: off; see model-card.md, "Where the flicker came from").
    vae_jitter: float = 0.0
    decoder_steps: int = 0  # then the decoder alone (encoder frozen, so the latents stay valid), also on --resume
    # After the UNet: decoder steps on the UNet's own re-renderings of training clips (t2v.train.refine).
    refine_steps: int = 0
    refine_clips: int = 1024
    ema_decay: float = 0.998
    uncond_prob: float = 0.1
    checkpoint_every: int = 250
    preview_every: int = 500
    clips: int | None = None  # shapes clips to generate (preset default)
    modifiers: float = 0.0  # share of shapes clips that also ask for a size and/or a speed ("a small ... quickly")
    frames: tuple[int, ...] = ()  # clip lengths to train on (preset's when empty); each step draws one; the first is the default
    seed: int = 0
    resume: bool = False
    device: str = "auto"
    preview_prompt: str = PREVIEW_PROMPT
    # "v_prediction" trains on a zero-terminal-SNR schedule (sampled with trailing timesteps): the last
    # noise level holds no trace of the clip, so the layout and the motion must come from the prompt,
    # not from the starting noise. "epsilon" is the classic ModelScope/SD objective and schedule.
    prediction: str = "v_prediction"
    # Sinusoidal frame-position embeddings in the UNet's temporal attention (t2v.models.temporal): without
    # them, frame order reaches the model only through the temporal convolutions' zero padding, and the
    # shapes model ignored the direction words entirely. A resume can switch them on, not off.
    temporal_positions: bool = True
    # Clip-wide temporal self-attention (t2v.models.temporal.add_clip_attention): a moving object's frames can
    # share its colour. A resume or an --init run can switch it on, not off.
    clip_attention: bool = False
    init: str | None = None  # a model folder t2v train made: start from its weights and autoencoder (t2v.train.start)
    # False keeps the text encoder at its initial weights (random for a new model): a trained one learns to
    # drop words the UNet cannot use yet, and the shapes model's encoder had collapsed the direction words
    # onto one another within 1,000 steps.
    train_text_encoder: bool = True
    # Share of each batch drawn from the noisiest timesteps (t >= high_noise_from x T) instead of uniformly.
    # The prompt sets the layout and the motion at high noise only; under uniform sampling the shapes model
    # learned colour and shape but never direction, and 400 steps of high-noise-only training taught it.
    high_noise_share: float = 0.0
    high_noise_from: float = 0.75

    def __post_init__(self):
        self.out = Path(self.out).expanduser()
        if self.preset not in PRESETS:
            raise InvalidRequest(f"preset: unknown {self.preset!r}; choose one of {', '.join(PRESETS)}", field="preset")
        for name in ("steps", "batch", "vae_batch", "checkpoint_every", "preview_every", "refine_clips"):
            if getattr(self, name) < 1:
                raise InvalidRequest(f"{name}: must be at least 1", field=name)
        if self.prediction not in PREDICTIONS:
            raise InvalidRequest(f"prediction: choose one of {', '.join(PREDICTIONS)}", field="prediction")
        for name in ("vae_steps", "decoder_steps", "refine_steps"):
            if getattr(self, name) < 0:
                raise InvalidRequest(f"{name}: must be 0 or more", field=name)
        if not 0.0 <= self.vae_jitter < 1.0:
            raise InvalidRequest("vae_jitter: must be at least 0 and below 1; nearest valid: 0.15", field="vae_jitter")
        self.frames = tuple(int(f) for f in self.frames)
        if any(f < 2 or f > 64 for f in self.frames) or len(set(self.frames)) != len(self.frames):
            raise InvalidRequest(f"frames: {','.join(map(str, self.frames))} must be distinct lengths from 2 to 64; "
                                 f"for example 8,16", field="frames")
        if not 0.0 <= self.modifiers <= 1.0:
            raise InvalidRequest(f"modifiers: must be between 0 and 1; nearest valid: {min(max(self.modifiers, 0.0), 1.0):g}",
                                 field="modifiers")
        if not 0.0 <= self.high_noise_share <= 1.0:
            raise InvalidRequest("high_noise_share: must be between 0 and 1", field="high_noise_share")
        if not 0.0 <= self.high_noise_from < 1.0:
            raise InvalidRequest("high_noise_from: must be at least 0 and below 1", field="high_noise_from")
        if self.init:
            init_training(self.init)
        if self.data != "shapes" and not Path(self.data).expanduser().is_dir():
            raise InvalidRequest(f"data: {self.data!r} is neither 'shapes' nor a folder", field="data")


def configure_scheduler(scheduler, prediction: str):
    """The training/sampling schedule for ``prediction`` (see :attr:`TrainConfig.prediction`)."""
    from diffusers import DDIMScheduler

    zero_snr = prediction == "v_prediction"
    return DDIMScheduler.from_config(scheduler.config, prediction_type=prediction, rescale_betas_zero_snr=zero_snr,
                                     timestep_spacing="trailing" if zero_snr else "leading")


def vae_frames(clips, cfg: TrainConfig) -> list[np.ndarray]:
    """Frame pools the autoencoder samples equally from: the data set's frames, and for the shapes
    world also random-colour shapes, so colours outside the five base ones survive encoding."""
    pools = [clips.pixels.reshape(-1, *clips.pixels.shape[2:])]
    if cfg.data == "shapes":
        count = min(VARIETY_CLIPS, cfg.clips or PRESETS[cfg.preset]["clips"])
        pools.append(variety_frames(cfg.seed, count, WorldConfig(size=PRESETS[cfg.preset]["size"])))
    return pools


def _checkpoints(out: Path) -> list[Path]:
    return sorted((out / "checkpoints").glob("step-*.pt"), key=lambda p: int(p.stem.split("-")[1]))


def _save_checkpoint(out: Path, step: int, unet, text_encoder, opt, ema: EMA, cfg: TrainConfig, keep: int = 2) -> Path:
    import torch

    folder = out / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    state = {"step": step, "unet": unet.state_dict(), "text_encoder": text_encoder.state_dict(), "opt": opt.state_dict(),
             "ema": ema.shadow, "torch_rng": torch.get_rng_state(), "np_rng": np.random.get_state(),
             "py_rng": random.getstate(), "config": {k: str(v) for k, v in asdict(cfg).items()}}
    path = folder / f"step-{step:06d}.pt"
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    for old in _checkpoints(out)[:-keep]:
        old.unlink()
    return path


def export_model(out: Path, unet, vae, text_encoder, scheduler, ema: EMA | None, cfg: TrainConfig, info: dict) -> None:
    """Write the (EMA) weights as a model folder t2v and diffusers load."""
    preset = PRESETS[cfg.preset]
    defaults = {**SHAPES_DEFAULTS, "width": preset["size"], "height": preset["size"],
                "num_frames": (cfg.frames or (preset["frames"],))[0]}
    if ema is not None:
        ema.swap()
    try:
        save_pipeline(out, unet=unet, vae=vae, text_encoder=text_encoder, scheduler=scheduler, family="modelscope",
                      defaults=defaults, extra={"training": info})
    finally:
        if ema is not None:
            ema.swap()


def preview(out: Path, step: int, prompt: str) -> Path | None:
    """A clip from the exported model (``OUT/previews/step-N.mp4``); failures are logged, not raised."""
    target = out / "previews" / f"step-{step:06d}.mp4"
    try:
        clear_cache()  # the folder's weights just changed
        target.parent.mkdir(parents=True, exist_ok=True)
        generate(GenerationRequest(prompt=prompt, model=str(out), seed=0), output=target)
        return target
    except Exception as e:  # a preview must never kill a long training run
        logger.warning("preview at step %d failed: %s", step, e)
        return None
    finally:
        clear_cache()


def train(cfg: TrainConfig, on_event: Callback | None = None) -> Path:
    """Run (or resume) training; returns ``cfg.out``, a loadable model folder."""
    import torch
    from diffusers import AutoencoderKL

    emit = on_event or (lambda e: None)
    preset = PRESETS[cfg.preset]
    arch: Arch = preset["arch"]
    device, amp = pick_device(cfg.device)
    out = cfg.out
    state_file = out / "train_state.json"
    state = json.loads(state_file.read_text()) if cfg.resume and state_file.is_file() else {}
    if not cfg.resume and _checkpoints(out):
        raise InvalidRequest(f"out: {out} already holds a training run; pass --resume or choose a new folder", field="out")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    tokenizer = make_tokenizer(out / "tokenizer", max_length=arch.max_tokens)
    unet, vae, text_encoder, scheduler = build_models(arch, tokenizer)
    scheduler = configure_scheduler(scheduler, cfg.prediction)
    emit(TrainEvent("data", 0, 1, message=f"loading {cfg.data}"))
    clips, *longer = load_clip_sets(cfg.data, size=preset["size"], frames=cfg.frames or (preset["frames"],),
                                    count=cfg.clips or preset["clips"], seed=cfg.seed, modifiers=cfg.modifiers)
    emit(TrainEvent("data", 1, 1, message=" + ".join(f"{len(c)} clips of {c.pixels.shape[1]} frames" for c in (clips, *longer))))
    t_start = time.perf_counter() - float(state.get("elapsed_s", 0.0))

    if state.setdefault("prediction", cfg.prediction) != cfg.prediction:
        raise InvalidRequest(f"prediction: {out} was trained with {state['prediction']!r}; resume with the same", field="prediction")
    if state.get("temporal_positions") and not cfg.temporal_positions:
        raise InvalidRequest(f"temporal_positions: {out} was trained with frame-position embeddings; they cannot be removed",
                             field="temporal_positions")
    if cfg.temporal_positions:
        add_temporal_positions(unet)
    state["temporal_positions"] = cfg.temporal_positions
    if state.get("clip_attention") and not cfg.clip_attention:
        raise InvalidRequest(f"clip_attention: {out} was trained with clip-wide attention; it cannot be removed", field="clip_attention")
    if cfg.clip_attention:
        add_clip_attention(unet)
    state["clip_attention"] = cfg.clip_attention
    if cfg.init and not state.get("init"):
        state.update(start_state(cfg.init, out, cfg.prediction, cfg.preset, temporal_positions=cfg.temporal_positions,
                                 clip_attention=cfg.clip_attention))
        state_file.write_text(json.dumps(state))
    latents = None
    pools = vae_frames(clips, cfg) if not state.get("vae_done") or state.get("decoder_steps", 0) < cfg.decoder_steps else None
    if state.get("vae_done"):
        vae = AutoencoderKL.from_pretrained(out / "vae")
    else:
        train_vae(vae, pools, cfg, device, emit)
        vae.to(device)
        latents = encode_latents(vae, clips, device, emit)
        vae.register_to_config(scaling_factor=float(1.0 / latents.std()))
        save_component(vae.to("cpu"), out / "vae")
        state.update(vae_done=True, vae_steps=cfg.vae_steps, vae_jitter=cfg.vae_jitter)
        state_file.write_text(json.dumps(state))
    if cfg.decoder_steps and state.get("decoder_steps", 0) < cfg.decoder_steps:
        train_vae(vae, pools, cfg, device, emit, decoder_only=True)
        save_component(vae.to("cpu"), out / "vae")
        state.update(decoder_steps=cfg.decoder_steps)
        state_file.write_text(json.dumps(state))
    del pools
    vae.to(device).eval().requires_grad_(False)
    if latents is None:
        latents = encode_latents(vae, clips, device, emit)
    latents = latents * vae.config.scaling_factor
    # (latents, captions) per clip length; each step draws one length, then a batch of its clips
    sets = [(latents, clips.captions)] + [(encode_latents(vae, c, device, emit) * vae.config.scaling_factor, c.captions)
                                          for c in longer]
    del longer
    refine = cfg.refine_steps > state.get("refine_steps", 0)
    kept = min(cfg.refine_clips, len(clips)) if refine else 0
    refine_pixels, refine_captions = clips.pixels[:kept].copy(), list(clips.captions[:kept])
    del clips.pixels

    unet.to(device).train()
    text_encoder.to(device).train(cfg.train_text_encoder).requires_grad_(cfg.train_text_encoder)
    params = list(unet.parameters()) + (list(text_encoder.parameters()) if cfg.train_text_encoder else [])
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=1e-2)
    ema = EMA([unet, text_encoder] if cfg.train_text_encoder else [unet], cfg.ema_decay)  # unet first: a resume may differ
    start = 0
    if state.get("init") and not _checkpoints(out):
        load_weights(state["init"], unet, text_encoder)
    if cfg.resume and _checkpoints(out):
        ck = torch.load(_checkpoints(out)[-1], map_location=device, weights_only=False)
        unet.load_state_dict(ck["unet"])
        text_encoder.load_state_dict(ck["text_encoder"])
        opt.load_state_dict(ck["opt"])
        for s, v in zip(ema.shadow, ck["ema"]):
            s.copy_(v)
        torch.set_rng_state(ck["torch_rng"])
        np.random.set_state(ck["np_rng"])
        random.setstate(ck["py_rng"])
        start = int(ck["step"])
        emit(TrainEvent("unet", start, cfg.steps, message=f"resumed from step {start}"))
    scheduler.alphas_cumprod = scheduler.alphas_cumprod.to(device)
    id_cache: dict[str, "torch.Tensor"] = {}
    log = (out / "train_log.jsonl").open("a", encoding="utf-8")
    n = sum(z.shape[0] for z, _ in sets)
    try:
        for step in range(start, cfg.steps):
            z_set, captions = sets[random.randrange(len(sets))] if len(sets) > 1 else sets[0]
            idx = np.random.randint(0, z_set.shape[0], cfg.batch)
            texts = ["" if random.random() < cfg.uncond_prob else random.choice(captions[i]) for i in idx]
            for t in set(texts) - id_cache.keys():
                id_cache[t] = tokenize(tokenizer, [t])[0]
            ids = torch.stack([id_cache[t] for t in texts]).to(device)
            lr = lr_at(step, cfg.steps, cfg.lr, cfg.warmup)
            for g in opt.param_groups:
                g["lr"] = lr
            with torch.autocast(device.split(":")[0], dtype=amp, enabled=amp is not None):
                loss = diffusion_loss(unet, text_encoder(ids)[0], z_set[idx].to(device), scheduler,
                                      high_share=cfg.high_noise_share, high_from=cfg.high_noise_from)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            ema.update(step)
            done = step + 1
            emit(TrainEvent("unet", done, cfg.steps, loss.item(), lr))
            if done % 10 == 0 or done == cfg.steps:
                log.write(json.dumps({"step": done, "loss": round(loss.item(), 5), "lr": lr,
                                      "elapsed_s": round(time.perf_counter() - t_start, 1)}) + "\n")
                log.flush()
            last = done == cfg.steps
            if done % cfg.checkpoint_every == 0 or last:
                _save_checkpoint(out, done, unet, text_encoder, opt, ema, cfg)
                state.update(step=done, elapsed_s=time.perf_counter() - t_start)
                state_file.write_text(json.dumps(state))
            if done % cfg.preview_every == 0 or last:
                info = {"data": cfg.data, "preset": cfg.preset, "steps": done, "batch": cfg.batch, "vae_steps": state.get("vae_steps"),
                        "decoder_steps": state.get("decoder_steps", 0), "refine_steps": state.get("refine_steps", 0),
                        "refine_clips": state.get("refine_clips"), "prediction": cfg.prediction, "temporal_positions": cfg.temporal_positions,
                        "clip_attention": cfg.clip_attention, "init": state.get("init_training"),
                        "train_text_encoder": cfg.train_text_encoder,
                        "high_noise_share": cfg.high_noise_share, "high_noise_from": cfg.high_noise_from,
                        "vae_jitter": state.get("vae_jitter", 0.0),
                        "clips": n, "modifiers": cfg.modifiers,
                        "frames": list(cfg.frames or (preset["frames"],)), "device": device, "seed": cfg.seed, "elapsed_s": round(time.perf_counter() - t_start, 1)}
                export_model(out, unet.to("cpu"), vae.to("cpu"), text_encoder.to("cpu"), scheduler, ema, cfg, info)
                unet.to(device), vae.to(device), text_encoder.to(device)
                clip = preview(out, done, cfg.preview_prompt)
                emit(TrainEvent("preview", done, cfg.steps, message=str(clip) if clip else "preview failed"))
        if refine:
            ema.swap()  # refine against the weights that ship
            try:
                refine_model(unet, vae, text_encoder, tokenizer, scheduler, latents[:kept], refine_pixels, refine_captions,
                             steps=cfg.refine_steps, batch=cfg.vae_batch, guidance=SHAPES_DEFAULTS["guidance_scale"],
                             sample_steps=SHAPES_DEFAULTS["num_inference_steps"], device=device, seed=cfg.seed, emit=emit,
                             jitter=cfg.vae_jitter)
            finally:
                ema.swap()
            save_component(vae.to("cpu"), out / "vae")
            state.update(refine_steps=cfg.refine_steps, refine_clips=kept)
            state_file.write_text(json.dumps(state))
        if start >= cfg.steps or refine:  # the UNet loop exported before these (or nothing was left for it)
            export_model(out, unet.to("cpu"), vae.to("cpu"), text_encoder.to("cpu"), scheduler, ema, cfg,
                         {**json.loads((out / "t2v.json").read_text()).get("training", {}),
                          "decoder_steps": state.get("decoder_steps", 0), "refine_steps": state.get("refine_steps", 0),
                          "refine_clips": state.get("refine_clips")})
    finally:
        log.close()
    emit(TrainEvent("done", cfg.steps, cfg.steps, message=str(out)))
    return out
