"""LTX-Video 0.9.x (``LTXPipeline``, ``LTXImageToVideoPipeline``, ``LTXConditionPipeline``): T5 text encoder, LTX
transformer, the LTX video VAE (32x spatial, 8x temporal compression).

t2v's own loop, numbered like the stock pipelines' ``__call__``, so a seed gives their frames. A folder naming
``LTXPipeline`` / ``LTXImageToVideoPipeline`` (0.9.0 - 0.9.5) runs as ``LTXPipeline``, and with an image as
``LTXImageToVideoPipeline`` (the image's latent frame is never stepped); ``LTXConditionPipeline`` (0.9.7, 0.9.8)
runs as that pipeline with no condition, or one image at frame 0, strength 1 (its conditioning noise, per-token
timesteps and the distilled models' custom timesteps included). The loop holds packed latents; previews and
decoding unpack them. Decoding adds the VAE's timestep conditioning (``decode_timestep``, ``decode_noise_scale``;
the noise drawn from the request's generator as stock does). The 0.9.1 decoder also injects noise from torch's
global RNG, which stock leaves unseeded: t2v seeds it with the request's seed inside ``fork_rng``.

Not run: several or video conditions, other frames or strengths, video-to-video (``denoise_strength``) and the
latent upscaler (``LTXLatentUpsamplePipeline``): inputs a request does not carry, a second model and pass.
The low memory plan decodes with the VAE's spatial tiling and frame-wise decoding (frames change above 2 latent
frames or 512 px, as with Wan's tiling).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

from t2v.engine.base import EngineRun
from t2v.engine.offload import resident
from t2v.engine.schedulers import make_scheduler
from t2v.errors import ModelUnavailable
from t2v.families.base import Component, RunContext, Rules, read_index
from t2v.families.common import (
    Checkpoints, DiffusersLora, LoopState, config, denoise, free_text_encoders, meta_modules, params)
from t2v.models.spec import ModelSpec

logger = logging.getLogger(__name__)

# LTX-Video's recommended negative prompt (model cards and diffusers' LTX examples).
NEGATIVE_PROMPT = "worst quality, inconsistent motion, blurry, jittery, distorted"
CONDITION = "LTXConditionPipeline"
UPSAMPLER = "LTXLatentUpsamplePipeline"
TEXT_TOKENS = {False: 128, True: 256}  # max_sequence_length of LTXPipeline / LTXConditionPipeline
# What a model's defaults (ModelSpec / t2v.json) may set beyond the request fields, with the stock defaults.
OPTIONS = {"decode_timestep": 0.0, "decode_noise_scale": None, "timesteps": None, "image_cond_noise_scale": 0.15,
           "guidance_rescale": 0.0}
DISTILLED_TIMESTEPS = [1000, 993, 987, 981, 975, 909, 725, 0.03]  # diffusers' LTX docs, 0.9.7 / 0.9.8 distilled
_BASE = {"width": 704, "height": 512, "num_frames": 161, "fps": 25, "guidance_scale": 3.0, "num_inference_steps": 50,
         "scheduler": "model", "negative_prompt": NEGATIVE_PROMPT}
_091 = {**_BASE, "decode_timestep": 0.05, "decode_noise_scale": 0.025}  # the timestep-conditioned VAE (0.9.1+)
_13B = {**_091, "num_inference_steps": 30, "guidance_scale": 5.0, "guidance_rescale": 0.7, "image_cond_noise_scale": 0.0}
_DISTILLED = {**_13B, "num_inference_steps": 8, "guidance_scale": 1.0, "timesteps": DISTILLED_TIMESTEPS}
_RAIL = "OpenRAIL-M (Lightricks; use restrictions apply)"
_OPEN_WEIGHTS = "LTXV Open Weights License (Lightricks; use restrictions apply)"
_NOTICE = "LTXV Open Weights License: read its terms before use; commercial use may need an agreement with Lightricks."
_FILES = "https://huggingface.co/Lightricks/LTX-Video/blob/main/"
_UNSUPPORTED = ("t2v runs text-to-video and first-frame image-to-video; multi-condition, video conditions and "
                "the latent upscaler second pass are not run.")


def _spec(id_: str, description: str, defaults: dict, license_: str, url: str, gb: float, vram: float, notes: str = "",
          aliases: tuple[str, ...] = ()) -> ModelSpec:
    return ModelSpec(id=id_, family="ltx", description=description, defaults=defaults, license=license_, license_url=url,
                     download_gb=gb, vram_gb=vram, has_fp16_variant=False, notes=notes, aliases=aliases,
                     tasks=("t2v", "i2v"), license_notice=_NOTICE if license_ == _OPEN_WEIGHTS else "")


class LTXFamily(DiffusersLora):
    name = "ltx"
    description = "LTX-Video 0.9.x text-to-video and image-to-video (LTX transformer, T5-XXL, LTX video VAE)"
    pipelines = ("LTXPipeline", "LTXImageToVideoPipeline", CONDITION, UPSAMPLER)
    components = (
        Component("tokenizer", ("T5TokenizerFast", "T5Tokenizer", "AutoTokenizer", "ByT5Tokenizer"), module=False),
        Component("text_encoder", ("T5EncoderModel",), weight_stem="model"),
        Component("transformer", ("LTXVideoTransformer3DModel",)),
        Component("vae", ("AutoencoderKLLTXVideo",)),
        Component("scheduler", ("FlowMatchEulerDiscreteScheduler",), module=False),
    )
    defaults = dict(_BASE)  # LTXPipeline's own defaults with LTX's negative prompt
    modes = ("video", "i2v")
    denoiser = "transformer"
    lora_loader = "LTXVideoLoraLoaderMixin"
    tiny = {"ltx": "t2v.models.tiny.ltx:make_ltx", "ltx-097": "t2v.models.tiny.ltx:make_ltx_097"}
    # Sizes: T5-XXL fp32 (19 GB) + the transformer (bf16) + VAE; VRAM in bf16 at the defaults, no offload.
    models = (
        _spec("Lightricks/LTX-Video", "LTX-Video 0.9.0 2B: text- and image-to-video, 704x512, 161 frames at 25 fps.",
              _BASE, _RAIL, "https://huggingface.co/Lightricks/LTX-Video", 24.0, 20.0,
              "The repo's diffusers folders hold 0.9.0 (its VAE has no timestep conditioning).", ("ltx", "ltx-0.9.0")),
        _spec("Lightricks/LTX-Video-0.9.1", "LTX-Video 0.9.1 2B with the timestep-conditioned VAE.", _091, _RAIL,
              _FILES + "ltx-video-2b-v0.9.1.license.txt", 25.0, 20.0, aliases=("ltx-0.9.1",)),
        _spec("Lightricks/LTX-Video-0.9.5", "LTX-Video 0.9.5 2B (new VAE; commercial use under OpenRAIL-M).", _091, _RAIL,
              _FILES + "ltx-video-2b-v0.9.5.license.txt", 25.0, 20.0, aliases=("ltx-0.9.5",)),
        _spec("Lightricks/LTX-Video-0.9.7-dev", "LTX-Video 0.9.7 13B dev (LTXConditionPipeline).", _13B, _OPEN_WEIGHTS,
              _FILES + "LTX-Video-Open-Weights-License-0.X.txt", 47.0, 40.0,
              "Defaults as diffusers' 0.9.7 example (30 steps, guidance 5, rescale 0.7). " + _UNSUPPORTED, ("ltx-0.9.7",)),
        _spec("Lightricks/LTX-Video-0.9.7-distilled", "LTX-Video 0.9.7 13B distilled: 8 steps, no guidance.", _DISTILLED,
              _OPEN_WEIGHTS, _FILES + "LTX-Video-Open-Weights-License-0.X.txt", 47.0, 36.0,
              "Guidance- and timestep-distilled: the custom timesteps of diffusers' docs at 8 steps (another step "
              "count uses the default schedule). " + _UNSUPPORTED, ("ltx-0.9.7-distilled",)),
        _spec("Lightricks/LTX-Video-0.9.8-13B-distilled", "LTX-Video 0.9.8 13B distilled: 8 steps, no guidance.",
              _DISTILLED, _OPEN_WEIGHTS, _FILES + "LTX-Video-Open-Weights-License-0.X.txt", 47.0, 36.0,
              "As 0.9.7 distilled; 0.9.8's long-video and tone-mapping upscaler features are not run. " + _UNSUPPORTED,
              ("ltx-0.9.8-distilled",)),
    )

    # -- rules -----------------------------------------------------------------------------------------
    def rules(self, path: Path | None) -> Rules:
        if path is None:
            return Rules(size_multiple=32, frame_step=8, text_tokens=TEXT_TOKENS[False], modes=self.modes,
                         schedulers=("model",))
        spatial, temporal = _ratios(config(path, "vae"))
        tr = config(path, "transformer")
        return Rules(size_multiple=spatial * (tr.get("patch_size") or 1), frame_step=temporal * (tr.get("patch_size_t") or 1),
                     text_tokens=TEXT_TOKENS[_is_condition(path)], modes=self.modes, schedulers=("model",))

    def check_index(self, path: Path, index: dict[str, Any]) -> None:
        if index.get("_class_name") == UPSAMPLER:
            raise ModelUnavailable(f"{path} is LTX-Video's latent upscaler ({UPSAMPLER}), a second stage that refines "
                                   "another run's latents; t2v does not run it: use an LTX-Video model")
        super().check_index(path, index)

    # -- running ---------------------------------------------------------------------------------------
    def run(self, model, request, ctx: RunContext) -> EngineRun:
        import torch

        with torch.inference_mode():
            return self._run(model, request, ctx)

    def _run(self, model, request, ctx: RunContext) -> EngineRun:
        import torch

        c, memory, device = model.components, ctx.memory, model.plan.device
        path = Path(model.source.path)
        condition, opts = _is_condition(path), options(model, request)
        transformer, vae = c["transformer"], c["vae"]
        grid = Grid.of(request, vae, transformer)
        timings: dict[str, float] = {}

        # 1. Encode the prompt (and the negative prompt, for classifier-free guidance), as two calls like stock.
        t0 = time.perf_counter()
        ctx.on_stage("encode_prompt")
        cfg, tokens = request.guidance_scale > 1.0, TEXT_TOKENS[condition]
        with resident(c["text_encoder"], device, memory.offload):
            embeds, mask = encode_prompt(model, request.prompt, tokens, ctx.warnings, condition)
            if cfg:
                negative, negative_mask = encode_prompt(model, request.negative_prompt or "", tokens, [], condition)
                embeds, mask = torch.cat([negative, embeds]), torch.cat([negative_mask, mask])
        free_text_encoders(model, memory)
        timings["encode_prompt_s"] = time.perf_counter() - t0

        # 2. Noise (fp32 from a CPU generator), the image's latents, timesteps: each pipeline's own order.
        generator = torch.Generator("cpu").manual_seed(request.seed)
        if memory.name == "low":
            vae.enable_tiling()
            vae.use_framewise_decoding = True
        else:
            vae.disable_tiling()
            vae.use_framewise_decoding = False
        scheduler = make_scheduler(request.scheduler, model.scheduler_config)
        with resident(vae, device, memory.offload and ctx.image is not None):
            prep = (condition_latents if condition else classic_latents)(vae, grid, ctx.image, request, generator, device)
        if condition:
            condition_timesteps(scheduler, request.num_inference_steps, opts["timesteps"], device, ctx.warnings)
        else:
            classic_timesteps(scheduler, request.num_inference_steps, grid, device)
        state = LoopState(prep.latents)
        checkpoints = Checkpoints(ctx, model, request, scheduler, generator, ctx.image)
        start = checkpoints.resume(state, device)
        timesteps = scheduler.timesteps

        # 3. Denoise; progress and previews see unpacked latents.
        ctx.on_stage("denoise")
        t1 = time.perf_counter()
        model_step = (condition_step if condition else classic_step)(
            transformer, scheduler, grid, prep, embeds, mask, request, opts, generator)

        def step(i: int, s: LoopState) -> None:
            s.latents = model_step(timesteps[i], s.latents)

        loop_ctx = dataclasses.replace(ctx, on_step=lambda i, n, latents: ctx.on_step(i, n, grid.unpack(latents)))
        with resident(transformer, device, memory.offload):
            denoise(loop_ctx, len(timesteps), state, step, checkpoints, start=start)
        timings["denoise_s"] = time.perf_counter() - t1

        # 4. Decode at the VAE's decode timestep, with the decode noise drawn from the generator.
        ctx.on_stage("decode")
        t2 = time.perf_counter()
        with resident(vae, device, memory.offload):
            frames = decode(vae, grid.unpack(state.latents), embeds.dtype, opts, generator, request.seed, device)
        timings["decode_s"] = time.perf_counter() - t2
        return EngineRun(frames=frames, warnings=ctx.warnings, timings=timings, resumed_from_step=checkpoints.resumed)

    def preview(self, model, latents):
        """The middle latent frame's first three channels, upscaled by the VAE's spatial factor."""
        from t2v.engine.vae import latent_preview

        return latent_preview(latents, scale=model.components["vae"].spatial_compression_ratio)

    # -- the planner's dry run ------------------------------------------------------------------------
    def measure(self, path: Path, frames: int, height: int, width: int, batch: int, chunking: bool,
                vae_chunk: int) -> dict[str, Any]:
        """One text encoding, one transformer pass over the packed tokens (conditional and unconditional in
        one batch, as stock runs them), one decode of the whole clip (the LTX VAE decodes every latent frame
        in one call, whatever ``vae_chunk``: ``vae_scales_with`` "clip"), and the image's encode."""
        import torch

        from t2v.models.memory import meta_cost

        path = Path(path)
        m = meta_modules(str(path))
        tr, vae = m["transformer"], m["vae"]
        spatial, temporal = vae.spatial_compression_ratio, vae.temporal_compression_ratio
        f, h, w = (frames - 1) // temporal + 1, height // spatial, width // spatial
        tokens, meta = TEXT_TOKENS[_is_condition(path)], dict(device="meta", dtype=torch.float32)
        ids = torch.zeros(1, tokens, dtype=torch.long, device="meta")
        text_peak, _ = meta_cost(lambda: m["text_encoder"](ids))
        x = torch.zeros(batch, f * h * w, tr.config.in_channels, **meta)
        embeds = torch.zeros(batch, tokens, tr.config.caption_channels, **meta)
        step_peak, step_flops = meta_cost(lambda: tr(
            hidden_states=x, encoder_hidden_states=embeds, timestep=torch.zeros(batch, **meta),
            encoder_attention_mask=torch.ones(batch, tokens, **meta), num_frames=f, height=h, width=w,
            rope_interpolation_scale=(temporal / 25, spatial, spatial), return_dict=False))
        z = torch.zeros(1, vae.config.latent_channels, f, h, w, **meta)
        temb = torch.zeros(1, **meta) if vae.config.timestep_conditioning else None
        vae_peak, decode_flops = meta_cost(lambda: vae.decode(z, temb))
        image = torch.zeros(1, 3, 1, height, width, **meta)
        vae_peak = max(vae_peak, meta_cost(lambda: vae.encode(image))[0])
        latent_bytes = x[0].numel() * 4
        return {
            "params": params(m),
            "acts": {"text": text_peak, "transformer": step_peak, "vae": vae_peak},
            "roles": {"text": ["text_encoder"], "denoise": ["transformer"], "vae": ["vae"]},
            "step_flops": step_flops,
            "decode_flops": decode_flops,
            "latents_bytes": latent_bytes * (1 + batch),  # the latents + the model's (batched) input
            "shape": (frames, height, width, frames),
            "vae_scales_with": "clip",
        }

    def reference_shape(self, path: Path) -> tuple[int, int]:
        """17 frames (3 latent frames) at 64 px (2 latent rows)."""
        return 2 * self.frames_per_latent(path) + 1, 2 * self.rules(Path(path)).size_multiple

    def frames_per_latent(self, path: Path) -> int:
        return _ratios(config(Path(path), "vae"))[1]


