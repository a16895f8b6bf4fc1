"""ModelScope / Zeroscope (``TextToVideoSDPipeline``): UNet3D + SD 1.x VAE + CLIP text encoder.

t2v's own loop does what diffusers' ``TextToVideoSDPipeline.__call__`` does (prompt encoding, classifier-free
guidance, scheduler steps on per-frame latents, VAE decode) and adds per-step progress, cancellation between
steps, and resumable latent checkpoints.
"""

from __future__ import annotations

import inspect
import json
import logging
from pathlib import Path
from typing import Any

from t2v.sampling import stepcache, v2v
from t2v.sampling.base import EngineRun
from t2v.sampling.loop import Checkpoints, LoopState, denoise
from t2v.sampling.offload import resident
from t2v.sampling.schedulers import make_scheduler
from t2v.sampling.text import encode_prompt
from t2v.sampling.vae import decode_chunk, decode_latents, encode_frames, latent_preview
from t2v.families.base import Component, Family, Rules, RunContext
from t2v.families.prompts import guided_embeddings
from t2v.models.catalog import config
from t2v.runtime import current
from t2v.models.hub.modelscope import CARD, DEFAULT_NEGATIVE_PROMPT  # noqa: F401  (named here too)
from t2v.planner.memory import meta_cost
from t2v.planner.precision import cast, meta_kwargs
from t2v.models.temporal import apply_temporal_config, folder_frame_limit

logger = logging.getLogger(__name__)

SCHEDULER_CLASSES = ("DDIMScheduler", "DPMSolverMultistepScheduler", "EulerDiscreteScheduler", "UniPCMultistepScheduler",
                     "PNDMScheduler", "LMSDiscreteScheduler", "EulerAncestralDiscreteScheduler")
CLIP_COMPONENTS = (
    Component("tokenizer", ("CLIPTokenizer", "CLIPTokenizerFast"), module=False, prompt=True),
    Component("text_encoder", ("CLIPTextModel",), weight_stem="model", prompt=True),
    Component("vae", ("AutoencoderKL",)),
    Component("scheduler", SCHEDULER_CLASSES, module=False),
)


def vae_scale(vae_config) -> int:
    return 2 ** (len(vae_config.block_out_channels) - 1)


class ModelScopeFamily(Family):
    card = CARD
    components = (*CLIP_COMPONENTS, Component("unet", ("UNet3DConditionModel",)))
    caches = ("deepcache",)

    def rules(self, path: Path | None) -> Rules:
        return Rules(size_multiple=8, max_frames=folder_frame_limit(path) if path else None, modes=self.modes)

    def prepare(self, components: dict[str, Any]) -> dict[str, Any]:
        components["unet"] = apply_temporal_config(components["unet"])
        return components

    def preview(self, model, latents):
        return latent_preview(latents, vae_scale(model.components["vae"].config))

    # -- the run ---------------------------------------------------------------------------------------
    def sample(self, model, request, ctx: RunContext) -> EngineRun:
        import torch

        memory, c = ctx.memory, model.components
        device = model.plan.device
        ctx.on_stage("encode_prompt")
        cfg = request.guidance_scale > 1.0
        embeds = guided_embeddings(model, request, ctx, lambda text, said: encode_prompt(model, text, said), guided=cfg)
        unet = c["unet"]
        if memory.uses_forward_chunking(device):
            unet.enable_forward_chunking(chunk_size=1, dim=1)
        else:
            unet.disable_forward_chunking()

        scheduler = make_scheduler(request.scheduler, model.scheduler_config)
        scheduler.set_timesteps(request.num_inference_steps, device=device)
        timesteps = scheduler.timesteps
        scale = vae_scale(c["vae"].config)
        shape = (1, unet.config.in_channels, request.num_frames, request.height // scale, request.width // scale)
        # Noise comes from a CPU generator in fp32 so a seed means the same clip on every device and dtype.
        generator = torch.Generator("cpu").manual_seed(request.seed)
        if ctx.video is not None:  # video-to-video: the input's latents noised to the strength's timestep
            timesteps = v2v.strength_timesteps(scheduler, request.num_inference_steps, request.strength)
            with resident(c["vae"], device, memory.offload):
                init = encode_frames(c["vae"], ctx.video.frames,
                                     chunk=decode_chunk(memory.vae_chunk, request.num_frames, device))
            latents = v2v.noised(scheduler, init.to(device, embeds.dtype), timesteps, generator)
        else:
            # drawn in the run's dtype on the CPU generator, as the stock pipeline's randn_tensor draws it (an fp16
            # draw is not the fp32 one cast on every torch build)
            latents = torch.randn(shape, generator=generator, dtype=embeds.dtype).to(device)
            latents = latents * scheduler.init_noise_sigma
        step_kwargs = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}

        state = LoopState(latents)  # extra: a step cache's kept features (checkpointed)
        checkpoints = Checkpoints(ctx, model, request, scheduler, generator, video=ctx.video)
        start = checkpoints.resume(state, device, embeds.dtype)
        total = len(timesteps)

        def step(i: int, s: LoopState) -> None:
            stepcache.at_step(unet, i, s.extra)
            s.latents = self._step(unet, scheduler, s.latents, timesteps[i], embeds, request.guidance_scale, cfg,
                                   step_kwargs)

        ctx.on_stage("denoise", start, total)
        with resident(unet, device, memory.offload):
            denoise(ctx, total, state, step, checkpoints, start=start)
        latents = state.latents
        ctx.on_stage("decode")
        with resident(c["vae"], device, memory.offload):
            chunk = decode_chunk(memory.vae_chunk, request.num_frames, str(latents.device))
            frames = decode_latents(c["vae"], latents, chunk=chunk)
        return EngineRun(frames=frames, warnings=ctx.warnings, resumed_from_step=checkpoints.resumed)

    @staticmethod
    def _step(unet, scheduler, latents, t, embeds, guidance: float, cfg: bool, step_kwargs):
        import torch

        with torch.inference_mode():
            model_in = torch.cat([latents] * 2) if cfg else latents
            model_in = scheduler.scale_model_input(model_in, t)
            noise = unet(model_in, t, encoder_hidden_states=embeds, return_dict=False)[0]
            if cfg:
                uncond, text = noise.chunk(2)
                noise = uncond + guidance * (text - uncond)
            # Schedulers work on images: fold frames into the batch, as the diffusers pipeline does.
            b, c, f, h, w = latents.shape
            flat = latents.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
            noise = noise.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
            flat = scheduler.step(noise, t, flat, **step_kwargs).prev_sample
            return flat[None].reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)

    # -- the planner's dry run ------------------------------------------------------------------------
    def meta_modules(self, path: Path):
        """UNet3D, VAE and CLIP text encoder built from the folder's configs on the meta device."""
        import torch
        from diffusers import AutoencoderKL, UNet3DConditionModel
        from transformers import CLIPTextConfig, CLIPTextModel

        with torch.device("meta"):
            unet = apply_temporal_config(UNet3DConditionModel.from_config(json.loads((path / "unet" / "config.json").read_text())))
            vae = AutoencoderKL.from_config(json.loads((path / "vae" / "config.json").read_text()))
            text = CLIPTextModel(CLIPTextConfig.from_pretrained(path / "text_encoder"))
        return unet.eval(), vae.eval(), text.eval()

    def measure(self, path: Path, frames: int, height: int, width: int, batch: int, chunking: bool,
                vae_chunk: int) -> dict[str, Any]:
        unet, vae, text = meta_modules_cached(self, path)
        return measure_unet_video({"unet": unet, "vae": vae, "text_encoder": text}, frames, height, width, batch,
                                  chunking, vae_chunk)

    def reference_shape(self, path: Path) -> tuple[int, int]:
        """8 frames (or the folder's frame limit) at the smallest side every down-sampling level can halve. Read
        from the configs: with the dry run cached on disk, planning then builds no meta modules (a full-size
        UNet3D takes seconds to build, even on the meta device)."""
        return min(8, folder_frame_limit(path) or 8), reference_side(path, lambda: meta_modules_cached(self, path)[:2])


