"""Input images (image-to-video's first frame) and videos (video-to-video): checked before any model loads,
read once, hashed.

Every front end goes through here: the CLI checks ``--image`` with :func:`check_image` before loading a
model, the service checks uploads with :func:`check_image_bytes` before it stores them, and the runner
reads the frame with :func:`load_image`, whose ``sha256`` (of the file's bytes) goes into the record.

Accepted: PNG, JPEG and WebP files of at most :data:`MAX_IMAGE_BYTES` bytes and :data:`MAX_IMAGE_PIXELS`
pixels, at least :data:`MIN_IMAGE_SIDE` pixels a side. The size is read from the header and refused
before anything is decoded, so a decompression bomb never reaches the decoder; Pillow's own bomb check
(``Image.MAX_IMAGE_PIXELS``) stays on behind it. The image is then fully decoded, so a damaged or
truncated file is refused here rather than half-way through a job. Like ``diffusers.utils.load_image``,
the EXIF orientation is applied and the result converted to RGB (an animated file gives its first frame).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from t2v.errors import InvalidRequest

if TYPE_CHECKING:
    from PIL import Image as PILImage

__all__ = ["IMAGE_TYPES", "MAX_IMAGE_BYTES", "MAX_IMAGE_PIXELS", "MIN_IMAGE_SIDE", "ImageInfo", "InputImage",
           "check_image", "check_image_bytes", "load_image", "InputVideo", "MAX_VIDEO_BYTES", "fit_frames", "load_video"]

MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_IMAGE_PIXELS = 4096 * 4096
MIN_IMAGE_SIDE = 16
#: Pillow's format name -> (content type, file extension). MPO is how Pillow reads many cameras' JPEGs.
IMAGE_TYPES = {"PNG": ("image/png", "png"), "JPEG": ("image/jpeg", "jpg"), "MPO": ("image/jpeg", "jpg"),
               "WEBP": ("image/webp", "webp")}
ACCEPTED = "PNG, JPEG or WebP"


@dataclass(frozen=True)
class ImageInfo:
    """What a checked image file is: type, size in pixels (after its EXIF orientation) and bytes, sha256."""

    format: str  # PNG, JPEG or WEBP
    content_type: str
    extension: str
    width: int
    height: int
    size: int
    sha256: str


@dataclass(frozen=True)
class InputImage:
    """A decoded input image: ``image`` is an RGB PIL image; ``sha256`` is of the file's bytes."""

    image: PILImage.Image
    sha256: str
    width: int
    height: int
    format: str


def check_image(path: str | Path, *, field: str = "image") -> ImageInfo:
    """Check an image file (see the module's docstring); ``InvalidRequest`` naming the problem otherwise."""
    return _decode(_read(path, field), str(path), field)[0]


def check_image_bytes(data: bytes, *, name: str = "the uploaded file", field: str = "image") -> ImageInfo:
    """Check an image given as bytes (an upload); ``name`` says which in the messages."""
    return _decode(data, name, field)[0]


def load_image(path: str | Path, *, field: str = "image") -> InputImage:
    """Read, check and decode an image file: the RGB image, the sha256 of the bytes that were decoded."""
    info, image = _decode(_read(path, field), str(path), field)
    return InputImage(image=image, sha256=info.sha256, width=info.width, height=info.height, format=info.format)


