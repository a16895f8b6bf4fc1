"""AnyFlow FAR (``AnyFlowFARPipeline``): the causal AnyFlow, which makes a clip chunk by chunk of latent frames
(the transformer's ``chunk_partition``: 1, 3, 3, 3, 3, 3, 3, 2 for the released 81-frame checkpoints), each chunk
sampled in the flow map's few steps while attending to the chunks before it through a key-value cache.

t2v's own loop, numbered like the stock ``__call__``, so a seed gives its frames: Wan's prompt encoding, the whole
clip's fp32 noise from the request's generator (frame-major), and per chunk the folder's
``FlowMapEulerDiscreteScheduler``, the flow-map steps (a step from ``t`` to the next sigma's ``r``; guidance batched
as stock batches it) and, once the chunk is done, its keys and values added to the cache by the stock pipeline's own
``encode_kv_cache``. With an image (``--image``) the image's latent (the VAE encoder's mean, normalised) is the clip's
first latent frame and its chunk is context: it is cached, never denoised. A clip of another length than the
partition's is partitioned the same way: a first chunk of 1, then chunks of 3, the rest last.

Continuing a clip (``t2v extend``: the stock call's ``video``): the clip's last ``overlap`` frames (12k+1, so its
latents fill whole chunks; 37 by default, fewer for a shorter clip) through the VAE are the context chunks, and the
run makes the frames after them. The output is the clip, then the new frames (the re-decoded context is dropped;
the new frames are the stock call's own).

Every chunk's steps are steps of one run: progress and previews per step, cancel between steps, checkpoints that
hold the clip so far and resume to the same frames (the cache is built again from it, as it was built). With
``--stream`` (and on the service) the clip so far is decoded and streamed as each chunk is done.
"""

from __future__ import annotations

import copy
from pathlib import Path

from t2v.errors import InvalidRequest
from t2v.families.base import RunContext
from t2v.families.wan import TEXT_TOKENS, encode_prompts, latent_stats
from t2v.models.catalog import config, read_index
from t2v.sampling.base import EngineRun
from t2v.sampling.loop import Checkpoints, LoopState, denoise
from t2v.sampling.offload import resident
from t2v.sampling.schedulers import make_scheduler
from t2v.sampling.vae import video_uint8

PIPELINE = "AnyFlowFARPipeline"
CONTEXT = 37  # a continued clip's frames given as context by default: 10 latent frames, chunks of 1, 3, 3, 3


def is_far(path) -> bool:
    """Whether the folder's model_index.json names the FAR pipeline."""
    try:
        return read_index(Path(path)).get("_class_name") == PIPELINE
    except Exception:  # noqa: BLE001  (no index: not a FAR folder; the loader says why)
        return False


