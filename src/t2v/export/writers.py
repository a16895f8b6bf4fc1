"""Video/image writers: MP4 (H.264, AAC sound), WebM (VP9, Opus sound), GIF and PNG frame directories (sound in
a WAV file beside them: ``t2v.export.audio``).

Every writer is atomic: output is produced under a hidden ``.part`` name in the
destination directory and renamed into place only when complete, so a failure
(or Ctrl-C) never leaves a partial file under the final name.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from t2v.errors import ExportError, OutputNotWritable
from t2v.export.audio import Audio, add_stream, mux_audio, write_wav
from t2v.export.files import atomic_path, remove_output
from t2v.export.metadata import PNG_KEY, sha256_file, sha256_files

logger = logging.getLogger(__name__)

FORMATS = ("mp4", "webm", "gif", "png")
EXTENSIONS = {"mp4": ".mp4", "webm": ".webm", "gif": ".gif", "png": "_frames"}

MP4_CRF = 18
# At CRF 18 the fast presets decode to about the same PSNR; "veryfast" was only
# ~3x faster than diffusers' export_to_video (docs/benchmarks.md), so: ultrafast,
# with the cheap tools it drops turned back on: CABAC + 8x8dct (~30% smaller
# files, a real High-profile stream instead of Constrained Baseline) and the
# deblocking filter. (Adaptive quantisation cost ~20% time and +50% size.)
MP4_PRESET = "ultrafast"
MP4_X264_PARAMS = "cabac=1:8x8dct=1:deblock=1"
WEBM_CRF = 32


@dataclass(frozen=True)
class OutputFile:
    """One written output: a file, or for ``png`` a directory of frames."""

    format: str
    path: Path
    bytes: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "file": self.path.name, "bytes": self.bytes, "sha256": self.sha256}


def check_writable(directory: Path) -> None:
    """Create ``directory`` if needed and prove a file can be created in it."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        reason = e.strerror or str(e)
        raise OutputNotWritable(f"cannot create output directory {directory}: {reason}", field="output") from e
    if not directory.is_dir():
        raise OutputNotWritable(f"output path {directory} is not a directory", field="output")
    try:
        # An unnamed file where the OS has them (O_TMPFILE): a process killed here leaves nothing behind.
        with tempfile.TemporaryFile(prefix=".t2v-probe-", dir=directory):
            pass
    except OSError as e:
        reason = e.strerror or str(e)
        raise OutputNotWritable(f"output directory {directory} is not writable: {reason}", field="output") from e


def _validate(frames: np.ndarray, fmt: str, fps: float, crf: int | None) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"unknown output format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if not isinstance(frames, np.ndarray):
        raise ExportError(f"frames must be a numpy array, got {type(frames).__name__}")
    if frames.dtype != np.uint8:
        raise ExportError(f"frames must be uint8, got {frames.dtype}")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ExportError(f"frames must have shape (F, H, W, 3), got {frames.shape}")
    n, h, w = frames.shape[:3]
    if n == 0:
        raise ExportError("no frames to write")
    if h == 0 or w == 0:
        raise ExportError(f"frames have an empty size {w}x{h}")
    if fmt in ("mp4", "webm") and (h % 2 or w % 2):
        raise ExportError(f"{fmt} needs an even width and height (yuv420p), got {w}x{h}")
    if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not math.isfinite(fps) or fps <= 0:
        raise ExportError(f"fps must be a positive number, got {fps!r}")
    if crf is not None:
        top = 51 if fmt == "mp4" else 63
        if isinstance(crf, bool) or not isinstance(crf, numbers.Integral) or not 0 <= crf <= top:
            raise ExportError(f"crf for {fmt} must be an integer in 0..{top}, got {crf!r}")


def _mux_frame(container: Any, stream: Any, array: np.ndarray, index: int) -> None:
    """Encode one RGB frame and mux the resulting packets."""
    import av

    frame = av.VideoFrame.from_ndarray(array, format="rgb24")
    frame.pts = index
    container.mux(stream.encode(frame))


def _encode_av(frames: np.ndarray, tmp: Path, fmt: str, fps: float, comment: str | None, crf: int | None,
               audio: Audio | None = None) -> None:
    import av

    rate = Fraction(fps).limit_denominator(1001)
    if fmt == "mp4":
        codec, muxer, container_options = "libx264", "mp4", {"movflags": "+faststart"}
        options = {"crf": str(MP4_CRF if crf is None else crf), "preset": MP4_PRESET, "profile": "high"}
        options["x264-params"] = MP4_X264_PARAMS
    else:  # VP9 constant quality (b=0), tuned for speed
        codec, muxer, container_options = "libvpx-vp9", "webm", {}
        options = {"crf": str(WEBM_CRF if crf is None else crf), "b": "0", "deadline": "realtime"}
        options.update({"cpu-used": "8", "row-mt": "1"})
    container = av.open(str(tmp), mode="w", format=muxer, container_options=container_options)
    try:
        if comment is not None:
            container.metadata["comment"] = comment
        stream = container.add_stream(codec, rate=rate, options=options)
        stream.width = int(frames.shape[2])
        stream.height = int(frames.shape[1])
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(rate.denominator, rate.numerator)
        sound = None if audio is None else add_stream(container, fmt, audio)
        for i in range(frames.shape[0]):
            _mux_frame(container, stream, frames[i], i)
        container.mux(stream.encode(None))
        if sound is not None:
            mux_audio(container, sound, audio)
    except BaseException:
        try:
            container.close()
        except Exception:  # the original error matters, not the cleanup one
            pass
        raise
    container.close()