def stat_file(path: Path, field: str, kind: str):
    """``path``'s stat, for a regular file; InvalidRequest naming ``field`` when it is missing, unreadable, a
    folder or not a regular file (``kind``: what to give instead, e.g. "an image file (PNG, JPEG or WebP)")."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InvalidRequest(f"{field}: {path} does not exist", field=field) from None
    except OSError as e:
        raise InvalidRequest(f"{field}: cannot read {path}: {e.strerror or e}", field=field) from None
    if path.is_dir():
        raise InvalidRequest(f"{field}: {path} is a folder; give {kind}", field=field)
    if not path.is_file():
        raise InvalidRequest(f"{field}: {path} is not a regular file; give {kind}", field=field)
    return st


def _read(path: str | Path, field: str) -> bytes:
    path = Path(path)
    st = stat_file(path, field, f"an image file ({ACCEPTED})")
    _check_bytes(st.st_size, str(path), field)
    try:
        with open(path, "rb") as fh:
            return fh.read(MAX_IMAGE_BYTES + 1)  # the file may have grown since stat: checked again on the bytes
    except OSError as e:
        raise InvalidRequest(f"{field}: cannot read {path}: {e.strerror or e}", field=field) from None


def _check_bytes(size: int, name: str, field: str) -> None:
    if size > MAX_IMAGE_BYTES:
        raise InvalidRequest(f"{field}: {name} is {size / 2**20:.1f} MiB; the largest image accepted is "
                             f"{MAX_IMAGE_BYTES / 2**20:g} MiB", field=field)
    if size == 0:
        raise InvalidRequest(f"{field}: {name} is empty; give an image file ({ACCEPTED})", field=field)


def _decode(data: bytes, name: str, field: str) -> tuple[ImageInfo, PILImage.Image]:
    from PIL import Image, ImageOps, UnidentifiedImageError

    _check_bytes(len(data), name, field)
    try:
        header = Image.open(io.BytesIO(data))  # reads the header only
    except UnidentifiedImageError:
        raise InvalidRequest(f"{field}: {name} is not an image ({ACCEPTED} expected)", field=field) from None
    except Image.DecompressionBombError:
        raise InvalidRequest(f"{field}: {name} has too many pixels (a decompression bomb?); the largest image "
                             f"accepted is {_limit()}", field=field) from None
    except Exception as e:  # Pillow raises many kinds on a damaged header
        raise _damaged(name, field, e) from None
    with header:
        fmt, (width, height) = header.format or "unknown", header.size
    if fmt not in IMAGE_TYPES:
        raise InvalidRequest(f"{field}: {name} is a {fmt} image; give a {ACCEPTED} file", field=field)
    if width * height > MAX_IMAGE_PIXELS:
        raise InvalidRequest(f"{field}: {name} is {width}x{height} pixels; the largest image accepted is {_limit()}: "
                             "scale it down", field=field)
    if min(width, height) < MIN_IMAGE_SIDE:
        raise InvalidRequest(f"{field}: {name} is {width}x{height} pixels; it must be at least "
                             f"{MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE}", field=field)
    try:
        with Image.open(io.BytesIO(data)) as check:
            check.verify()  # checksums and structure (PNG chunks' CRCs)
        with Image.open(io.BytesIO(data)) as im:
            im.load()  # every pixel decodes: a truncated file fails here, not in a job
            rgb = ImageOps.exif_transpose(im).convert("RGB")
    except Exception as e:
        raise _damaged(name, field, e) from None
    content_type, extension = IMAGE_TYPES[fmt]
    info = ImageInfo(format="JPEG" if fmt == "MPO" else fmt, content_type=content_type, extension=extension,
                     width=rgb.width, height=rgb.height, size=len(data), sha256=hashlib.sha256(data).hexdigest())
    return info, rgb


def _damaged(name: str, field: str, e: Exception) -> InvalidRequest:
    return InvalidRequest(f"{field}: {name} is damaged or truncated ({type(e).__name__}: {e})", field=field)


def _limit() -> str:
    side = int(MAX_IMAGE_PIXELS ** 0.5)
    return f"{side}x{side} ({MAX_IMAGE_PIXELS:,} pixels)"


# -- input videos (video-to-video) ---------------------------------------------------------------------

MAX_VIDEO_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class InputVideo:
    """A decoded input clip fitted to the request: ``frames`` (F, H, W, 3) uint8 RGB at the request's size and
    frame count; ``sha256`` of the file's bytes; ``source_frames`` and ``fps`` as the file had them."""

    frames: np.ndarray
    sha256: str
    source_frames: int
    fps: float


def load_video(path: str | Path, *, width: int, height: int, num_frames: int, field: str = "video") -> InputVideo:
    """Read, decode and fit a video file: each frame scaled to cover ``width`` x ``height`` and centre-cropped;
    the first ``num_frames`` frames, the clip looped from its start when it has fewer. InvalidRequest naming
    ``field`` for a missing, empty, oversized or undecodable file."""
    from t2v.errors import ExportError
    from t2v.export import decode_video, sha256_file

    path = Path(path)
    st = stat_file(path, field, "a video file (mp4, webm or gif)")
    if st.st_size == 0 or st.st_size > MAX_VIDEO_BYTES:
        raise InvalidRequest(f"{field}: {path} is {'empty' if not st.st_size else f'{st.st_size / 2**20:.0f} MiB'}; "
                             f"give a video file of at most {MAX_VIDEO_BYTES // 2**20} MiB", field=field)
    try:
        frames, fps = decode_video(path)
    except (ExportError, OSError) as e:
        raise InvalidRequest(f"{field}: {path} is not a readable video ({e})", field=field) from None
    fitted = fit_frames(frames, width=width, height=height, num_frames=num_frames)
    return InputVideo(frames=fitted, sha256=sha256_file(path), source_frames=int(frames.shape[0]), fps=fps)


def fit_frames(frames: np.ndarray, *, width: int, height: int, num_frames: int) -> np.ndarray:
    """(F, H, W, 3) uint8 -> (num_frames, height, width, 3): scaled to cover, centre-cropped, taken or looped."""
    from PIL import Image

    index = [i % frames.shape[0] for i in range(num_frames)]
    out = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for k, i in enumerate(index):
        im = Image.fromarray(frames[i])
        scale = max(width / im.width, height / im.height)
        w, h = max(width, round(im.width * scale)), max(height, round(im.height * scale))
        if (w, h) != im.size:
            im = im.resize((w, h), Image.Resampling.LANCZOS)
        left, top = (w - width) // 2, (h - height) // 2
        out[k] = np.asarray(im.crop((left, top, left + width, top + height)))
    return out
