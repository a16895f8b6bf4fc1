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

from t2v.errors import ExportError, InvalidRequest
from t2v.export import check_frame_size, decode_video, sha256_file

if TYPE_CHECKING:
    from PIL import Image as PILImage

__all__ = ["IMAGE_TYPES", "MAX_IMAGE_BYTES", "MAX_IMAGE_PIXELS", "MIN_IMAGE_SIDE", "ImageInfo", "InputImage",
           "check_image", "check_image_bytes", "load_image", "InputVideo", "MAX_VIDEO_BYTES", "fit_frames", "load_video",
           "VIDEO_TYPES", "VideoInfo", "check_video_bytes", "video_extension"]

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


def clean_image_bytes(data: bytes, *, name: str = "the uploaded file", field: str = "image") -> bytes:
    """The image re-encoded as a PNG of its pixels only (RGB, EXIF orientation applied): whatever else the file
    carried (metadata, private chunks, trailing bytes, further frames) is gone. Checked as
    :func:`check_image_bytes` checks it first."""
    rgb = _decode(data, name, field)[1]
    out = io.BytesIO()
    rgb.save(out, format="PNG")
    return out.getvalue()


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


def load_video(path: str | Path, *, width: int | None, height: int | None, num_frames: int | None, field: str = "video",
               max_frames: int | None = None, fit: bool = True) -> InputVideo:
    """Read, decode and fit a video file: each frame scaled to cover ``width`` x ``height`` and centre-cropped;
    the first ``num_frames`` frames, the clip looped from its start when it has fewer (None: all its frames, at
    most ``max_frames``). Frames past those are never decoded. ``source_frames`` counts the frames decoded.
    ``width`` and ``height`` None: the clip keeps its own size (only its frames are taken, looped or checked).
    ``fit=False``: a clip of another size or frame count is refused instead (InvalidRequest naming both).
    InvalidRequest naming ``field`` for a missing, empty, oversized or undecodable file; the messages name the file
    only, never its folder (on a server, the caller's asset is a file in the server's data folder)."""
    path = Path(path)
    st = stat_file(path, field, "a video file (mp4, webm or gif)")
    if st.st_size == 0 or st.st_size > MAX_VIDEO_BYTES:
        raise InvalidRequest(f"{field}: {path.name} is {'empty' if not st.st_size else f'{st.st_size / 2**20:.0f} MiB'}; "
                             f"give a video file of at most {MAX_VIDEO_BYTES // 2**20} MiB", field=field)
    # Only the frames the request uses are decoded (one more than ``max_frames`` to tell a clip that is too long)
    limit = num_frames if num_frames is not None else (max_frames + 1 if max_frames is not None else None)
    if not fit and limit is not None:
        limit += 1  # one more, to tell a longer clip
    try:
        frames, fps = decode_video(path, max_frames=limit)
    except (ExportError, OSError) as e:
        raise InvalidRequest(f"{field}: {path.name} is not a readable video ({e})", field=field) from None
    own_size = width is None or height is None
    if own_size:
        height, width = int(frames.shape[1]), int(frames.shape[2])
    if num_frames is None:
        if max_frames is not None and len(frames) > max_frames:
            raise InvalidRequest(f"{field}: {path.name} has {len(frames)} frames; give a clip of at most {max_frames} "
                                 "(trim it first)", field=field)
        num_frames = len(frames)
    if not fit and own_size and len(frames) != num_frames:
        count = f"more than {num_frames}" if len(frames) > num_frames else str(len(frames))
        raise InvalidRequest(f"{field}: {path.name} has {count} frames; this run makes {num_frames}: give a clip of "
                             "that length, or fit to cut or loop it", field=field)
    if not fit:
        check_clip_shape(frames.shape[:3], path.name, field, width=width, height=height, num_frames=num_frames)
    fitted = fit_frames(frames, width=width, height=height, num_frames=num_frames)
    return InputVideo(frames=fitted, sha256=sha256_file(path), source_frames=int(frames.shape[0]), fps=fps)


