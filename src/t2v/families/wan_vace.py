"""VACE control for Wan (``WanVACEPipeline``): the control video, its mask and the reference images turned into
the control stream the VACE transformer adds in its ``vace_layers``, exactly as the stock pipeline's
``preprocess_conditions``, ``prepare_video_latents`` and ``prepare_masks`` do, so a seed gives its frames.

- The control video (none: a grey clip) is split by the mask (none: all ones, everything made) into the pixels
  to keep (``video * (1 - mask)``) and the pixels to remake (``video * mask``); each goes through the VAE encoder
  (the mode), normalised: 2 x 16 channels.
- Each reference image is scaled to fit the output (bilinear), centred on a white canvas, encoded, and put in
  front of the clip's latent frames (with zeros for its second half); the last one given comes first.
- The mask is packed 8 x 8 into 64 channels per latent pixel and resampled (nearest) to the latent frames, with
  zero frames for the references: 96 channels in all.
The run's noise has a latent frame more per reference; the decode drops them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from t2v.models.catalog import config
from t2v.planner.precision import meta_kwargs

VACE_CLASS = "WanVACETransformer3DModel"


def is_vace(path: Path | None) -> bool:
    """Whether the Wan folder at ``path`` has VACE transformers (their config names ``vace_layers``)."""
    if path is None:
        return False
    tr = config(path, "transformer") or config(path, "transformer_2")
    return tr.get("_class_name") == VACE_CLASS or "vace_layers" in tr


def references_of(control) -> int:
    """The latent frames the references add in front of the clip."""
    return len(control.references) if control is not None else 0


def condition(vae, transformer, control, request, device):
    """(the control stream (1, 96, latent frames + references, h, w) in the transformer's dtype, the per-layer
    scale) for ``control`` (:class:`t2v.control.ControlInputs` or None: a VACE model's text-to-video)."""
    import torch

    n, height, width = request.num_frames, request.height, request.width
    if control is not None and control.video is not None:
        video = pixels(control.video, device)
    else:
        video = torch.zeros(1, 3, n, height, width, dtype=torch.float32, device=device)
    if control is not None and control.mask is not None:
        mask = torch.from_numpy(control.mask).to(device, torch.float32)[None, None].expand(1, 3, -1, -1, -1)
    else:
        mask = torch.ones_like(video)
    refs = [canvas(image, height, width, vae.config.scale_factor_spatial, device)
            for image in (control.references if control is not None else ())]
    latents = video_latents(vae, video, mask, refs, device)
    masks = packed_mask(mask, len(refs), vae, transformer.config.patch_size[1])
    stream = torch.cat([latents, masks], dim=1).to(transformer.dtype)
    layers = len(transformer.config.vace_layers)
    scale = torch.tensor([float(request.control_scale)] * layers).to(device=device, dtype=transformer.dtype)
    return stream, scale


def pixels(frames, device):
    """(F, H, W, 3) uint8 -> (1, 3, F, H, W) float32 in [-1, 1] (VideoProcessor.preprocess_video's arithmetic)."""
    import torch

    x = torch.from_numpy(frames).to(torch.float32) / 255.0
    return (2.0 * x - 1.0).permute(3, 0, 1, 2).unsqueeze(0).to(device)


def canvas(image, height: int, width: int, spatial: int, device):
    """A reference image scaled to fit ``height`` x ``width`` (keeping its aspect) and centred on white."""
    import torch
    from diffusers.video_processor import VideoProcessor

    x = VideoProcessor(vae_scale_factor=spatial).preprocess(image, None, None)
    h, w = x.shape[-2:]
    scale = min(height / h, width / w)
    nh, nw = int(h * scale), int(w * scale)
    resized = torch.nn.functional.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False).squeeze(0)
    top, left = (height - nh) // 2, (width - nw) // 2
    out = torch.ones(3, height, width, device=device, dtype=torch.float32)
    out[:, top:top + nh, left:left + nw] = resized
    return out


def video_latents(vae, video, mask, refs, device):
    """The kept and remade pixels encoded and normalised (32 channels), each reference's latent frame in front."""
    import torch

    dtype = vae.dtype
    shape = (1, vae.config.z_dim, 1, 1, 1)
    mean = torch.tensor(vae.config.latents_mean, device=device, dtype=torch.float32).view(shape)
    inv_std = 1.0 / torch.tensor(vae.config.latents_std, device=device, dtype=torch.float32).view(shape)

    def encode(x):
        z = vae.encode(x.to(vae.device, dtype)).latent_dist.mode().to(device)
        return ((z.float() - mean) * inv_std).to(dtype)

    binary = torch.where(mask > 0.5, 1.0, 0.0).to(dtype=dtype)
    video = video.to(dtype)
    latent = torch.cat([encode(video * (1 - binary)), encode(video * binary)], dim=1)[0]
    for ref in refs:
        z = encode(ref.to(dtype)[None, :, None]).squeeze(0)
        latent = torch.cat([torch.cat([z, torch.zeros_like(z)], dim=0), latent], dim=1)
    return latent[None]


def packed_mask(mask, references: int, vae, patch: int):
    """The mask's 8 x 8 pixels as 64 channels per latent pixel, resampled to the latent frames, with a zero frame
    per reference in front: (1, 64, latent frames + references, h, w)."""
    import torch

    spatial, temporal = vae.config.scale_factor_spatial, vae.config.scale_factor_temporal
    m = mask[0, 0]
    frames, height, width = m.shape
    h, w = height // (spatial * patch) * patch, width // (spatial * patch) * patch
    m = m.reshape(frames, h, spatial, w, spatial).permute(2, 4, 0, 1, 3).flatten(0, 1)
    m = torch.nn.functional.interpolate(m.unsqueeze(0), size=((frames + temporal - 1) // temporal, h, w),
                                        mode="nearest-exact").squeeze(0)
    if references:
        m = torch.cat([torch.zeros_like(m[:, :references]), m], dim=1)
    return m[None]


def meta_stream(transformer, frames: int, h: int, w: int) -> dict[str, Any]:
    """The planner's dry run: the control stream's keyword arguments on the meta device."""
    import torch

    meta = meta_kwargs()
    return {"control_hidden_states": torch.zeros(1, transformer.config.vace_in_channels, frames, h, w, **meta),
            "control_hidden_states_scale": torch.ones(len(transformer.config.vace_layers), **meta)}
