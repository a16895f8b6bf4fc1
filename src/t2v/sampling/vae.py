"""VAE decode of video latents in frame chunks (bounded memory for long clips)."""

from __future__ import annotations

import numpy as np
from t2v.sampling.v2v import pixels

DEFAULT_CHUNK = 8
# Most frames per VAE decode call on the CPU, whatever the memory plan asks. Batching frames buys no speed
# there (one CPU conv is already big enough to fill the cores), while activations grow with the batch: on
# the SD VAE at 256x256, 2 frames per call decode bitwise the same frames as 8, as fast (41.8 s vs 43.6 s
# for 8 frames on 2 cores), with ~1.2-1.4 GB less peak RSS (see docs/benchmarks.md).
CPU_MAX_CHUNK = 2


def decode_chunk(requested: int, num_frames: int, device: str) -> int:
    """Frames per VAE decode call: ``requested`` (0: all), at most :data:`CPU_MAX_CHUNK` on the CPU."""
    chunk = requested or num_frames
    return min(chunk, CPU_MAX_CHUNK) if device.startswith("cpu") else chunk


def decode_latents(vae, latents, *, chunk: int = DEFAULT_CHUNK) -> np.ndarray:
    """(1, C, F, h, w) latents -> (F, H, W, 3) float32 frames in [0, 1]."""
    import torch

    b, c, f, h, w = latents.shape
    flat = (latents / vae.config.scaling_factor).permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
    out = []
    with torch.inference_mode():
        for i in range(0, flat.shape[0], chunk):
            img = vae.decode(flat[i : i + chunk].to(vae.dtype)).sample
            out.append((img.float() / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).cpu())
    return torch.cat(out).numpy()


def encode_frames(vae, frames: np.ndarray, *, chunk: int = DEFAULT_CHUNK):
    """(F, H, W, 3) uint8 frames -> (1, C, F, h, w) latents, the inverse of :func:`decode_latents`: each frame
    through a per-frame VAE (the latent distribution's mode, so the same frames always give the same
    latents), times the VAE's scaling factor."""
    import torch

    x = pixels(frames, vae.device, vae.dtype)[0].permute(1, 0, 2, 3)  # (F, 3, H, W)
    out = []
    with torch.inference_mode():
        for i in range(0, x.shape[0], chunk):
            out.append(vae.encode(x[i : i + chunk]).latent_dist.mode().float())
    latents = torch.cat(out) * vae.config.scaling_factor
    return latents.permute(1, 0, 2, 3).unsqueeze(0)


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """[0, 1] float frames -> uint8, rounded (uint8 frames, as :func:`video_uint8` makes them, pass as they are)."""
    if frames.dtype == np.uint8:
        return frames
    return np.clip(np.round(frames * 255.0), 0, 255).astype(np.uint8)


def video_uint8(processor, video) -> np.ndarray:
    """The first video of a decoded (B, C, F, H, W) batch in [-1, 1] -> (F, H, W, 3) uint8 frames, converted where
    the video is (on a GPU, not on the CPU): ``processor.postprocess_video``'s own arithmetic, in the video's dtype,
    then ``* 255``, rounded half to even and clamped in float32 as :func:`to_uint8` does. The frames are bitwise
    those of ``to_uint8(processor.postprocess_video(video, output_type="np")[0])``, and only a quarter of the
    bytes cross to the host."""
    import torch

    frames = processor.postprocess_video(video[:1], output_type="pt")[0]  # (F, C, H, W) in [0, 1]
    frames = (frames.float() * 255.0).round_().clamp_(0, 255).to(torch.uint8)
    return frames.permute(0, 2, 3, 1).contiguous().cpu().numpy()


# Linear map from SD 1.x VAE latents to RGB (the "latent2rgb" preview trick): no VAE call needed.
_LATENT_RGB = ((0.3512, 0.2297, 0.3227), (0.3250, 0.4974, 0.2350), (-0.2829, 0.1762, 0.2721), (-0.2120, -0.2616, -0.7177))


def latent_preview(latents, scale: int = 8) -> np.ndarray:
    """A cheap RGB preview (uint8, H x W x 3) of the middle frame of (1, 4, F, h, w) latents."""
    import torch

    frame = latents[0, :, latents.shape[2] // 2].float().cpu()  # (4, h, w)
    if frame.shape[0] != 4:
        frame = frame[:3] if frame.shape[0] >= 3 else frame.repeat(3, 1, 1)[:3]
        rgb = frame.permute(1, 2, 0)
    else:
        rgb = torch.einsum("chw,cr->hwr", frame, torch.tensor(_LATENT_RGB))
    img = ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    return img.repeat(scale, axis=0).repeat(scale, axis=1)