def partition(path, latent_frames: int) -> list[int]:
    """The chunks of ``latent_frames``: the transformer's ``chunk_partition`` when it fits, else a first chunk of
    one latent frame, then chunks of 3 and the rest."""
    given = list(config(Path(path), "transformer").get("chunk_partition") or (1, 3, 3, 3, 3, 3, 3, 2))
    if sum(given) == latent_frames:
        return given
    rest = latent_frames - 1
    return [1] + [3] * (rest // 3) + ([rest % 3] if rest % 3 else [])


def check_context(frames: int) -> None:
    """A context of ``frames`` must fill whole chunks: 12k+1 frames (1 latent frame, then chunks of 3)."""
    if (frames - 1) % 12:
        near = max(1, round((frames - 1) / 12) * 12 + 1)
        raise InvalidRequest(f"overlap: {frames} frames of context do not fill whole chunks of AnyFlow FAR (1 latent "
                             f"frame, then 3 a chunk): 12k+1 frames; nearest valid: {near}", field="overlap")


def extension(model, request, clip):
    """The one run of a longer FAR request: ``seconds`` (4k+1 frames); with ``clip`` (``extend``) its last ``overlap``
    frames (the request's, else :data:`CONTEXT` or the most a shorter clip has) then ``seconds`` more (else
    num_frames counting them). InvalidRequest naming the field for a clip or settings that leave no new frame or
    pass the model's frame limit."""
    import math

    temporal = model.components["vae"].config.scale_factor_temporal
    new = None if request.seconds is None else temporal * math.ceil(request.seconds * request.fps / temporal)
    if clip is None:
        return request.model_copy(update={"seconds": None, "num_frames": new + 1})
    have = len(clip.frames)
    context = request.overlap or min(CONTEXT, (have - 1) // 12 * 12 + 1)
    if context > have:
        raise InvalidRequest(f"overlap: the clip has {have} frames, fewer than the {context} given as context; nearest "
                             f"valid: {(have - 1) // 12 * 12 + 1}", field="overlap")
    frames = context + new if new is not None else request.num_frames
    if frames <= context:
        raise InvalidRequest(f"num_frames: {frames} frames, counting the clip's last {context}, leave no new frame; "
                             f"nearest valid: {context + temporal}", field="num_frames")
    if (frames - 1) % temporal:
        frames = (frames - 1) // temporal * temporal + temporal + 1
    limit = (int(model.components["transformer"].config.rope_max_seq_len) - 1) * temporal + 1
    if frames > limit:
        field = "seconds" if request.seconds is not None else "num_frames"
        raise InvalidRequest(f"{field}: the clip's {context} frames of context and the new ones make {frames} frames, "
                             f"more than the model's {limit}; nearest valid: {limit - context} new frames", field=field)
    return request.model_copy(update={"seconds": None, "num_frames": frames, "overlap": context})


class _Shell:
    """The stock pipeline with only what ``encode_kv_cache`` reads: the transformer and the guidance scale."""

    def __new__(cls, transformer, guidance_scale: float):
        from diffusers.pipelines.anyflow.pipeline_anyflow_far import AnyFlowFARPipeline

        shell = object.__new__(AnyFlowFARPipeline)
        for name, value in {"transformer": transformer, "_guidance_scale": guidance_scale,
                            "_attention_kwargs": None}.items():
            object.__setattr__(shell, name, value)
        return shell


def image_latents(vae, image, request, device):
    """AnyFlowFARPipeline.encode_video of the image as a one-frame clip: its latent (the encoder's mean,
    normalised), frame-major (1, 1, C, h, w)."""
    import numpy as np

    return clip_latents(vae, np.asarray(image.convert("RGB"))[None], request, device)


def clip_latents(vae, frames, request, device):
    """AnyFlowFARPipeline.encode_video of (F, H, W, 3) uint8 frames (as [0, 1] floats): their latents (the
    encoder's mean, normalised), frame-major (1, latent frames, C, h, w)."""
    import torch
    from diffusers.video_processor import VideoProcessor

    pixels = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(255)[None]
    video = VideoProcessor(vae_scale_factor=vae.config.scale_factor_spatial).preprocess_video(
        pixels, height=request.height, width=request.width).to(dtype=vae.dtype, device=device)
    mu = torch.chunk(vae._encode(video), 2, dim=1)[0]
    mean, inv_std = latent_stats(vae, device=mu.device, dtype=torch.float32)
    return ((mu.float() - mean) * inv_std).to(mu).permute(0, 2, 1, 3, 4)


def allocate_cache(transformer, parts: list[int], batch: int, tokens: tuple[int, int], like):
    """The stock call's empty key-value cache: per layer, the full-resolution and the compressed chunks'."""
    import torch

    cfg = transformer.config
    full, compressed = tokens
    shape = lambda n: (2, batch, cfg.num_attention_heads, n, cfg.attention_head_dim)  # noqa: E731
    return {layer: {"full_cache": torch.zeros(shape(cfg.full_chunk_limit * max(parts) * full), device=like.device,
                                              dtype=like.dtype),
                    "compressed_cache": torch.zeros(shape((len(parts) - cfg.full_chunk_limit + 1) * max(parts)
                                                          * compressed), device=like.device, dtype=like.dtype)}
            for layer in range(cfg.num_layers)}


def sample(model, request, ctx: RunContext) -> EngineRun:
    import torch
    from diffusers.utils.torch_utils import randn_tensor
    from diffusers.video_processor import VideoProcessor

    c, memory, device = model.components, ctx.memory, model.plan.device
    transformer, vae = c["transformer"], c["vae"]
    dtype, cfg = transformer.dtype, transformer.config

    # 3. The prompt (and with guidance the negative prompt, first in the batch as stock puts it).
    ctx.on_stage("encode_prompt")
    embeds, negative = encode_prompts(model, request, ctx, TEXT_TOKENS, dtype)
    text = embeds if negative is None else torch.cat([negative, embeds])
    rows = 1 if negative is None else 2

    # 4. The clip's noise, fp32 from the request's generator, frame-major in the transformer's dtype.
    s, t = vae.config.scale_factor_spatial, vae.config.scale_factor_temporal
    frames = (request.num_frames - 1) // t + 1
    generator = torch.Generator("cpu").manual_seed(request.seed)
    noise = randn_tensor((1, cfg.in_channels, frames, request.height // s, request.width // s), generator=generator,
                         device=torch.device(device), dtype=torch.float32).to(dtype).permute(0, 2, 1, 3, 4)

    # 5. The image's latent first (image-to-video): its chunks are context, cached and never denoised.
    parts = partition(model.source.path, frames)
    starts = [sum(parts[:k]) for k in range(len(parts) + 1)]
    output = torch.zeros_like(noise)
    context = 0
    given = ctx.video.frames[-request.overlap:] if ctx.video is not None else None  # a clip continued: its last
    if ctx.image is not None or given is not None:
        with resident(vae, device, memory.offload), torch.no_grad():
            prefix = (image_latents(vae, ctx.image, request, device) if given is None
                      else clip_latents(vae, given, request, device))
        output[:, :prefix.shape[1]] = prefix
        context = next(k + 1 for k in range(len(parts)) if starts[k + 1] >= prefix.shape[1])

    # 6. The cache, then the chunks' steps in one run.
    h, w = noise.shape[-2:]
    tokens = ((h // cfg.patch_size[1]) * (w // cfg.patch_size[2]),
              (h // cfg.compressed_patch_size[1]) * (w // cfg.compressed_patch_size[2]))
    scheduler = make_scheduler(request.scheduler, model.scheduler_config)
    scheduler.set_timesteps(request.num_inference_steps, device=device)
    steps, train = len(scheduler.timesteps), scheduler.config.num_train_timesteps
    chunks = list(range(context, len(parts)))
    state = LoopState(noise[:, starts[context]:starts[context + 1]], {"output": output})
    checkpoints = Checkpoints(ctx, model, request, scheduler, generator, ctx.image, ctx.video)
    start = checkpoints.resume(state, device)
    shell = _Shell(transformer, request.guidance_scale)
    cache = {"kv": None, "flag": None, "cached": 0}

    def cache_up_to(k: int, out) -> None:
        """The cache holding chunks 0..k-1 (built from ``out`` as the run built it: chunk by chunk)."""
        if cache["kv"] is None:
            cache["kv"] = allocate_cache(transformer, parts, rows, tokens, noise)
            cache["flag"] = {"num_cached_chunks": 0, "is_cache_step": False}
        while cache["cached"] < k:
            j = cache["cached"]
            cache["kv"] = shell.encode_kv_cache(cache["kv"], cache["flag"], chunk_partition=parts[:j + 1], chunk_idx=j,
                                                output=out, prompt_embeds=embeds, negative_prompt_embeds=negative)
            cache["cached"] += 1

    ctx.on_stage("denoise", start, len(chunks) * steps)

    def step(n: int, st: LoopState) -> None:
        k, i = chunks[n // steps], n % steps
        cache_up_to(k, st.extra["output"])
        if i == 0:  # a new chunk: its noise and the schedule
            st.latents = noise[:, starts[k]:starts[k + 1]]
            scheduler.set_timesteps(request.num_inference_steps, device=device)
        ts, r = scheduler.timesteps[i], scheduler.sigmas[i + 1] * train
        if ts != r:  # a step that goes nowhere is skipped, as stock skips it
            x = torch.cat([st.latents] * rows)
            stamp = lambda v: v.expand(x.shape[0]).unsqueeze(-1).repeat((1, x.shape[1]))  # noqa: E731
            out, _ = transformer(hidden_states=x, timestep=stamp(ts), r_timestep=stamp(r), encoder_hidden_states=text,
                                 attention_kwargs=None, return_dict=False, chunk_partition=parts[:k + 1],
                                 kv_cache=cache["kv"], kv_cache_flag=copy.deepcopy(cache["flag"]))
            if negative is not None:
                uncond, cond = out.chunk(2)
                out = uncond + request.guidance_scale * (cond - uncond)
            st.latents = scheduler.step(out, ts, st.latents, return_dict=False)[0]
        if i == steps - 1:  # the chunk is done: it joins the clip (and, watched, the clip so far plays)
            st.extra["output"] = st.extra["output"].clone()
            st.extra["output"][:, starts[k]:starts[k + 1]] = st.latents
            if ctx.on_frames is not None and k < len(parts) - 1:
                ctx.on_frames(after_clip(decode(st.extra["output"][:, :starts[k + 1]])))

    def decode(latents):
        """Frame-major latents to uint8 frames with the VAE's statistics; Wan's VAE is causal, so a prefix of the
        clip decodes to the first frames of the whole."""
        with resident(vae, device, memory.offload):
            z = latents.permute(0, 2, 1, 3, 4).to(vae.device, vae.dtype)
            mean, inv_std = latent_stats(vae, z)
            return video_uint8(processor, vae.decode(z / inv_std + mean, return_dict=False)[0])

    def after_clip(frames):
        """A continued clip, then the frames made after its context (the context's re-decoded frames dropped)."""
        if given is None:
            return frames
        import numpy as np

        return np.concatenate([ctx.video.frames, frames[len(given):]])

    processor = VideoProcessor(vae_scale_factor=s)
    with resident(transformer, device, memory.offload):
        denoise(ctx, len(chunks) * steps, state, step, checkpoints, start=start)

    # 7. Decode the clip (channels first again).
    ctx.on_stage("decode")
    return EngineRun(frames=after_clip(decode(state.extra["output"])), warnings=ctx.warnings,
                     resumed_from_step=checkpoints.resumed)


def meta_step(transformer, path, x, text):
    """A step of the last chunk of ``x`` (frame-major latents on the meta device) with every chunk before it in the
    cache: what the planner measures. Flex attention has no meta kernel; the meta model's attention runs as
    PyTorch's scaled-dot-product attention over the same shapes (the cost of the unfused kernel)."""
    import torch

    for module in transformer.modules():
        processor = getattr(module, "processor", None)
        if hasattr(processor, "_SUPPORTED_BACKENDS") and "native" not in processor._SUPPORTED_BACKENDS:
            processor._SUPPORTED_BACKENDS = (*processor._SUPPORTED_BACKENDS, "native")
            processor._attention_backend = "native"
    cfg = transformer.config
    parts = partition(path, x.shape[1])
    h, w = x.shape[-2:]
    tokens = ((h // cfg.patch_size[1]) * (w // cfg.patch_size[2]),
              (h // cfg.compressed_patch_size[1]) * (w // cfg.compressed_patch_size[2]))
    cache = allocate_cache(transformer, parts, x.shape[0], tokens, x)
    last = x[:, -parts[-1]:]
    ts = torch.zeros(x.shape[0], last.shape[1], device=x.device, dtype=x.dtype)
    return transformer(hidden_states=last, timestep=ts, r_timestep=ts, encoder_hidden_states=text, return_dict=False,
                       chunk_partition=parts, kv_cache=cache,
                       kv_cache_flag={"num_cached_chunks": len(parts) - 1, "is_cache_step": False})