# -- folder facts ----------------------------------------------------------------------------------------

def _is_condition(path: Path) -> bool:
    return read_index(path).get("_class_name") == CONDITION


def _ratios(vae: dict[str, Any]) -> tuple[int, int]:
    """(spatial, temporal) compression of an AutoencoderKLLTXVideo config (as the model computes them)."""
    scaling = vae.get("spatio_temporal_scaling") or (True, True, True, False)
    spatial = vae.get("spatial_compression_ratio") or (vae.get("patch_size") or 4) * 2 ** sum(scaling)
    temporal = vae.get("temporal_compression_ratio") or (vae.get("patch_size_t") or 1) * 2 ** sum(scaling)
    return int(spatial), int(temporal)


def options(model, request) -> dict[str, Any]:
    """The stock call's extra arguments: the request's (when it carries them), else the model's defaults."""
    defaults = getattr(model.source, "defaults", None) or {}
    out = {}
    for name, stock in OPTIONS.items():
        value = getattr(request, name, None)
        out[name] = value if value is not None else defaults.get(name, stock)
    return out


# -- steps of the run ------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Grid:
    """The latent grid of a request: latent frames, rows, columns, the transformer's patch, the VAE's ratios."""

    frames: int
    height: int
    width: int
    patch: int
    patch_t: int
    spatial: int
    temporal: int
    frame_rate: float

    @classmethod
    def of(cls, request, vae, transformer) -> Grid:
        s, t = vae.spatial_compression_ratio, vae.temporal_compression_ratio
        return cls((request.num_frames - 1) // t + 1, request.height // s, request.width // s,
                   transformer.config.patch_size, transformer.config.patch_size_t, s, t, request.fps)

    def pack(self, x):
        """(B, C, F, H, W) -> (B, tokens, features), as LTXPipeline._pack_latents."""
        b, _, f, h, w = x.shape
        p, pt = self.patch, self.patch_t
        x = x.reshape(b, -1, f // pt, pt, h // p, p, w // p, p)
        return x.permute(0, 2, 4, 6, 1, 3, 5, 7).flatten(4, 7).flatten(1, 3)

    def unpack(self, x):
        """The inverse, as LTXPipeline._unpack_latents."""
        p, pt = self.patch, self.patch_t
        x = x.reshape(x.size(0), self.frames, self.height, self.width, -1, pt, p, p)
        return x.permute(0, 4, 1, 5, 2, 6, 3, 7).flatten(6, 7).flatten(4, 5).flatten(2, 3)


@dataclasses.dataclass
class Prepared:
    """Packed latents, the per-token conditioning mask (image-to-video), LTXConditionPipeline's
    ``init_latents`` and video coordinates."""

    latents: Any
    mask: Any = None
    init: Any = None
    coords: Any = None


def encode_prompt(model, prompt: str, tokens: int, warnings: list[str], condition: bool = False):
    """LTXPipeline._get_t5_prompt_embeds: padded ids through the encoder (LTXConditionPipeline's with their
    attention mask, LTXPipeline's without), and the mask for the transformer."""
    tok, encoder = model.components["tokenizer"], model.components["text_encoder"]
    inputs = tok([prompt], padding="max_length", max_length=tokens, truncation=True, add_special_tokens=True,
                 return_tensors="pt")
    full = tok([prompt], add_special_tokens=True).input_ids[0]
    if len(full) > tokens:
        warnings.append(f"prompt truncated to {tokens} tokens; dropped: {tok.decode(full[tokens - 1:-1])!r}")
    mask = inputs.attention_mask.bool()
    embeds = encoder(inputs.input_ids.to(encoder.device), attention_mask=mask.to(encoder.device) if condition else None)[0]
    device = model.plan.device
    return embeds.to(dtype=encoder.dtype, device=device), mask.to(device)


def stats(vae, like):
    """The VAE's (latents_mean, latents_std) shaped for (B, C, F, H, W) latents like ``like``."""
    return tuple(t.view(1, -1, 1, 1, 1).to(like.device, like.dtype) for t in (vae.latents_mean, vae.latents_std))


def normalize(vae, latents):
    mean, std = stats(vae, latents)
    return (latents - mean) / std


def _pixels(vae, image, request, device, dtype):
    from diffusers.video_processor import VideoProcessor

    pixels = VideoProcessor(vae_scale_factor=vae.spatial_compression_ratio).preprocess(image, request.height, request.width)
    return pixels.unsqueeze(2).to(device, dtype)


def classic_latents(vae, grid: Grid, image, request, generator, device) -> Prepared:
    """LTXPipeline / LTXImageToVideoPipeline.prepare_latents: the image's latents (sampled with the generator)
    first, then the noise; the first latent frame is the image's."""
    import torch
    from diffusers.utils.torch_utils import randn_tensor

    shape = (1, vae.config.latent_channels, grid.frames, grid.height, grid.width)
    if image is None:
        return Prepared(grid.pack(randn_tensor(shape, generator=generator, device=torch.device(device), dtype=torch.float32)))
    encoded = vae.encode(_pixels(vae, image, request, device, vae.dtype)).latent_dist.sample(generator)
    init = normalize(vae, encoded.to(torch.float32)).repeat(1, 1, grid.frames, 1, 1)
    mask = torch.zeros((1, 1, *shape[2:]), device=device, dtype=torch.float32)
    mask[:, :, 0] = 1.0
    noise = randn_tensor(shape, generator=generator, device=torch.device(device), dtype=torch.float32)
    latents = init * mask + noise * (1 - mask)
    return Prepared(grid.pack(latents), mask=grid.pack(mask).squeeze(-1))


def condition_latents(vae, grid: Grid, image, request, generator, device) -> Prepared:
    """LTXConditionPipeline.prepare_latents with no condition or one image at frame 0, strength 1: noise
    first, then the image's latents (sampled with the generator) replace the first latent frame."""
    import torch
    from diffusers.utils.torch_utils import randn_tensor

    shape = (1, vae.config.latent_channels, grid.frames, grid.height, grid.width)
    latents = randn_tensor(shape, generator=generator, device=torch.device(device), dtype=torch.float32)
    mask = None
    if image is not None:
        encoded = vae.encode(_pixels(vae, image, request, device, vae.dtype)).latent_dist.sample(generator)
        cond = normalize(vae, encoded).to(device, dtype=torch.float32)
        n = cond.size(2)
        latents[:, :, :n] = torch.lerp(latents[:, :, :n], cond, 1.0)
        frame_mask = torch.zeros((1, grid.frames), device=device, dtype=torch.float32)
        frame_mask[:, :n] = 1.0
        mask = frame_mask.gather(1, grid_ids(grid, device)[:, 0])
    ids = grid_ids(grid, device) * torch.tensor([grid.temporal, grid.spatial, grid.spatial], device=device)[None, :, None]
    ids[:, 0] = (ids[:, 0] + 1 - grid.temporal).clamp(min=0)
    coords = ids.float()
    coords[:, 0] = coords[:, 0] * (1.0 / grid.frame_rate)
    packed = grid.pack(latents)
    return Prepared(packed, mask=mask, init=packed.clone() if image is not None else None, coords=coords)


def grid_ids(grid: Grid, device):
    """LTXConditionPipeline._prepare_video_ids: each token's (frame, row, column) latent index."""
    import torch

    axes = (torch.arange(0, grid.frames, grid.patch_t, device=device), torch.arange(0, grid.height, grid.patch, device=device),
            torch.arange(0, grid.width, grid.patch, device=device))
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=0).unsqueeze(0).reshape(1, 3, -1)