def check_clip_shape(shape: tuple[int, int, int], name: str, field: str, *, width: int, height: int, num_frames: int,
                     counted: bool = False) -> None:
    """InvalidRequest naming ``field`` unless the clip ``name`` of ``shape`` (frames, height, width) is
    ``num_frames`` frames of ``width`` x ``height``. Its frames were decoded up to one past ``num_frames``
    (``counted``: all of them were counted)."""
    n, h, w = shape
    if (w, h) != (width, height) or n != num_frames:
        count = f"more than {num_frames}" if n > num_frames and not counted else str(n)
        raise InvalidRequest(f"{field}: {name} is {w}x{h}, {count} frames; this run makes {width}x{height}, "
                             f"{num_frames} frames: give a clip of that size and length, or fit to scale and cut it",
                             field=field)


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


# -- uploaded videos (video assets: video-to-video's input, POST /v1/post's source) -------------------

#: An uploaded video's container (named by its first bytes) -> its content type; the extension is the key.
VIDEO_TYPES = {"mp4": "video/mp4", "webm": "video/webm", "gif": "image/gif"}
VIDEO_ACCEPTED = "mp4, webm or gif"


@dataclass(frozen=True)
class VideoInfo:
    """What a checked video file is: container, size in pixels, frames, fps, bytes, sha256."""

    content_type: str
    extension: str
    width: int
    height: int
    num_frames: int
    fps: float
    size: int
    sha256: str


def video_extension(data: bytes) -> str | None:
    """The container the file's first bytes name: ``mp4`` (ISO BMFF: mp4, mov), ``webm`` (Matroska) or ``gif``;
    None for anything else."""
    if data[4:8] == b"ftyp":
        return "mp4"
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return None


def check_video_bytes(data: bytes, *, name: str = "the uploaded file", field: str = "file", max_frames: int = 512,
                      max_side: int = 4096, max_cpu_s: float | None = None) -> VideoInfo:
    """Check an uploaded video: an mp4, webm or gif container whose first video stream decodes in full, with 2 to
    ``max_frames`` frames of at most ``max_side`` pixels a side, each of the size its header says (the header's
    size is checked before any frame is decoded, and decoding stops past ``max_frames``, at the first frame of
    another size, or once it has taken ``max_cpu_s`` seconds of this thread's CPU). InvalidRequest naming
    ``field`` and the problem otherwise."""
    import tempfile

    extension = video_extension(data)
    if not data:
        raise InvalidRequest(f"{field}: {name} is empty; give a video file ({VIDEO_ACCEPTED})", field=field)
    if extension is None:
        raise InvalidRequest(f"{field}: {name} is not a video ({VIDEO_ACCEPTED} expected)", field=field)
    with tempfile.TemporaryDirectory(prefix="t2v-upload-") as tmp:
        path = Path(tmp) / f"upload.{extension}"
        path.write_bytes(data)
        width, height, frames, fps = _probe_video(path, name, field, max_frames, max_side, max_cpu_s)
        if extension == "gif":
            _check_gif_frames(path, data, name, field, max_frames)
    if frames < 2:
        what = "a GIF image with a single frame" if extension == "gif" else "a video with a single frame"
        raise InvalidRequest(f"{field}: {name} is {what}; give a video ({VIDEO_ACCEPTED}) of at least 2 frames, or "
                             f"an image as {ACCEPTED}", field=field)
    return VideoInfo(content_type=VIDEO_TYPES[extension], extension=extension, width=width, height=height,
                     num_frames=frames, fps=round(fps, 3), size=len(data), sha256=hashlib.sha256(data).hexdigest())