def _encode_gif(frames: np.ndarray, tmp: Path, fps: float, comment: str | None) -> None:
    from PIL import Image

    images = [
        Image.fromarray(np.ascontiguousarray(f)).convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
        for f in frames
    ]
    kwargs: dict[str, Any] = {} if comment is None else {"comment": comment.encode("ascii")}
    # GIF delays are in 1/100 s, so e.g. 8 fps (125 ms) is stored as 120 ms.
    # Pillow merges identical consecutive frames into one longer frame.
    duration = max(1, round(1000 / fps))
    with open(tmp, "wb") as fh:
        images[0].save(fh, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0, **kwargs)


def _save_png_frame(array: np.ndarray, path: Path, comment: str | None) -> None:
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = None
    if comment is not None:
        info = PngInfo()
        info.add_text(PNG_KEY, comment)
    Image.fromarray(np.ascontiguousarray(array)).save(path, format="PNG", pnginfo=info)


def write_image(array: np.ndarray, path: Path, *, metadata: dict | None = None) -> OutputFile:
    """One (H, W, 3) uint8 image as a PNG file with the record in a tEXt chunk, atomically."""
    path = Path(path)
    comment = None if metadata is None else json.dumps(metadata, ensure_ascii=True, sort_keys=True)
    try:
        with atomic_path(path) as tmp:
            _save_png_frame(array, tmp, comment)
    except Exception as e:
        raise ExportError(f"writing {path.name} failed: {e}") from e
    return _describe("png", path)


def _describe(fmt: str, path: Path) -> OutputFile:
    if path.is_dir():
        digest, total = sha256_files(sorted(path.glob("frame_*.png")))
        return OutputFile(fmt, path, total, digest)
    return OutputFile(fmt, path, path.stat().st_size, sha256_file(path))


def write_video(
    frames: np.ndarray,
    path: Path,
    fmt: str,
    fps: float,
    *,
    metadata: dict | None = None,
    crf: int | None = None,
    audio: Audio | None = None,
) -> OutputFile:
    """Write ``frames`` (uint8, (F, H, W, 3) RGB) to ``path`` as ``fmt``, atomically; ``audio`` becomes the file's
    sound track in MP4 and WebM (GIF and PNG have none: :func:`write_outputs` writes it beside them)."""
    path = Path(path)
    _validate(frames, fmt, fps, crf)
    comment = None if metadata is None else json.dumps(metadata, ensure_ascii=True, sort_keys=True)
    try:
        with atomic_path(path, is_dir=(fmt == "png")) as tmp:
            if fmt in ("mp4", "webm"):
                _encode_av(frames, tmp, fmt, float(fps), comment, None if crf is None else int(crf), audio)
            elif fmt == "gif":
                _encode_gif(frames, tmp, float(fps), comment)
            else:
                tmp.mkdir()
                for i in range(frames.shape[0]):
                    _save_png_frame(frames[i], tmp / f"frame_{i:05d}.png", comment)
    except ExportError:
        raise
    except Exception as e:
        raise ExportError(f"writing {path.name} failed: {e}") from e
    out = _describe(fmt, path)
    logger.debug("wrote %s (%d bytes, %d frames)", path, out.bytes, frames.shape[0])
    return out


def write_outputs(
    frames: np.ndarray,
    stem: Path,
    formats: Sequence[str],
    fps: float,
    *,
    metadata: dict | None = None,
    crf: int | None = None,
    on_file: Callable[[OutputFile], None] | None = None,
    audio: Audio | None = None,
) -> list[OutputFile]:
    """Write one output per format to ``stem`` + extension; all or nothing. With ``audio``, MP4 and WebM carry it
    and, when GIF or PNG is among the formats, ``stem.wav`` holds it beside them (format "wav")."""
    stem = Path(stem)
    unique = list(dict.fromkeys(formats))
    for fmt in unique:
        if fmt not in FORMATS:
            raise ExportError(f"unknown output format {fmt!r}; expected one of {', '.join(FORMATS)}")
    check_writable(stem.parent)
    written: list[OutputFile] = []
    try:
        for fmt in unique:
            target = stem.with_name(stem.name + EXTENSIONS[fmt])
            out = write_video(frames, target, fmt, fps, metadata=metadata, crf=crf, audio=audio)
            written.append(out)
            if on_file is not None:
                on_file(out)
        if audio is not None and {"gif", "png"} & set(unique):
            wav = write_wav(audio, stem.with_name(stem.name + ".wav"))
            written.append(OutputFile("wav", wav, wav.stat().st_size, sha256_file(wav)))
            if on_file is not None:
                on_file(written[-1])
    except BaseException:
        for out in written:
            remove_output(out.path)
        raise
    return written