def classic_timesteps(scheduler, steps: int, grid: Grid, device) -> None:
    """LTXPipeline: linear sigmas, shifted by the sequence length when the scheduler shifts dynamically."""
    import numpy as np
    from diffusers.pipelines.ltx.pipeline_ltx import calculate_shift

    cfg = scheduler.config
    mu = calculate_shift(grid.frames * grid.height * grid.width, cfg.get("base_image_seq_len", 256),
                         cfg.get("max_image_seq_len", 4096), cfg.get("base_shift", 0.5), cfg.get("max_shift", 1.15))
    scheduler.set_timesteps(sigmas=np.linspace(1.0, 1 / steps, steps), device=device, mu=mu)


def condition_timesteps(scheduler, steps: int, custom, device, warnings: list[str]) -> None:
    """LTXConditionPipeline: the model's custom timesteps when they are for ``steps`` steps, else LTX's
    linear-quadratic schedule (the sigmas passed too, computed as the scheduler would, without its warning)."""
    import numpy as np
    from diffusers.pipelines.ltx.pipeline_ltx_condition import linear_quadratic_schedule

    if custom and len(custom) != steps:
        warnings.append(f"this model's custom timesteps are for {len(custom)} steps; {steps} steps use LTX's "
                        "default schedule")
        custom = None
    timesteps = np.array(custom if custom else linear_quadratic_schedule(steps) * 1000).astype(np.float32)
    scheduler.set_timesteps(sigmas=timesteps / scheduler.config.num_train_timesteps, timesteps=timesteps, device=device)


