"""SANA-Video (``SanaVideoPipeline``, ``SanaImageToVideoPipeline``): a 2B linear-attention diffusion transformer
that reads the prompt through Gemma 2 and decodes with Wan 2.1's VAE (480p) or LTX-2's (720p).

t2v's own loop, numbered like the stock ``__call__``, so a seed gives its frames: the prompt encoded by the stock
pipeline's own encoder (Gemma's hidden states behind the pipeline's prompt-enhancing instruction, the first token
and the last 299 kept; the negative prompt, empty unless given, without the instruction), fp32 noise from a CPU
generator, the folder's scheduler (DPM-Solver++ with flow shift), the unconditional and conditional passes batched
as stock batches them, then the VAE with its latent statistics. Per-step progress and previews, cancel between
steps without decoding, checkpoints that resume to the same frames (the multistep solver's history included), the
planner's dry run.

Image-to-video (``--image``, from the same folder): the image, resized to the request's size, through the VAE
encoder (its mode) and the latent statistics is the first latent frame; its timestep is 0 in every pass and the
scheduler never steps it, as ``SanaImageToVideoPipeline`` does.

t2v makes the size asked. The stock call's resolution binning (snap to the nearest size of its aspect-ratio table,
resize the frames back) is not applied: the sizes the models were trained at are the table's (832x480, 480x832,
1280x704, ...). LoRA: diffusers' ``SanaLoraLoaderMixin`` layout. Step caches: none of diffusers' hooks knows this
transformer's blocks, so a cache is refused by name.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from t2v.families.base import Component, RunContext, Rules
from t2v.families.common import GroupOffload, free_text_encoders
from t2v.families.dryrun import measured, spatial_preview, text_peak
from t2v.families.lora import DiffusersLora
from t2v.families.meta import meta_modules
from t2v.models.catalog import config
from t2v.models.hub.sana_video import CARD
from t2v.planner.memory import meta_cost
from t2v.planner.precision import cast, meta_kwargs
from t2v.sampling import promptcache
from t2v.sampling.base import EngineRun
from t2v.sampling.loop import Checkpoints, LoopState, denoise
from t2v.sampling.offload import resident
from t2v.sampling.schedulers import make_scheduler
from t2v.sampling.vae import video_uint8

TEXT_TOKENS = 300  # the stock call's max_sequence_length: the prompt's tokens the transformer reads
SIZE_MULTIPLE = 32  # the stock pipeline refuses other sizes


class SanaVideoFamily(GroupOffload, DiffusersLora):
    card = CARD
    components = (
        Component("tokenizer", ("GemmaTokenizer", "GemmaTokenizerFast"), module=False, prompt=True),
        Component("text_encoder", ("Gemma2Model",), weight_stem="model", prompt=True),
        Component("transformer", ("SanaVideoTransformer3DModel",)),
        Component("vae", ("AutoencoderKLWan", "AutoencoderKLLTX2Video")),
        Component("scheduler", ("DPMSolverMultistepScheduler", "FlowMatchEulerDiscreteScheduler",
                                "UniPCMultistepScheduler"), module=False),
    )
    denoiser = "transformer"
    caches = ()  # no step-cache hook knows SANA-Video's blocks: refused by name
    lora_loader = "SanaLoraLoaderMixin"

    def rules(self, path: Path | None) -> Rules:
        spatial, temporal, patch = scales(path) if path is not None else (8, 4, (1, 2, 2))
        rope = int(config(path, "transformer").get("rope_max_seq_len") or 1024) if path is not None else 1024
        return Rules(size_multiple=math.lcm(SIZE_MULTIPLE, spatial * int(patch[1])), frame_step=temporal * int(patch[0]),
                     max_frames=(rope - 1) * temporal + 1, text_tokens=TEXT_TOKENS, modes=self.modes,
                     schedulers=("model",))

    def sample(self, model, request, ctx: RunContext) -> EngineRun:
        import torch
        from diffusers.utils.torch_utils import randn_tensor
        from diffusers.video_processor import VideoProcessor

        c, memory, device = model.components, ctx.memory, model.plan.device
        transformer, vae = c["transformer"], c["vae"]
        dtype = transformer.dtype

        # 3. Encode the prompt (and with guidance the negative prompt, first in the batch as stock puts it).
        ctx.on_stage("encode_prompt")
        cfg = request.guidance_scale > 1.0
        negative = request.negative_prompt or ""

        def texts():
            with resident(c["text_encoder"], device, memory.offload):
                return encode(model, request.prompt, negative if cfg else None, device, ctx.warnings)

        embeds, mask = promptcache.encoded(model, ctx.warnings, texts, prompt=request.prompt, tokens=TEXT_TOKENS,
                                           negative=negative if cfg else None)
        free_text_encoders(model, memory, ("text_encoder",))

        # 4. Timesteps, 5. fp32 noise (and the image's latent frame, the first).
        scheduler = make_scheduler(request.scheduler, model.scheduler_config)
        scheduler.set_timesteps(request.num_inference_steps, device=device)
        steps = len(scheduler.timesteps)
        generator = torch.Generator("cpu").manual_seed(request.seed)
        spatial, temporal, patch = scales_of(vae, transformer)
        shape = (1, transformer.config.in_channels, (request.num_frames - 1) // temporal + 1,
                 request.height // spatial, request.width // spatial)
        state = LoopState(randn_tensor(shape, generator=generator, device=torch.device(device), dtype=torch.float32))
        given = 0 if ctx.image is None else 1  # latent frames the image gives, never stepped
        if given:
            with resident(vae, device, memory.offload):
                state.latents[:, :, :1] = image_latents(vae, ctx.image, request, device)
        checkpoints = Checkpoints(ctx, model, request, scheduler, generator, ctx.image, ctx.video)
        start = checkpoints.resume(state, device)
        ctx.on_stage("denoise", start, steps)
        step_kwargs = step_arguments(scheduler, generator)
        batch = embeds.shape[0]
        if given:  # the image's frame is at timestep 0 in every pass
            keep = torch.ones((batch, 1, shape[2] // patch[0], shape[3] // patch[1], shape[4] // patch[2]),
                              device=device)
            keep[:, :, 0] = 0.0

        # 7. Denoise: the unconditional and conditional passes in one batch.
        def step(i: int, st: LoopState) -> None:
            ts = scheduler.timesteps[i]
            x = torch.cat([st.latents] * batch) if batch > 1 else st.latents
            timestep = ts.expand(batch) if not given else ts.expand(keep.shape) * keep
            out = transformer(x.to(dtype), encoder_hidden_states=embeds.to(dtype), encoder_attention_mask=mask,
                              timestep=timestep, return_dict=False)[0].float()
            if batch > 1:
                uncond, cond = out.chunk(2)
                out = uncond + request.guidance_scale * (cond - uncond)
            if transformer.config.out_channels // 2 == shape[1]:  # a learned sigma
                out = out.chunk(2, dim=1)[0]
            stepped = scheduler.step(out[:, :, given:], ts, st.latents[:, :, given:], **step_kwargs,
                                     return_dict=False)[0]
            st.latents = torch.cat([st.latents[:, :, :given], stepped], dim=2) if given else stepped

        with resident(transformer, device, memory.offload):
            denoise(ctx, steps, state, step, checkpoints, start=start)

        # 8. Decode with the VAE's latent statistics.
        ctx.on_stage("decode")
        with resident(vae, device, memory.offload):
            latents = state.latents.to(vae.device, vae.dtype)
            mean, std = latent_stats(vae, latents)
            video = vae.decode(latents / (1.0 / std) + mean, return_dict=False)[0]  # as stock computes it
        return EngineRun(frames=video_uint8(VideoProcessor(vae_scale_factor=spatial), video), warnings=ctx.warnings,
                         resumed_from_step=checkpoints.resumed)

    def preview(self, model, latents):
        return spatial_preview(model, latents)

    def guidance_passes(self, request) -> int:
        return 2 if request.guidance_scale > 1.0 else 1

    def measure(self, path: Path, frames: int, height: int, width: int, batch: int, chunking: bool,
                vae_chunk: int) -> dict[str, Any]:
        """One Gemma pass over the instruction and the prompt, one transformer pass of ``batch`` (guidance batches
        both), one decode of the whole clip."""
        import torch

        m = cast(meta_modules(str(path)))
        tr, vae, meta = m["transformer"], m["vae"], meta_kwargs()
        tr.requires_grad_(False)  # its output norm takes a parameter as an argument, which torch's module tracker
        # (under the FLOP counter) would hook as a tensor needing gradients
        spatial, temporal, _ = scales_of(vae, tr)
        f, h, w = (frames - 1) // temporal + 1, height // spatial, width // spatial
        text = text_peak(m["text_encoder"], 4 * TEXT_TOKENS)  # the instruction is about three times the prompt
        x = torch.zeros(batch, tr.config.in_channels, f, h, w, **meta)
        step = meta_cost(lambda: tr(x, encoder_hidden_states=torch.zeros(batch, TEXT_TOKENS, tr.config.caption_channels,
                                                                          **meta),
                                    timestep=torch.zeros(batch, **meta), return_dict=False))
        z = torch.zeros(1, tr.config.in_channels, f, h, w, **meta)
        decode = meta_cost(lambda: vae.decode(z), part="vae")
        latent_bytes = z.shape[1] * f * h * w * 4
        return measured(m, acts={"text": text, "transformer": step.peak, "vae": decode.peak},
                        roles={"text": ["text_encoder"], "denoise": ["transformer"], "vae": ["vae"]}, step=step,
                        decode=decode, passes=1, latents_bytes=2 * latent_bytes, frames=frames, height=height,
                        width=width, vae_scales_with="area")

    def reference_shape(self, path: Path) -> tuple[int, int]:
        spatial, temporal, patch = scales(Path(path))
        m = self.rules(Path(path)).size_multiple  # 64 px or more: LTX-2's VAE pads a 1x1 latent and fails
        return 2 * temporal * int(patch[0]) + 1, -(-64 // m) * m

    def frames_per_latent(self, path: Path) -> int:
        return scales(Path(path))[1]


def scales(path: Path) -> tuple[int, int, tuple[int, int, int]]:
    """(spatial, temporal) compression of the folder's VAE (Wan's or LTX-2's config keys) and the transformer's
    patch size, from the configs alone."""
    vae, tr = config(path, "vae"), config(path, "transformer")
    spatial = vae.get("scale_factor_spatial") or vae.get("spatial_compression_ratio") or 8
    temporal = vae.get("scale_factor_temporal") or vae.get("temporal_compression_ratio") or 4
    return int(spatial), int(temporal), tuple(int(p) for p in (tr.get("patch_size") or (1, 2, 2)))


def scales_of(vae, transformer) -> tuple[int, int, tuple[int, int, int]]:
    """The same from loaded (or meta) modules."""
    cfg = vae.config
    spatial = getattr(cfg, "scale_factor_spatial", None) or cfg.spatial_compression_ratio
    temporal = getattr(cfg, "scale_factor_temporal", None) or cfg.temporal_compression_ratio
    return int(spatial), int(temporal), tuple(int(p) for p in transformer.config.patch_size)


def latent_stats(vae, like):
    """(latents_mean, latents_std) shaped for (B, C, F, H, W) latents like ``like``: Wan's VAE keeps them in its
    config, LTX-2's in buffers; stock scales by their inverse on the way in and back on the way out."""
    import torch

    if type(vae).__name__ == "AutoencoderKLLTX2Video":
        mean, std = vae.latents_mean, vae.latents_std
    else:
        mean, std = torch.tensor(vae.config.latents_mean), torch.tensor(vae.config.latents_std)
    return mean.view(1, -1, 1, 1, 1).to(like.device, like.dtype), std.view(1, -1, 1, 1, 1).to(like.device, like.dtype)