def decode_video(path: Path, max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """Decode an mp4/webm/gif into ((F, H, W, 3) uint8 RGB, fps): its first ``max_frames`` frames (None: all).

    Decoding is streamed into one array: each frame is converted and copied into its place as it is decoded,
    so the clip is held once (no list of frames stacked into a second copy), and nothing past ``max_frames``
    is decoded at all."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"cannot decode {path}: no such file")
    try:
        if path.suffix.lower() == ".gif":
            return _decode_gif(path, max_frames)
        return _decode_av(path, max_frames)
    except ExportError:
        raise
    except Exception as e:  # PyAV's messages quote the whole path: name the file only
        raise ExportError(f"decoding {path.name} failed: {str(e).replace(str(path), path.name)}") from e


class FrameBuffer:
    """Frames appended one at a time into one uint8 array that grows by doubling up to ``limit`` frames (or
    is sized once when the count is known): the decoded clip is never held twice."""

    def __init__(self, limit: int | None, expected: int | None = None):
        self.limit, self.expected, self.data, self.count = limit, expected, None, 0

    def full(self) -> bool:
        return self.limit is not None and self.count >= self.limit

    def add(self, frame: np.ndarray) -> None:
        if self.data is None:
            n = self.expected or 8
            self.data = np.empty((min(n, self.limit) if self.limit else n, *frame.shape), dtype=np.uint8)
        elif frame.shape != self.data.shape[1:]:
            raise ExportError(f"frame {self.count + 1} is {frame.shape[1]}x{frame.shape[0]} pixels, the first "
                              f"{self.data.shape[2]}x{self.data.shape[1]}; every frame must have the same size")
        if self.count == len(self.data):
            grown = len(self.data) * 2 if self.limit is None else min(len(self.data) * 2, self.limit)
            bigger = np.empty((grown, *self.data.shape[1:]), dtype=np.uint8)
            bigger[: self.count] = self.data
            self.data = bigger
        self.data[self.count] = frame
        self.count += 1

    def frames(self, name: str) -> np.ndarray:
        if not self.count:
            raise ExportError(f"{name} holds no video frames")
        return self.data[: self.count]


def _decode_av(path: Path, max_frames: int | None = None) -> tuple[np.ndarray, float]:
    import av
    from av.video.reformatter import VideoReformatter

    reformatter = VideoReformatter()  # one cached swscale context for all frames
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        buffer = FrameBuffer(max_frames, stream.frames or None)
        declared = (stream.codec_context.width, stream.codec_context.height)
        for frame in container.decode(stream):
            check_frame_size(frame, declared, buffer.count + 1, path.name)
            buffer.add(reformatter.reformat(frame, format="rgb24").to_ndarray())
            if buffer.full():
                break
    return buffer.frames(path.name), float(rate) if rate else 0.0


def check_frame_size(frame, declared: tuple[int, int], number: int, name: str) -> None:
    """ExportError unless decoded ``frame`` (number ``number``) has the size its container ``declared`` (width,
    height; (0, 0): the container says none). What a clip will hold is checked from its header before it is
    decoded, so a header that understates its frames (64x64 said, 4096x4096 coded) must stop the decode at
    the first frame that differs, before any is converted or kept."""
    if declared[0] and (frame.width, frame.height) != declared:
        raise ExportError(f"{name}: frame {number} is {frame.width}x{frame.height} pixels while its container says "
                          f"{declared[0]}x{declared[1]}; give a clip whose frames have the size its header states")


def _decode_gif(path: Path, max_frames: int | None = None) -> tuple[np.ndarray, float]:
    from PIL import Image, ImageSequence

    durations = []
    with Image.open(path) as im:
        size = im.size
        buffer = FrameBuffer(max_frames, getattr(im, "n_frames", None))
        for frame in ImageSequence.Iterator(im):
            if frame.size != size:  # Pillow grew its canvas for a frame past the first's extent: refuse, not allocate
                raise ExportError(f"{path.name}: frame {buffer.count + 1} is {frame.size[0]}x{frame.size[1]} pixels, "
                                  f"the first {size[0]}x{size[1]}; every frame of a GIF must have the same size")
            buffer.add(np.asarray(frame.convert("RGB")))
            durations.append(frame.info.get("duration", 0) or 0)
            if buffer.full():
                break
    mean = sum(durations) / len(durations) if durations else 0
    return buffer.frames(path.name), (1000.0 / mean if mean > 0 else 0.0)