def _guided(noise, request, opts):
    """Classifier-free guidance on a (uncond, cond) batch, with the guidance rescale when set."""
    from diffusers.pipelines.ltx.pipeline_ltx import rescale_noise_cfg

    uncond, cond = noise.chunk(2)
    guided = uncond + request.guidance_scale * (cond - uncond)
    return rescale_noise_cfg(guided, cond, guidance_rescale=opts["guidance_rescale"]) if opts["guidance_rescale"] > 0 else guided


def classic_step(transformer, scheduler, grid: Grid, prep: Prepared, embeds, mask, request, opts, generator):
    """One LTXPipeline (LTXImageToVideoPipeline with an image) step: (t, packed latents) -> packed latents."""
    import torch

    cfg = embeds.shape[0] == 2
    cond_mask = None if prep.mask is None else torch.cat([prep.mask] * embeds.shape[0])
    rope = (grid.temporal / grid.frame_rate, grid.spatial, grid.spatial)

    def step(t, latents):
        x = (torch.cat([latents] * 2) if cfg else latents).to(embeds.dtype)
        timestep = t.expand(x.shape[0])
        if cond_mask is not None:
            timestep = timestep.unsqueeze(-1) * (1 - cond_mask)
        noise = transformer(hidden_states=x, encoder_hidden_states=embeds, timestep=timestep, encoder_attention_mask=mask,
                            num_frames=grid.frames, height=grid.height, width=grid.width, rope_interpolation_scale=rope,
                            return_dict=False)[0].float()
        if cfg:
            noise = _guided(noise, request, opts)
        if cond_mask is None:
            return scheduler.step(noise, t, latents, return_dict=False)[0]
        noise, latents = grid.unpack(noise), grid.unpack(latents)  # the image's frame is never stepped
        stepped = scheduler.step(noise[:, :, 1:], t, latents[:, :, 1:], return_dict=False)[0]
        return grid.pack(torch.cat([latents[:, :, :1], stepped], dim=2))

    return step


