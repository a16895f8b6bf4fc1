"""The steps both Helios loops share (:mod:`t2v.families.helios`, :mod:`t2v.families.helios_pyramid`): the chunk
and memory sizes, the prompt and the image's latents, the history the chunks join, and their decoding."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from t2v.families.base import RunContext
from t2v.families.wan import TEXT_TOKENS, encode_prompts, latent_stats
from t2v.sampling.offload import resident
from t2v.sampling.vae import video_uint8

CHUNK = 9  # latent frames per chunk (the stock call's num_latent_frames_per_chunk)
HISTORY = (16, 2, 1)  # the long, mid and short memories' latent frames (history_sizes)
IMAGE_NOISE = (0.111, 0.135)  # the sigma range the stock call noises the image's latents with


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


@dataclass
class Prepared:
    """What both Helios loops start from: the modules, the prompt's embeddings, the generator, the latent grid, the
    history (and the image's latent) as the loop's extra state, the chunks and their decoder."""

    transformer: Any
    dtype: Any
    device: str
    embeds: Any
    negative: Any
    generator: Any
    h: int
    w: int
    channels: int
    extra: dict[str, Any]
    chunks: int
    stream: ChunkStream


def prepare(model, request, ctx: RunContext) -> Prepared:
    """Steps 3-5 of the stock calls: the prompt (and with guidance the negative prompt) as Wan encodes them, the
    image's latents (image-to-video) noised a little as stock noises them, the zero history with the image's
    repeated last latent at its end, and the chunks' decoder."""
    import torch
    from diffusers.video_processor import VideoProcessor

    c, memory, device = model.components, ctx.memory, model.plan.device
    transformer, vae = c["transformer"], c["vae"]
    dtype = transformer.dtype
    spatial, temporal = vae.config.scale_factor_spatial, vae.config.scale_factor_temporal
    processor = VideoProcessor(vae_scale_factor=spatial)
    mean, inv_std = latent_stats(vae, device=device, dtype=vae.dtype)
    ctx.on_stage("encode_prompt")
    embeds, negative = encode_prompts(model, request, ctx, TEXT_TOKENS, dtype)
    generator = torch.Generator("cpu").manual_seed(request.seed)
    h, w, channels = request.height // spatial, request.width // spatial, transformer.config.in_channels
    history = torch.zeros(1, channels, sum(HISTORY), h, w, device=device)
    extra: dict[str, Any] = {}
    if ctx.image is not None:
        with resident(vae, device, memory.offload):
            image, fake = image_latents(vae, processor, ctx.image, request, mean, inv_std, generator, device)
        extra["image"], fake = noised(image, generator, device), noised(fake, generator, device)
        history = torch.cat([history[:, :, :-1], fake], dim=2)
    extra["history"] = history
    stream = ChunkStream(ctx.on_frames, vae, processor, mean, inv_std, request.num_frames, temporal, memory, device)
    return Prepared(transformer, dtype, device, embeds, negative, generator, h, w, channels, extra,
                    max(1, math.ceil(request.num_frames / chunk_frames(temporal))), stream)


def shift_config(scheduler) -> tuple:
    """The scheduler's (base_image_seq_len, max_image_seq_len, base_shift, max_shift), the stock defaults for
    what it lacks."""
    return tuple(scheduler.config.get(k, d) for k, d in (("base_image_seq_len", 256), ("max_image_seq_len", 4096),
                                                          ("base_shift", 0.5), ("max_shift", 1.15)))


def chunk_done(s, stream, k: int) -> None:
    """A chunk is done: it joins the history (its first frame starts the next chunks' short memory when no
    image did) and the stream decodes it."""
    import torch

    if "image" not in s.extra:
        s.extra["image"] = s.latents[:, :, :1]
    s.extra["history"] = torch.cat([s.extra["history"], s.latents], dim=2)
    stream.chunk_done(s.extra["history"], k + 1)
