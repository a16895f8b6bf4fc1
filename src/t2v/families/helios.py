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

A folder naming ``HeliosPyramidPipeline`` (Helios-Mid, Helios-Distilled) runs its pyramid loop
(:mod:`t2v.families.helios_pyramid`) from the same start (:func:`prepare`).

LoRA: ``HeliosLoraLoaderMixin``'s layout. Step caches: refused by name. Not here yet: video-to-video.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from t2v.errors import InvalidRequest
from t2v.families.base import Component, RunContext, Rules, refuse_in_one_run
from t2v.families.dryrun import measured, text_peak
from t2v.families.common import GroupOffload
from t2v.families.lora import DiffusersLora
from t2v.families.meta import meta_modules
from t2v.families import helios_pyramid
from t2v.families.helios_steps import (
    CHUNK, HISTORY, chunk_done, chunk_frames, clip_frames, memories, memory_indices, prepare, shift_config)
from t2v.families.wan import TEXT_TOKENS, WanFamily
from t2v.models.catalog import config
from t2v.models.hub.helios import CARD
from t2v.planner.memory import meta_cost
from t2v.planner.precision import cast, meta_kwargs
from t2v.sampling.base import EngineRun
from t2v.sampling.loop import Checkpoints, LoopState, denoise
from t2v.sampling.offload import resident
from t2v.sampling.schedulers import make_scheduler

LONG_ONLY = ("prompt_schedule", "overlap", "continue_strength")


class HeliosFamily(GroupOffload, DiffusersLora):
    card = CARD
    components = (
        Component("tokenizer", ("T5TokenizerFast", "T5Tokenizer", "AutoTokenizer", "ByT5Tokenizer"), module=False,
                  prompt=True),
        Component("text_encoder", ("UMT5EncoderModel",), weight_stem="model", prompt=True),
        Component("transformer", ("HeliosTransformer3DModel",)),
        Component("vae", ("AutoencoderKLWan",)),
        Component("scheduler", ("HeliosScheduler", "HeliosDMDScheduler"), module=False),
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
        helios_pyramid.check(path, request, model=model)

    def check_long(self, request, modes: tuple[str, ...], *, model: str) -> None:
        """``seconds`` is made in one run, chunk by chunk (segments' own settings do not apply); ``extend`` is made
        in segments, each continuing from the last frame (image-to-video)."""
        if request.extend:
            return super().check_long(request, modes, model=model)
        refuse_in_one_run(request, LONG_ONLY, model=model, how="chunk by chunk")

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
        if helios_pyramid.is_pyramid(model.source.path):
            return helios_pyramid.sample(model, request, ctx, prepare(model, request, ctx))
        import numpy as np
        import torch
        from diffusers.pipelines.helios.pipeline_helios import calculate_shift
        from diffusers.utils.torch_utils import randn_tensor

        run = prepare(model, request, ctx)
        transformer, generator, device, h, w = run.transformer, run.generator, run.device, run.h, run.w

        # 5. The chunks and their steps, 6. the schedule (the same for every chunk).
        steps = request.num_inference_steps
        sigmas = np.linspace(0.999, 0.0, steps + 1)[:-1]
        scheduler = make_scheduler(request.scheduler, model.scheduler_config)
        mu = calculate_shift(CHUNK * h * w // math.prod(transformer.config.patch_size), *shift_config(scheduler))
        indices = memory_indices()
        state = LoopState(torch.zeros(1, run.channels, CHUNK, h, w, device=device), run.extra)
        checkpoints = Checkpoints(ctx, model, request, scheduler, generator, ctx.image, ctx.video)
        start = checkpoints.resume(state, device)
        ctx.on_stage("denoise", start, run.chunks * steps)

        def step(n: int, s: LoopState) -> None:
            k, i = divmod(n, steps)
            if i == 0:  # a new chunk: its noise and the schedule
                s.latents = randn_tensor((1, run.channels, CHUNK, h, w), generator=generator,
                                         device=torch.device(device), dtype=torch.float32)
                scheduler.set_timesteps(steps, device=device, sigmas=sigmas, mu=mu)
            long, mid, short = memories(s.extra, run.dtype)
            t = scheduler.timesteps[i]
            kw = dict(hidden_states=s.latents.to(run.dtype), timestep=t.expand(1), latents_history_short=short,
                      latents_history_mid=mid, latents_history_long=long, return_dict=False, **indices)
            out = transformer(encoder_hidden_states=run.embeds, **kw)[0]
            if run.negative is not None:
                uncond = transformer(encoder_hidden_states=run.negative, **kw)[0]
                out = uncond + request.guidance_scale * (out - uncond)
            s.latents = scheduler.step(out, t, s.latents, generator=generator, return_dict=False)[0]
            if i == steps - 1:
                chunk_done(s, run.stream, k)

        with resident(transformer, device, ctx.memory.offload):
            denoise(ctx, run.chunks * steps, state, step, checkpoints, start=start)

        # 7. Decode each chunk alone (a stream decoded them already), trimmed to the clip.
        ctx.on_stage("decode")
        return EngineRun(frames=run.stream.frames(state.extra["history"], run.chunks), warnings=ctx.warnings,
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