def condition_step(transformer, scheduler, grid: Grid, prep: Prepared, embeds, mask, request, opts, generator):
    """One LTXConditionPipeline step: noise on the conditioning tokens, per-token timesteps, conditioned
    tokens kept."""
    import torch
    from diffusers import LTXConditionPipeline

    cfg = embeds.shape[0] == 2
    coords = torch.cat([prep.coords] * embeds.shape[0])
    cond_mask = None if prep.mask is None else torch.cat([prep.mask] * embeds.shape[0])
    noise_scale = opts["image_cond_noise_scale"]

    def step(t, latents):
        if noise_scale > 0 and prep.init is not None:
            latents = LTXConditionPipeline.add_noise_to_image_conditioning_latents(
                t / 1000.0, prep.init, latents, noise_scale, prep.mask, generator)
        x = (torch.cat([latents] * 2) if cfg else latents).to(embeds.dtype)
        timestep = t.expand(x.shape[0]).unsqueeze(-1).float()
        if cond_mask is not None:
            timestep = torch.min(timestep, (1 - cond_mask) * 1000.0)
        noise = transformer(hidden_states=x, encoder_hidden_states=embeds, timestep=timestep, encoder_attention_mask=mask,
                            video_coords=coords, return_dict=False)[0]
        if cfg:
            noise, timestep = _guided(noise, request, opts), timestep.chunk(2)[0]
        denoised = scheduler.step(-noise, t, latents, per_token_timesteps=timestep, return_dict=False)[0]
        if prep.mask is None:
            return denoised
        return torch.where((t / 1000 - 1e-6 < (1.0 - prep.mask)).unsqueeze(-1), denoised, latents)

    return step


