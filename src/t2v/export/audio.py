"""Sound that goes with a clip: what it is (:class:`Audio`), how it is checked, fitted to the video's length,
written (an AAC track in MP4, Opus in WebM, a 16-bit WAV file beside GIF and PNG outputs) and read back.

A clip's record names its sound by ``sample_rate``, ``channels``, ``length_s`` and ``sha256`` (of the samples as
generated, float32 little-endian, before any encoding), so a replay can tell whether it made the same sound.
"""

from __future__ import annotations

import hashlib
import math
import wave
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from t2v.errors import ExportError, InvalidRequest
from t2v.export.files import atomic_path

MIN_RATE, MAX_RATE = 8_000, 192_000
MAX_CHANNELS = 2
MAX_AUDIO_S = 3600  # a sound file read for a clip: at most an hour (clips are at most 600 s; the rest is trimmed)
# Each container's codec and the rate it is encoded at (Opus runs at 48 kHz only; PyAV resamples to it).
CODECS = {"mp4": ("aac", None), "webm": ("libopus", 48_000)}
AAC_BITRATE = 192_000
OPUS_BITRATE = 128_000


@dataclass(frozen=True, eq=False)
class Audio:
    """Samples (channels, n) float32 in [-1, 1] at ``sample_rate`` Hz."""

    samples: np.ndarray
    sample_rate: int

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def length_s(self) -> float:
        return self.samples.shape[1] / self.sample_rate

    @property
    def sha256(self) -> str:
        data = np.ascontiguousarray(self.samples, dtype="<f4")
        return hashlib.sha256(data.tobytes() + f"|{self.sample_rate}|{self.channels}".encode()).hexdigest()

    def to_record(self) -> dict[str, Any]:
        return {"sample_rate": self.sample_rate, "channels": self.channels, "length_s": round(self.length_s, 6),
                "sha256": self.sha256}


def make_audio(samples, sample_rate, *, name: str = "audio") -> Audio:
    """Check and normalise sound from a model or a file: (n,) or (channels, n) samples, finite, 1-2 channels,
    a rate in 8-192 kHz. Integer samples are scaled to [-1, 1]. Raises InvalidRequest naming ``name``."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer, float)) or not math.isfinite(sample_rate):
        raise InvalidRequest(f"{name}: sample rate {sample_rate!r} is not a number", field=name)
    rate = int(round(float(sample_rate)))
    if not MIN_RATE <= rate <= MAX_RATE:
        nearest = min(max(rate, MIN_RATE), MAX_RATE)
        raise InvalidRequest(f"{name}: sample rate {rate} Hz is outside {MIN_RATE}-{MAX_RATE}; nearest valid: {nearest}",
                             field=name)
    arr = np.asarray(samples)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise InvalidRequest(f"{name}: expected (channels, samples) audio, got shape {tuple(arr.shape)}", field=name)
    if arr.shape[0] > arr.shape[1]:  # (samples, channels), as soundfile and WAV readers give it
        arr = arr.T
    if not 1 <= arr.shape[0] <= MAX_CHANNELS:
        raise InvalidRequest(f"{name}: {arr.shape[0]} channels; t2v writes mono or stereo (nearest valid: 2)", field=name)
    if np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise InvalidRequest(f"{name}: the samples hold NaN or infinite values", field=name)
    return Audio(np.clip(arr, -1.0, 1.0), rate)


def fit(audio: Audio, seconds: float) -> Audio:
    """``audio`` trimmed, or padded with silence, to ``seconds`` (the video's length), so the two end together."""
    n = max(1, int(round(seconds * audio.sample_rate)))
    if n <= audio.samples.shape[1]:
        return Audio(audio.samples[:, :n].copy(), audio.sample_rate)
    pad = np.zeros((audio.channels, n - audio.samples.shape[1]), dtype=np.float32)
    return Audio(np.concatenate([audio.samples, pad], axis=1), audio.sample_rate)


def add_stream(container, fmt: str, audio: Audio):
    """An audio stream for ``fmt``'s codec in an open PyAV output ``container``."""
    codec, rate = CODECS[fmt]
    stream = container.add_stream(codec, rate=rate or audio.sample_rate)
    stream.codec_context.layout = "stereo" if audio.channels == 2 else "mono"
    stream.codec_context.bit_rate = AAC_BITRATE if codec == "aac" else OPUS_BITRATE
    return stream


def mux_audio(container, stream, audio: Audio, chunk: int = 4096) -> None:
    """Encode ``audio`` into ``stream`` and mux its packets; PyAV resamples to the codec's format and rate."""
    import av

    layout = "stereo" if audio.channels == 2 else "mono"
    for start in range(0, audio.samples.shape[1], chunk):
        part = np.ascontiguousarray(audio.samples[:, start:start + chunk])
        frame = av.AudioFrame.from_ndarray(part, format="fltp", layout=layout)
        frame.sample_rate = audio.sample_rate
        frame.pts = start
        frame.time_base = Fraction(1, audio.sample_rate)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def write_wav(audio: Audio, path: Path) -> Path:
    """``audio`` as a 16-bit PCM WAV file, atomically."""
    pcm = np.round(audio.samples.T * 32767.0).astype("<i2")
    try:
        with atomic_path(Path(path)) as tmp, wave.open(str(tmp), "wb") as w:
            w.setnchannels(audio.channels)
            w.setsampwidth(2)
            w.setframerate(audio.sample_rate)
            w.writeframes(pcm.tobytes())
    except Exception as e:
        raise ExportError(f"writing {Path(path).name} failed: {e}") from e
    return Path(path)


def read_audio(path: Path, *, name: str = "audio") -> Audio | None:
    """The first audio track of a video or sound file (WAV, MP3, AAC, Opus, FLAC: anything FFmpeg decodes),
    or None when it has none. A file that cannot be decoded raises InvalidRequest naming it."""
    import av

    path = Path(path)
    if not path.is_file():
        raise InvalidRequest(f"{name}: {path.name} is not a file", field=name)
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return None
            stream = container.streams.audio[0]
            chunks, rate = [], stream.codec_context.sample_rate or stream.rate
            length = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else (
                (container.duration or 0) / 1e6)
            if length > MAX_AUDIO_S:
                raise InvalidRequest(f"{name}: {path.name} is {length:.0f} s long, over the {MAX_AUDIO_S}-s limit; trim "
                                     f"it to at most {MAX_AUDIO_S} s (the clip keeps only its own length)", field=name)
            for frame in container.decode(stream):
                arr = frame.to_ndarray()
                if not frame.format.is_planar:  # interleaved (1, n * channels)
                    arr = arr.reshape(-1, len(frame.layout.channels)).T
                if np.issubdtype(arr.dtype, np.integer):
                    arr = arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)
                chunks.append(arr.astype(np.float32))
    except (av.error.FFmpegError, ValueError) as e:
        raise InvalidRequest(f"{name}: {path.name} could not be decoded as audio ({e})", field=name) from None
    if not chunks:
        raise InvalidRequest(f"{name}: {path.name} holds an audio track with no samples", field=name)
    samples = np.concatenate(chunks, axis=1)
    if samples.shape[0] > MAX_CHANNELS:  # 5.1 and the like: keep the front pair
        samples = samples[:2]
    return make_audio(samples, rate, name=name)
