"""Helios (``HeliosPipeline``): a 14B autoregressive video model that makes a clip chunk by chunk, each chunk of 9
latent frames (33 frames) denoised beside a compressed memory of the chunks before it.

t2v's own loop, numbered like the stock ``__call__``, so a seed gives its frames: Wan's prompt encoding (UMT5, 512
tokens), then for each chunk its fp32 noise from the request's CPU generator, the folder's ``HeliosScheduler``
(UniPC on flow sigmas, shifted by the chunk's token count), the conditional and (with guidance) unconditional
passes with the history split into long, mid and short memories (16, 2 and 1 latent frames, the short one after
the clip's first frame), and each chunk decoded on its own by Wan's VAE. The clip is the chunks' frames, trimmed to
4k+1: 33, 65, 97, 129, 165, 197, ... frames. One run of any length: ``--seconds`` is made in chunks, not
segments.

Every chunk's steps are steps of one run: progress and previews per step, cancel between steps without decoding,
checkpoints (the history and the first frame's latent with the scheduler and generator) that resume to the same
frames at any step of any chunk. With ``--stream`` each chunk is decoded when it is done and the clip so far goes
to the stream; otherwise the chunks are decoded after the last one (each alone, as stock decodes them: the same
frames).

Image-to-video (``--image``): as ``HeliosPipeline`` does it, the image's latent (drawn from the VAE encoder with the
request's generator) starts every chunk's short memory, and the last latent of the image repeated over a chunk
starts the history; both noised a little (sigma 0.111-0.135, from the generator).

LoRA: ``HeliosLoraLoaderMixin``'s layout. Step caches: refused by name. Not here yet: the pyramid pipeline
(``HeliosPyramidPipeline``: Helios-Mid and Helios-Distilled) and video-to-video.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from t2v.errors import InvalidRequest
from t2v.families.base import Component, RunContext, Rules
from t2v.families.dryrun import measured, text_peak
from t2v.families.lora import DiffusersLora
from t2v.families.meta import meta_modules
from t2v.families.wan import TEXT_TOKENS, WanFamily, encode_prompts, latent_stats
from t2v.models.catalog import config
from t2v.models.hub.helios import CARD
from t2v.planner.memory import meta_cost
from t2v.planner.precision import cast, meta_kwargs
from t2v.sampling.base import EngineRun
from t2v.sampling.loop import Checkpoints, LoopState, denoise
from t2v.sampling.offload import resident
from t2v.sampling.schedulers import make_scheduler
from t2v.sampling.vae import video_uint8

CHUNK = 9  # latent frames per chunk (the stock call's num_latent_frames_per_chunk)
HISTORY = (16, 2, 1)  # the long, mid and short memories' latent frames (history_sizes)
IMAGE_NOISE = (0.111, 0.135)  # the sigma range the stock call noises the image's latents with
LONG_ONLY = ("prompt_schedule", "overlap", "continue_strength")


class HeliosFamily(DiffusersLora):
    card = CARD
    components = (
        Component("tokenizer", ("T5TokenizerFast", "T5Tokenizer", "AutoTokenizer", "ByT5Tokenizer"), module=False,
                  prompt=True),
        Component("text_encoder", ("UMT5EncoderModel",), weight_stem="model", prompt=True),
        Component("transformer", ("HeliosTransformer3DModel",)),
        Component("vae", ("AutoencoderKLWan",)),
        Component("scheduler", ("HeliosScheduler",), module=False),
    )
    denoiser = "transformer"
    caches = ()  # no step-cache hook knows Helios's blocks (and the history changes every chunk)
    lora_loader = "HeliosLoraLoaderMixin"
    long_method = "autoregressive chunks"

    def rules(self, path: Path | None) -> Rules:
        temporal = int(config(path, "vae").get("scale_factor_temporal") or 4) if path is not None else 4
        # 16: the stock pipeline's own check; a clip is whole chunks trimmed to 4k+1 frames (checked by check)
        return Rules(size_multiple=16, frame_step=temporal, text_tokens=TEXT_TOKENS, modes=self.modes,
                     schedulers=("model",))

    def check(self, request, path: Path | None, *, model: str = "this model") -> None:
        """First: a clip is whole chunks (33, 65, 97, 129, 165, ... frames), named with the nearest valid count (so
        the count named is one that runs); then the family's rules."""
        n = request.num_frames
        if n and request.seconds is None and not request.extend and request.mode == "video":
            temporal = int(config(path, "vae").get("scale_factor_temporal") or 4) if path is not None else 4
            chunks = max(1, math.ceil(n / chunk_frames(temporal)))
            if n != clip_frames(chunks, temporal):
                near = min((clip_frames(c, temporal) for c in (max(1, chunks - 1), chunks)), key=lambda v: abs(v - n))
                raise InvalidRequest(f"num_frames: {n} is not whole chunks of {chunk_frames(temporal)} frames trimmed "
                                     f"to 4k+1, which this model makes; nearest valid: {near}", field="num_frames")
        super().check(request, path, model=model)

    def check_long(self, request, modes: tuple[str, ...], *, model: str) -> None:
        """``seconds`` is made in one run, chunk by chunk (segments' own settings do not apply); ``extend`` is made
        in segments, each continuing from the last frame (image-to-video)."""
        if request.extend:
            return super().check_long(request, modes, model=model)
        for name in LONG_ONLY:
            if getattr(request, name, None) is not None:
                raise InvalidRequest(f"{name}: {model} makes long videos in one run, chunk by chunk from one prompt; "
                                     "give seconds alone", field=name)

    def native_long(self, model, request, clip=None):
        """``seconds`` at the request's fps, rounded up to whole chunks (32k+1 frames), as one run."""
        if clip is not None:
            return None
        temporal = model.components["vae"].config.scale_factor_temporal
        chunks = max(1, math.ceil(request.seconds * request.fps / chunk_frames(temporal)))
        return request.model_copy(update={"seconds": None, "num_frames": clip_frames(chunks, temporal)})

    def denoised_frames(self, request, defaults: dict[str, Any]) -> int | None:
        """Every chunk is denoised alone (beside its memory): the denoiser's work is one chunk's, however long."""
        return chunk_frames(4) if request.num_frames and request.num_frames > chunk_frames(4) else None

    def sample(self, model, request, ctx: RunContext) -> EngineRun:
        import numpy as np
        import torch
        from diffusers.pipelines.helios.pipeline_helios import calculate_shift
        from diffusers.utils.torch_utils import randn_tensor
        from diffusers.video_processor import VideoProcessor

        c, memory, device = model.components, ctx.memory, model.plan.device
        transformer, vae = c["transformer"], c["vae"]
        dtype = transformer.dtype
        spatial, temporal = vae.config.scale_factor_spatial, vae.config.scale_factor_temporal
        processor = VideoProcessor(vae_scale_factor=spatial)
        mean, inv_std = latent_stats(vae, device=device, dtype=vae.dtype)

        # 3. The prompt (and with guidance the negative prompt), as Wan encodes them.
        ctx.on_stage("encode_prompt")
        embeds, negative = encode_prompts(model, request, ctx, TEXT_TOKENS, dtype)

        # 4. The image's latents (image-to-video), noised a little as stock noises them.
        generator = torch.Generator("cpu").manual_seed(request.seed)
        h, w = request.height // spatial, request.width // spatial
        channels = transformer.config.in_channels
        history = torch.zeros(1, channels, sum(HISTORY), h, w, device=device)
        image = None
        if ctx.image is not None:
            with resident(vae, device, memory.offload):
                image, fake = image_latents(vae, processor, ctx.image, request, mean, inv_std, generator, device)
            image, fake = noised(image, generator, device), noised(fake, generator, device)
            history = torch.cat([history[:, :, :-1], fake], dim=2)

        # 5. The chunks and their steps, 6. the schedule (the same for every chunk).
        chunks = max(1, math.ceil(request.num_frames / chunk_frames(temporal)))
        steps = request.num_inference_steps
        sigmas = np.linspace(0.999, 0.0, steps + 1)[:-1]
        scheduler = make_scheduler(request.scheduler, model.scheduler_config)
        patch = transformer.config.patch_size
        mu = calculate_shift(CHUNK * h * w // math.prod(patch), *(scheduler.config.get(k, d) for k, d in (
            ("base_image_seq_len", 256), ("max_image_seq_len", 4096), ("base_shift", 0.5), ("max_shift", 1.15))))
        indices = memory_indices()
        extra = {"history": history}
        if image is not None:
            extra["image"] = image
        state = LoopState(torch.zeros(1, channels, CHUNK, h, w, device=device), extra)
        checkpoints = Checkpoints(ctx, model, request, scheduler, generator, ctx.image, ctx.video)
        start = checkpoints.resume(state, device)
        ctx.on_stage("denoise", start, chunks * steps)
        stream = ChunkStream(ctx.on_frames, vae, processor, mean, inv_std, request.num_frames, temporal, memory, device)

        def step(n: int, s: LoopState) -> None:
            k, i = divmod(n, steps)
            if i == 0:  # a new chunk: its noise and the schedule
                s.latents = randn_tensor((1, channels, CHUNK, h, w), generator=generator, device=torch.device(device),
                                         dtype=torch.float32)
                scheduler.set_timesteps(steps, device=device, sigmas=sigmas, mu=mu)
            long, mid, short = memories(s.extra, dtype)
            t = scheduler.timesteps[i]
            kw = dict(hidden_states=s.latents.to(dtype), timestep=t.expand(1), latents_history_short=short,
                      latents_history_mid=mid, latents_history_long=long, return_dict=False, **indices)
            out = transformer(encoder_hidden_states=embeds, **kw)[0]
            if negative is not None:
                uncond = transformer(encoder_hidden_states=negative, **kw)[0]
                out = uncond + request.guidance_scale * (out - uncond)
            s.latents = scheduler.step(out, t, s.latents, generator=generator, return_dict=False)[0]
            if i == steps - 1:  # the chunk is done: it joins the history (its first frame starts the next chunks')
                if "image" not in s.extra:
                    s.extra["image"] = s.latents[:, :, :1]
                s.extra["history"] = torch.cat([s.extra["history"], s.latents], dim=2)
                stream.chunk_done(s.extra["history"], k + 1)

        with resident(transformer, device, memory.offload):
            denoise(ctx, chunks * steps, state, step, checkpoints, start=start)

        # 7. Decode each chunk alone (a stream decoded them already), trimmed to the clip.
        ctx.on_stage("decode")
        return EngineRun(frames=stream.frames(state.extra["history"], chunks), warnings=ctx.warnings,
                         resumed_from_step=checkpoints.resumed)

    def preview(self, model, latents):
        return WanFamily.preview(self, model, latents)

    def guidance_passes(self, request) -> int:
        return 2 if request.guidance_scale > 1.0 else 1

    def measure(self, path: Path, frames: int, height: int, width: int, batch: int, chunking: bool,
                vae_chunk: int) -> dict[str, Any]:
        """One text encoding, one transformer pass over a chunk and its memories (the conditions run one by one:
        batch 1), one chunk's decode: the same whatever the clip's length."""
        import torch

        m = cast(meta_modules(str(path)))
        tr, vae, meta = m["transformer"], m["vae"], meta_kwargs()
        meta_rope(tr)
        spatial = vae.config.scale_factor_spatial
        h, w, ch = height // spatial, width // spatial, tr.config.in_channels
        text = text_peak(m["text_encoder"], TEXT_TOKENS)
        zeros = lambda n: torch.zeros(1, ch, n, h, w, **meta)  # noqa: E731
        step = meta_cost(lambda: tr(
            hidden_states=zeros(CHUNK), timestep=torch.zeros(1, **meta), return_dict=False,
            encoder_hidden_states=torch.zeros(1, TEXT_TOKENS, tr.config.text_dim, **meta),
            latents_history_long=zeros(HISTORY[0]), latents_history_mid=zeros(HISTORY[1]),
            latents_history_short=zeros(HISTORY[2] + 1), **memory_indices()))
        decode = meta_cost(lambda: vae.decode(zeros(CHUNK)), part="vae")
        latent_bytes = ch * h * w * 4
        return measured(m, acts={"text": text, "transformer": step.peak, "vae": decode.peak},
                        roles={"text": ["text_encoder"], "denoise": ["transformer"], "vae": ["vae"]}, step=step,
                        decode=decode, passes=1, frames=frames, height=height, width=width, vae_scales_with="area",
                        latents_bytes=latent_bytes * (sum(HISTORY) + 2 * CHUNK + (frames - 1) // 4 + 1))

    def reference_shape(self, path: Path) -> tuple[int, int]:
        return chunk_frames(4), 64

    def frames_per_latent(self, path: Path) -> int:
        return int(config(Path(path), "vae").get("scale_factor_temporal") or 4)


def meta_rope(transformer) -> None:
    """The rotary table of a meta transformer computed without the autocast context the stock code opens (autocast
    knows no meta device); the same operations otherwise."""
    import types

    import torch

    def frequencies(self, base, pos):
        freqs = torch.einsum("d,bthw->dbthw", base, pos).repeat_interleave(2, dim=0)
        return freqs.cos(), freqs.sin()

    transformer.rope.get_frequency_batched = types.MethodType(frequencies, transformer.rope)


def chunk_frames(temporal: int) -> int:
    """The frames one chunk decodes to (33 for Wan's VAE)."""
    return (CHUNK - 1) * temporal + 1


def clip_frames(chunks: int, temporal: int) -> int:
    """The frames of a clip of ``chunks`` chunks: their frames trimmed to 4k+1, as the stock call trims them."""
    return (chunks * chunk_frames(temporal) - 1) // temporal * temporal + 1


def memory_indices() -> dict[str, Any]:
    """The stock call's frame indices of the chunk and its memories (the first frame's prefix, then 16, 2, 1
    history frames, then the chunk), as the transformer takes them."""
    import torch

    prefix, long, mid, one, chunk = torch.arange(0, 1 + sum(HISTORY) + CHUNK).split([1, *HISTORY, CHUNK], dim=0)
    return {"indices_hidden_states": chunk.unsqueeze(0), "indices_latents_history_long": long.unsqueeze(0),
            "indices_latents_history_mid": mid.unsqueeze(0),
            "indices_latents_history_short": torch.cat([prefix, one]).unsqueeze(0)}


def memories(extra: dict[str, Any], dtype) -> tuple:
    """The long, mid and short memories of the next chunk: the last history frames split 16 / 2 / 1, the short one
    after the clip's first frame (zeros before the first chunk of text-to-video)."""
    import torch

    long, mid, one = extra["history"][:, :, -sum(HISTORY):].split(HISTORY, dim=2)
    prefix = extra.get("image")
    if prefix is None:
        prefix = torch.zeros_like(one)
    return long.to(dtype), mid.to(dtype), torch.cat([prefix, one], dim=2).to(dtype)


def image_latents(vae, processor, image, request, mean, inv_std, generator, device):
    """HeliosPipeline.prepare_image_latents: the image's latent and the last latent of the image repeated over a
    chunk, each sampled from the VAE encoder with ``generator``, normalised: fp32 (1, C, 1, h, w) each."""
    import torch

    pixels = processor.preprocess(image, height=request.height, width=request.width)
    pixels = pixels.unsqueeze(2).to(device=device, dtype=vae.dtype)
    with torch.no_grad():
        latents = (vae.encode(pixels).latent_dist.sample(generator=generator) - mean) * inv_std
        repeated = pixels.repeat(1, 1, chunk_frames(vae.config.scale_factor_temporal), 1, 1)
        fake = (vae.encode(repeated).latent_dist.sample(generator=generator) - mean) * inv_std
    return latents.float(), fake[:, :, -1:].float()


def noised(latents, generator, device):
    """The stock call's noise on the image's latents: sigma uniform in IMAGE_NOISE, from ``generator``."""
    import torch
    from diffusers.utils.torch_utils import randn_tensor

    low, high = IMAGE_NOISE
    sigma = torch.rand(1, device=device, generator=generator) * (high - low) + low
    return sigma * randn_tensor(latents.shape, generator=generator, device=torch.device(device)) + (1 - sigma) * latents


class ChunkStream:
    """Each chunk decoded alone by the VAE (as stock decodes them), to uint8 frames; with a stream (``on_frames``)
    as soon as the chunk is done, the clip so far handed on; without one, all at the end."""

    def __init__(self, on_frames, vae, processor, mean, inv_std, num_frames: int, temporal: int, memory, device):
        self.on_frames, self.vae, self.processor = on_frames, vae, processor
        self.mean, self.inv_std, self.num_frames, self.memory, self.device = mean, inv_std, num_frames, memory, device
        self.decoded: list = []  # uint8 frames of chunks 0, 1, ...

    def chunk_done(self, history, chunks: int) -> None:
        if self.on_frames is not None:
            import numpy as np

            self.decode(history, chunks)
            self.on_frames(np.concatenate(self.decoded)[: self.num_frames])

    def decode(self, history, chunks: int) -> None:
        """Decode the chunks not decoded yet of the first ``chunks`` (they are the history's last frames)."""
        import torch

        made = history[:, :, sum(HISTORY):]  # the chunks' frames, after the history's first zeros
        with resident(self.vae, self.device, self.memory.offload), torch.no_grad():
            for k in range(len(self.decoded), chunks):
                z = made[:, :, k * CHUNK:(k + 1) * CHUNK].to(self.vae.dtype) / self.inv_std + self.mean
                self.decoded.append(video_uint8(self.processor, self.vae.decode(z, return_dict=False)[0]))

    def frames(self, history, chunks: int):
        import numpy as np

        self.decode(history, chunks)
        return np.concatenate(self.decoded)[: self.num_frames]