def reference_side(path: Path, built) -> int:
    """The smallest side (at least 64) every down-sampling level of a UNet + per-frame VAE folder can halve,
    from the unet and vae configs; ``built()`` gives the (unet, vae) modules when a config leaves the levels
    to the class's defaults."""
    levels = [config(path, name).get("block_out_channels") for name in ("unet", "vae")]
    if not all(levels):
        levels = [m.config.block_out_channels for m in built()]
    return max(64, 2 ** (len(levels[1]) - 1) * 2 ** (len(levels[0]) - 1))




def meta_modules_cached(family: ModelScopeFamily, path: Path):
    """:meth:`ModelScopeFamily.meta_modules`, built once per folder (the planner's dry runs share them)."""
    key = (family.name, str(path))
    meta = current().cache("meta-modules", lambda runtime: {})
    if key not in meta:
        if len(meta) >= 4:
            meta.pop(next(iter(meta)))
        meta[key] = family.meta_modules(Path(path))
    return meta[key]


def measure_unet_video(m: dict[str, Any], frames: int, height: int, width: int, batch: int, chunking: bool,
                       vae_chunk: int, *, embeds_per_frame: bool = False) -> dict[str, Any]:
    """The planner's dry run of a video UNet family on meta modules ``m`` (``unet``, ``vae``, ``text_encoder``):
    the text encoder, one guided step over the clip, one VAE decode of ``vae_chunk`` frames. With
    ``embeds_per_frame`` (AnimateDiff's motion UNet folds frames into the batch) the prompt embeddings are
    repeated per frame."""
    import torch

    cast(m)
    unet, vae, text = m["unet"], m["vae"], m["text_encoder"]
    scale = vae_scale(vae.config)
    h, w, seq = height // scale, width // scale, text.config.max_position_embeddings
    meta = meta_kwargs()
    text_peak = meta_cost(lambda: text(torch.zeros(1 if embeds_per_frame else batch, seq, dtype=torch.long,
                                                   device="meta")), part="text").peak
    if chunking:
        unet.enable_forward_chunking(chunk_size=1, dim=1)
    else:
        unet.disable_forward_chunking()
    latents = torch.zeros(batch, unet.config.in_channels, frames, h, w, **meta)
    embeds = torch.zeros(batch * frames if embeds_per_frame else batch, seq, unet.config.cross_attention_dim, **meta)
    step = meta_cost(lambda: unet(latents, torch.tensor(1, device="meta"), encoder_hidden_states=embeds))
    z = torch.zeros(vae_chunk, vae.config.latent_channels, h, w, **meta)
    chunk = meta_cost(lambda: vae.decode(z), part="vae")
    calls = -(-frames // vae_chunk)
    return {
        "params": {n: sum(p.numel() for p in mod.parameters()) for n, mod in m.items()},
        "acts": {"text": text_peak, "unet": step.peak, "vae": chunk.peak},
        "roles": {"text": ["text_encoder"], "denoise": ["unet"], "vae": ["vae"]},
        "step_flops": step.flops,
        "decode_flops": chunk.flops * calls,
        "step_ops": step.ops,
        "decode_ops": chunk.ops * calls,
        "latents_bytes": batch * unet.config.in_channels * frames * h * w * 4,
        "shape": (frames, height, width, vae_chunk),
    }