def _check_gif_frames(path: Path, data: bytes, name: str, field: str, max_frames: int) -> None:
    """Every frame of a GIF inside its logical screen (the size in its header, which PyAV reports and
    :func:`_probe_video` checked). Pillow, which decodes GIFs for t2v, grows its canvas to hold a frame that
    reaches past the screen: a 3 KB file could then decode to frames of 13000x13000 pixels. Each frame's extent
    is read before it is decoded, so a hostile file is refused without allocating its canvas."""
    from PIL import Image

    screen = (int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little"))
    try:
        with Image.open(path) as im:
            index = 0
            while True:
                if im.size != screen:
                    raise InvalidRequest(f"{field}: {name} has a frame ({index + 1}) that reaches outside the GIF's "
                                         f"{screen[0]}x{screen[1]} screen (to {im.size[0]}x{im.size[1]}): re-save it "
                                         "with every frame inside the picture", field=field)
                index += 1
                if index > max_frames:
                    return  # _probe_video counted the frames
                try:
                    im.seek(index)
                except EOFError:
                    return
    except InvalidRequest:
        raise
    except Exception as e:
        raise InvalidRequest(f"{field}: {name} is not a readable GIF ({type(e).__name__}: {e})", field=field) from None


def _probe_video(path: Path, name: str, field: str, max_frames: int, max_side: int,
                 max_cpu_s: float | None = None) -> tuple[int, int, int, float]:
    import time

    import av

    started = time.thread_time()

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InvalidRequest(f"{field}: {name} holds no video stream ({VIDEO_ACCEPTED} expected)", field=field)
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            if max(width, height) > max_side:
                raise InvalidRequest(f"{field}: {name} is {width}x{height} pixels; the largest video accepted is "
                                     f"{max_side} pixels a side: scale it down", field=field)
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            stream.codec_context.thread_count = 1  # decoded in this thread: one core at most, and its CPU time counted
            frames = 0
            for frame in container.decode(stream):  # every frame the size the header says (the budget counts it)
                check_frame_size(frame, (width, height), frames + 1, name)
                frames += 1
                if max_cpu_s is not None and time.thread_time() - started > max_cpu_s:
                    raise InvalidRequest(f"{field}: {name} took more than {max_cpu_s:g} s of CPU to decode its first "
                                         f"{frames} frames, the most an upload may take here (T2V_UPLOAD_DECODE_S): "
                                         "give a shorter or smaller clip", field=field)
                if frames > max_frames:
                    raise InvalidRequest(f"{field}: {name} has more than {max_frames} frames, the most accepted: "
                                         "trim it first", field=field)
    except InvalidRequest:
        raise
    except ExportError as e:
        raise InvalidRequest(f"{field}: {e}", field=field) from None
    except Exception as e:  # av's InvalidDataError and the like: a damaged, truncated or unknown file
        raise InvalidRequest(f"{field}: {name} is not a readable video: damaged, truncated or of another kind "
                             f"({VIDEO_ACCEPTED} expected; {type(e).__name__}: {e})", field=field) from None
    if not frames or min(width, height) < 1:
        raise InvalidRequest(f"{field}: {name} holds no frames that decode (damaged or truncated?); give a video file "
                             f"({VIDEO_ACCEPTED})", field=field)
    return width, height, frames, float(rate) if rate else 0.0


# -- what decoding a clip will hold, known before it is decoded ---------------------------------------------------


def probe_video(path: str | Path, *, field: str = "video") -> tuple[int, int, int, float]:
    """(frames, width, height, fps) of a video file from its container alone (the header's size, its packets
    counted), decoding only its first frame to check that it has the header's size: what decoding it whole would
    hold is frames x width x height x 3 bytes (the decoder stops at any later frame of another size).
    InvalidRequest naming ``field`` for a file that is not a readable video or whose frames lie about their size."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            frames = stream.frames or sum(1 for packet in container.demux(stream) if packet.size)
        with av.open(str(path)) as container:  # the header's size is what the budget counts: the frames must agree
            stream = container.streams.video[0]
            for frame in container.decode(stream):
                check_frame_size(frame, (width, height), 1, Path(path).name)
                break
    except ExportError as e:
        raise InvalidRequest(f"{field}: {str(e).split(': ', 1)[1]}", field=field) from None
    except Exception as e:  # av's errors, IndexError (no video stream)
        raise InvalidRequest(f"{field}: the clip is not a readable video ({type(e).__name__}: {e})",
                             field=field) from None
    return int(frames), int(width), int(height), float(rate) if rate else 0.0


def check_decode_fits(field: str, frames: int, width: int, height: int, budget: int, *, what: str = "decoding") -> None:
    """Refuse (InvalidRequest naming ``field``) holding ``frames`` RGB frames of ``width`` x ``height`` when they
    take more than ``budget`` bytes, saying how many frames of that size would fit."""
    need = frames * width * height * 3
    if need <= budget:
        return
    fit = budget // max(1, width * height * 3)
    raise InvalidRequest(f"{field}: {what} {frames} frames of {width}x{height} holds {need / 2**30:.1f} GiB, over "
                         f"this server's memory budget of {budget / 2**30:.1f} GiB (T2V_MEMORY_BUDGET_GB); at most "
                         f"{fit} frames at that size, or a smaller clip", field=field)