def encode(model, prompt: str, negative: str | None, device, warnings: list[str]) -> tuple:
    """SanaVideoPipeline.encode_prompt by the stock pipeline's own code on the loaded text encoder: the embeddings
    and attention masks, [negative, prompt] with guidance (``negative`` not None), else the prompt's alone; a
    warning when the prompt is cut to the transformer's tokens."""
    import inspect

    import torch
    from diffusers import SanaVideoPipeline as Stock

    c = model.components
    instruction = inspect.signature(Stock.__call__).parameters["complex_human_instruction"].default  # the call's
    pipe = Stock(tokenizer=c["tokenizer"], text_encoder=c["text_encoder"], vae=None, transformer=None, scheduler=None)
    if len(c["tokenizer"](prompt.lower().strip()).input_ids) > TEXT_TOKENS - 1:
        warnings.append(f"prompt truncated to {TEXT_TOKENS} tokens")
    embeds, mask, neg, neg_mask = pipe.encode_prompt(prompt, negative is not None, negative_prompt=negative or "",
                                                     device=torch.device(device), max_sequence_length=TEXT_TOKENS,
                                                     complex_human_instruction=instruction)
    if negative is None:
        return embeds, mask
    return torch.cat([neg, embeds]), torch.cat([neg_mask, mask])


def image_latents(vae, image, request, device):
    """SanaImageToVideoPipeline.prepare_latents' first frame: the image resized to the request, through the VAE
    encoder (its mode), normalised with the latent statistics: fp32 (1, C, 1, h, w)."""
    import torch
    from diffusers.video_processor import VideoProcessor

    spatial = getattr(vae.config, "scale_factor_spatial", None) or vae.config.spatial_compression_ratio
    pixels = VideoProcessor(vae_scale_factor=spatial).preprocess(image, height=request.height, width=request.width)
    with torch.no_grad():
        latents = vae.encode(pixels.to(device, torch.float32).unsqueeze(2).to(vae.dtype)).latent_dist.mode()
    mean, std = latent_stats(vae, latents)
    return ((latents - mean) * (1.0 / std)).float()


def step_arguments(scheduler, generator) -> dict[str, Any]:
    """What the stock call's prepare_extra_step_kwargs passes the scheduler's step: the generator where it takes
    one (eta is 0, which the stock call passes only to schedulers that take it)."""
    import inspect

    params = inspect.signature(scheduler.step).parameters
    return {**({"generator": generator} if "generator" in params else {}), **({"eta": 0.0} if "eta" in params else {})}