def decode(vae, latents, dtype, opts, generator, seed: int, device):
    """Denormalise, cast to the text embeddings' ``dtype`` as stock does, mix in the decode noise at the decode
    timestep (timestep-conditioned VAEs), decode with torch's global RNG seeded by ``seed`` (the 0.9.1 decoder's
    noise injection) and restored afterwards."""
    import torch
    from diffusers.utils.torch_utils import randn_tensor
    from diffusers.video_processor import VideoProcessor

    mean, std = stats(vae, latents)
    latents = (latents * std / vae.config.scaling_factor + mean).to(dtype)
    timestep = None
    if vae.config.timestep_conditioning:
        noise = randn_tensor(latents.shape, generator=generator, device=torch.device(device), dtype=latents.dtype)
        scale = opts["decode_noise_scale"] if opts["decode_noise_scale"] is not None else opts["decode_timestep"]
        timestep = torch.tensor([opts["decode_timestep"]], device=device, dtype=latents.dtype)
        scale = torch.tensor([scale], device=device, dtype=latents.dtype)[:, None, None, None, None]
        latents = (1 - scale) * latents + scale * noise
    cuda = torch.device(device).type == "cuda"
    index = torch.device(device).index if cuda else None
    with torch.random.fork_rng(devices=[torch.cuda.current_device() if index is None else index] if cuda else []):
        torch.random.default_generator.manual_seed(seed)
        if cuda:
            torch.cuda.manual_seed(seed)
        video = vae.decode(latents.to(vae.device, vae.dtype), timestep, return_dict=False)[0]
    processor = VideoProcessor(vae_scale_factor=vae.spatial_compression_ratio)
    return processor.postprocess_video(video, output_type="np")[0]
