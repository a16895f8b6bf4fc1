"""LTX-Video 0.9.x (``LTXPipeline``, ``LTXImageToVideoPipeline``, ``LTXConditionPipeline``): T5 text encoder, LTX
transformer, the LTX video VAE (32x spatial, 8x temporal compression).

t2v's own loop, numbered like the stock pipelines' ``__call__``, so a seed gives their frames. A folder naming
``LTXPipeline`` / ``LTXImageToVideoPipeline`` (0.9.0 - 0.9.5) runs as ``LTXPipeline``, and with an image as
``LTXImageToVideoPipeline`` (the image's latent frame is never stepped); ``LTXConditionPipeline`` (0.9.7, 0.9.8)
runs as that pipeline with no condition, or one image at frame 0, strength 1 (its conditioning noise, per-token
timesteps and the distilled models' custom timesteps included), and with an input video as that pipeline's
``latents`` + ``denoise_strength`` (video-to-video: the encoded clip noised to the strength's sigma). The loop holds packed latents; previews and
decoding unpack them. Decoding adds the VAE's timestep conditioning (``decode_timestep``, ``decode_noise_scale``;
the noise drawn from the request's generator as stock does). The 0.9.1 decoder also injects noise from torch's
global RNG, which stock leaves unseeded: t2v seeds it with the request's seed inside ``fork_rng``.

Not run: several or video conditions, other frames or strengths, and the latent upscaler (``LTXLatentUpsamplePipeline``): inputs a request does not carry, a second model and pass.
The low memory plan decodes with the VAE's spatial tiling and frame-wise decoding (frames change above 2 latent
frames or 512 px, as with Wan's tiling).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from t2v.sampling import promptcache
from t2v.sampling.base import EngineRun
from t2v.sampling.offload import resident
from t2v.sampling.schedulers import make_scheduler
from t2v.sampling import v2v
from t2v.errors import ModelUnavailable
from t2v.families.base import Component, RunContext, Rules, read_index
from t2v.families.common import GroupOffload, free_text_encoders, scheduler_min_steps
from t2v.families.lora import DiffusersLora
from t2v.families.dryrun import measured, meta_video, spatial_preview
from t2v.models.catalog import config
from t2v.sampling.loop import Checkpoints, LoopState, denoise
from t2v.families.ltx_steps import (
    Grid, Prepared, classic_latents, classic_step, classic_timesteps, condition_latents, condition_step, condition_timesteps,
    condition_v2v, decode, decode_plan,
    encode_prompt, stats)
from t2v.models.spec import ModelSpec
from t2v.models.hub.ltx import CARD, CONDITION, DISTILLED_TIMESTEPS, NEGATIVE_PROMPT, UPSAMPLER  # noqa: F401  (named here too)
from t2v.planner.memory import meta_cost
from t2v.planner.precision import meta_kwargs

logger = logging.getLogger(__name__)

TEXT_TOKENS = {False: 128, True: 256}  # max_sequence_length of LTXPipeline / LTXConditionPipeline
# What a model's defaults (ModelSpec / t2v.json) may set beyond the request fields, with the stock defaults.
OPTIONS = {"decode_timestep": 0.0, "decode_noise_scale": None, "timesteps": None, "image_cond_noise_scale": 0.15,
           "guidance_rescale": 0.0}




class LTXFamily(GroupOffload, DiffusersLora):
    fits_reference = True  # t2v.planner.memory: text tokens in every denoiser call
    card = CARD
    components = (
        Component("tokenizer", ("T5TokenizerFast", "T5Tokenizer", "AutoTokenizer", "ByT5Tokenizer"), module=False, prompt=True),
        Component("text_encoder", ("T5EncoderModel",), weight_stem="model", prompt=True),
        Component("transformer", ("LTXVideoTransformer3DModel",)),
        Component("vae", ("AutoencoderKLLTXVideo",)),
        Component("scheduler", ("FlowMatchEulerDiscreteScheduler",), module=False),
    )
    denoiser = "transformer"
    caches = ("fbc", "taylorseer", "magcache", "pab", "fastercache")  # t2v.sampling.stepcache
    lora_loader = "LTXVideoLoraLoaderMixin"

    # -- rules -----------------------------------------------------------------------------------------
    def rules(self, path: Path | None) -> Rules:
        if path is None:
            return Rules(size_multiple=32, frame_step=8, text_tokens=TEXT_TOKENS[False], modes=self.modes,
                         schedulers=("model",), min_steps=scheduler_min_steps(None))
        spatial, temporal = _ratios(config(path, "vae"))
        tr = config(path, "transformer")
        return Rules(size_multiple=spatial * (tr.get("patch_size") or 1), frame_step=temporal * (tr.get("patch_size_t") or 1),
                     text_tokens=TEXT_TOKENS[_is_condition(path)], modes=self.modes, schedulers=("model",),
                     min_steps=scheduler_min_steps(path))

    def check_index(self, path: Path, index: dict[str, Any]) -> None:
        if index.get("_class_name") == UPSAMPLER:
            raise ModelUnavailable(f"{path} is LTX-Video's latent upscaler ({UPSAMPLER}), a second stage that refines "
                                   "another run's latents; t2v does not run it: use an LTX-Video model")
        super().check_index(path, index)

    # -- running ---------------------------------------------------------------------------------------
    def sample(self, model, request, ctx: RunContext) -> EngineRun:
        import torch

        c, memory, device = model.components, ctx.memory, model.plan.device
        path = Path(model.source.path)
        condition, opts = _is_condition(path), options(model, request)
        transformer, vae = c["transformer"], c["vae"]
        grid = Grid.of(request, vae, transformer)

        # 1. Encode the prompt (and the negative prompt, for classifier-free guidance), as two calls like stock.
        ctx.on_stage("encode_prompt")
        cfg, tokens = request.guidance_scale > 1.0, TEXT_TOKENS[condition]
        def texts():
            with resident(c["text_encoder"], device, memory.offload):
                out, out_mask = encode_prompt(model, request.prompt, tokens, ctx.warnings, condition)
                if cfg:
                    negative, negative_mask = encode_prompt(model, request.negative_prompt or "", tokens, [], condition)
                    out, out_mask = torch.cat([negative, out]), torch.cat([negative_mask, out_mask])
                return out, out_mask

        embeds, mask = promptcache.encoded(model, ctx.warnings, texts, prompt=request.prompt, tokens=tokens,
                                           condition=condition, negative=(request.negative_prompt or "") if cfg else None)
        free_text_encoders(model, memory)

        # 2. Noise (fp32 from a CPU generator), the image's latents, timesteps: each pipeline's own order.
        generator = torch.Generator("cpu").manual_seed(request.seed)
        decode_plan(vae, memory)  # tiled and frame-wise under the low plan
        scheduler = make_scheduler(request.scheduler, model.scheduler_config)
        if ctx.video is None:
            with resident(vae, device, memory.offload and ctx.image is not None):
                prep = (condition_latents if condition else classic_latents)(vae, grid, ctx.image, request, generator,
                                                                              device)
        if condition:
            condition_timesteps(scheduler, request.num_inference_steps, opts["timesteps"], device, ctx.warnings)
        else:
            classic_timesteps(scheduler, request.num_inference_steps, grid, device)
        skip = 0
        if ctx.video is not None:  # video-to-video: the input noised to the strength's step
            kept = v2v.strength_timesteps(scheduler, request.num_inference_steps, request.strength)
            skip = len(scheduler.timesteps) - len(kept)
            with resident(vae, device, memory.offload):
                encoded = encode_video(vae, ctx.video.frames, device)
            if condition:  # as LTXConditionPipeline(latents=encoded, denoise_strength=strength)
                prep = condition_v2v(grid, encoded, scheduler, kept, generator, device)
            else:
                prep = Prepared(v2v.noised(scheduler, grid.pack(encoded), kept, generator))
        state = LoopState(prep.latents)
        checkpoints = Checkpoints(ctx, model, request, scheduler, generator, ctx.image, ctx.video)
        start = checkpoints.resume(state, device)
        timesteps = scheduler.timesteps[skip:]

        # 3. Denoise; progress and previews see unpacked latents.
        ctx.on_stage("denoise", start, len(timesteps))
        model_step = (condition_step if condition else classic_step)(
            transformer, scheduler, grid, prep, embeds, mask, request, opts, generator)

        def step(i: int, s: LoopState) -> None:
            s.latents = model_step(timesteps[i], s.latents)

        loop_ctx = dataclasses.replace(ctx, on_step=lambda i, n, latents: ctx.on_step(i, n, grid.unpack(latents)))
        with resident(transformer, device, memory.offload):
            denoise(loop_ctx, len(timesteps), state, step, checkpoints, start=start)

        # 4. Decode at the VAE's decode timestep, with the decode noise drawn from the generator.
        ctx.on_stage("decode")
        with resident(vae, device, memory.offload):
            frames = decode(vae, grid.unpack(state.latents), embeds.dtype, opts, generator, request.seed, device)
        return EngineRun(frames=frames, warnings=ctx.warnings, resumed_from_step=checkpoints.resumed)

    def preview(self, model, latents):
        return spatial_preview(model, latents)

    # -- the planner's dry run ------------------------------------------------------------------------
    def measure(self, path: Path, frames: int, height: int, width: int, batch: int, chunking: bool,
                vae_chunk: int) -> dict[str, Any]:
        """One text encoding, one transformer pass over the packed tokens (conditional and unconditional in
        one batch, as stock runs them), one decode of the whole clip (the LTX VAE decodes every latent frame
        in one call, whatever ``vae_chunk``: ``vae_scales_with`` "clip"), and the image's encode."""
        import torch

        path = Path(path)
        m, (f, h, w) = meta_video(path, frames, height, width)
        tr, vae = m["transformer"], m["vae"]
        spatial, temporal = vae.spatial_compression_ratio, vae.temporal_compression_ratio
        tokens, meta = TEXT_TOKENS[_is_condition(path)], meta_kwargs()
        ids = torch.zeros(1, tokens, dtype=torch.long, device="meta")
        text_peak = meta_cost(lambda: m["text_encoder"](ids), part="text").peak
        x = torch.zeros(batch, f * h * w, tr.config.in_channels, **meta)
        embeds = torch.zeros(batch, tokens, tr.config.caption_channels, **meta)
        step = meta_cost(lambda: tr(
            hidden_states=x, encoder_hidden_states=embeds, timestep=torch.zeros(batch, **meta),
            encoder_attention_mask=torch.ones(batch, tokens, **meta), num_frames=f, height=h, width=w,
            rope_interpolation_scale=(temporal / 25, spatial, spatial), return_dict=False))
        z = torch.zeros(1, vae.config.latent_channels, f, h, w, **meta)
        temb = torch.zeros(1, **meta) if vae.config.timestep_conditioning else None
        decode = meta_cost(lambda: vae.decode(z, temb), part="vae")
        vae_peak = decode.peak
        image = torch.zeros(1, 3, 1, height, width, **meta)
        vae_peak = max(vae_peak, meta_cost(lambda: vae.encode(image), part="vae").peak)
        latent_bytes = x[0].numel() * 4
        return measured(m, acts={"text": text_peak, "transformer": step.peak, "vae": vae_peak},
                        roles={"text": ["text_encoder"], "denoise": ["transformer"], "vae": ["vae"]},
                        step=step, decode=decode, passes=1,  # one pass of the whole guidance batch
                        latents_bytes=latent_bytes * (1 + batch),  # the latents + the model's (batched) input
                        frames=frames, height=height, width=width, vae_scales_with="clip")

    def reference_shape(self, path: Path) -> tuple[int, int]:
        """17 frames (3 latent frames) at 64 px (2 latent rows)."""
        return 2 * self.frames_per_latent(path) + 1, 2 * self.rules(Path(path)).size_multiple

    def frames_per_latent(self, path: Path) -> int:
        return _ratios(config(Path(path), "vae"))[1]


# -- folder facts ----------------------------------------------------------------------------------------

def encode_video(vae, frames, device):
    """(F, H, W, 3) uint8 frames through the VAE encoder (its mode), normalised as decode denormalises:
    fp32 (1, C, F', h, w)."""
    import torch

    encoded = vae.encode(v2v.pixels(frames, vae.device, vae.dtype)).latent_dist.mode().to(device, torch.float32)
    mean, std = stats(vae, encoded)
    return (encoded - mean) * vae.config.scaling_factor / std


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
