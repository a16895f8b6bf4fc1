"""The steps of an LTX-Video run (:mod:`t2v.families.ltx`): packing latents into tokens, prompt encoding, the
first-frame latents and schedules of ``LTXPipeline`` / ``LTXImageToVideoPipeline`` ("classic") and of
``LTXConditionPipeline`` (0.9.7+), one guided step of each, and the decode with timestep conditioning, each as
the stock pipeline does it."""

from __future__ import annotations

import dataclasses
from typing import Any
from t2v.models.precision import compute_dtype
from t2v.sampling import v2v
from t2v.sampling.vae import video_uint8

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

    @property
    def tokens(self) -> int:
        """The transformer's video tokens: latent positions over the patch."""
        return (self.frames // self.patch_t) * (self.height // self.patch) * (self.width // self.patch)

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
    return embeds.to(dtype=compute_dtype(encoder), device=device), mask.to(device)


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
    packed = grid.pack(latents)
    return Prepared(packed, mask=mask, init=packed.clone() if image is not None else None,
                    coords=video_coords(grid, device))


def condition_v2v(grid: Grid, encoded, scheduler, kept, generator, device) -> Prepared:
    """LTXConditionPipeline with ``latents`` and ``denoise_strength`` < 1, no condition: the noise drawn first
    (unpacked, as prepare_latents draws it) and mixed in at the first kept timestep's sigma,
    ``sigma * noise + (1 - sigma) * latents`` (flow matching's ``scale_noise``); strength 0 keeps the input."""
    return Prepared(grid.pack(v2v.noised(scheduler, encoded, kept, generator)), coords=video_coords(grid, device))


def video_coords(grid: Grid, device):
    """LTXConditionPipeline's video coordinates: latent indices scaled to pixels, the causal first frame's
    offset, frames in seconds."""
    import torch

    ids = grid_ids(grid, device) * torch.tensor([grid.temporal, grid.spatial, grid.spatial], device=device)[None, :, None]
    ids[:, 0] = (ids[:, 0] + 1 - grid.temporal).clamp(min=0)
    coords = ids.float()
    coords[:, 0] = coords[:, 0] * (1.0 / grid.frame_rate)
    return coords


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


def decode_plan(vae, memory) -> None:
    """The VAE's tiled, frame-wise decoding under the low memory plan; whole clips otherwise."""
    low = memory.name == "low"
    (vae.enable_tiling if low else vae.disable_tiling)()
    vae.use_framewise_decoding = low


def decode_noise(vae, latents, opts, generator, device):
    """A timestep-conditioned VAE's decode inputs, as the LTX pipelines make them: the latents mixed with noise from
    the generator at ``decode_noise_scale`` (default the decode timestep), and that timestep; else as they are, None."""
    import torch
    from diffusers.utils.torch_utils import randn_tensor

    if not vae.config.timestep_conditioning:
        return latents, None
    noise = randn_tensor(latents.shape, generator=generator, device=torch.device(device), dtype=latents.dtype)
    scale = opts["decode_noise_scale"] if opts["decode_noise_scale"] is not None else opts["decode_timestep"]
    timestep = torch.tensor([opts["decode_timestep"]], device=device, dtype=latents.dtype)
    scale = torch.tensor([scale], device=device, dtype=latents.dtype)[:, None, None, None, None]
    return (1 - scale) * latents + scale * noise, timestep


def decode(vae, latents, dtype, opts, generator, seed: int, device):
    """Denormalise, cast to the text embeddings' ``dtype`` as stock does, mix in the decode noise at the decode
    timestep (timestep-conditioned VAEs), decode with torch's global RNG seeded by ``seed`` (the 0.9.1 decoder's
    noise injection) and restored afterwards."""
    import torch
    from diffusers.video_processor import VideoProcessor

    mean, std = stats(vae, latents)
    latents, timestep = decode_noise(vae, (latents * std / vae.config.scaling_factor + mean).to(dtype), opts, generator,
                                     device)
    cuda = torch.device(device).type == "cuda"
    index = torch.device(device).index if cuda else None
    with torch.random.fork_rng(devices=[torch.cuda.current_device() if index is None else index] if cuda else []):
        torch.random.default_generator.manual_seed(seed)
        if cuda:
            torch.cuda.manual_seed(seed)
        video = vae.decode(latents.to(vae.device, vae.dtype), timestep, return_dict=False)[0]
    processor = VideoProcessor(vae_scale_factor=vae.spatial_compression_ratio)
    return video_uint8(processor, video)
