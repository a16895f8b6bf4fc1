"""A clip written while it is being made: a fragmented MP4 (H.264) that grows as parts of the clip are finished
(a long video's segments, a diffusion-forcing model's windows), playable from its first bytes at any moment.

Each frame is its own fragment (``empty_moov`` + ``frag_every_frame``) and is flushed to the file as soon as the
muxer closes it, which it does when the next frame arrives: the file always holds every frame given so far but
the newest, and all of them once closed. The encoder runs without lookahead or B-frames (``zerolatency``), so no
frame waits inside it, with a keyframe every second so a player can start or seek anywhere. A stream is a
preview of the run: the finished file (post-processing, sound, other formats, the embedded record and a front
index) is written by the normal export at the end, from the same frames.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from t2v.export.files import remove_output

logger = logging.getLogger(__name__)

STREAM_CRF = 18
MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof+frag_every_frame"


@dataclass
class StreamSpec:
    """Where a run streams its clip (``path``) and what to do after each part is written (``on_part(path)``: a
    service uploads it where its API processes read it)."""

    path: Path
    on_part: Callable[[Path], None] | None = field(default=None, compare=False)


class ClipStream:
    """The growing fragmented MP4 at ``path``, ``fps`` frames a second. :meth:`frames` is given the clip's
    finished frames so far (uint8 (N, H, W, 3), each call a longer prefix of the same clip) and writes those it
    has not written yet, then calls ``on_part``; :meth:`close` ends the file; :meth:`discard` removes it (a run
    that failed or was cancelled leaves no partial file)."""

    def __init__(self, path: str | Path, fps: float, on_part: Callable[[Path], None] | None = None):
        self.path = Path(path)
        self.fps = fps
        self.on_part = on_part
        self.written = 0
        self._container: Any = None
        self._stream: Any = None

    def _open(self, height: int, width: int) -> None:
        import av

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self.path), "w", format="mp4",
                                  options={"movflags": MOVFLAGS, "flush_packets": "1"})
        rate = _rate(self.fps)
        self._stream = self._container.add_stream("libx264", rate=rate, options={
            "tune": "zerolatency", "preset": "ultrafast", "crf": str(STREAM_CRF), "g": str(max(1, math.ceil(self.fps)))})
        self._stream.width, self._stream.height, self._stream.pix_fmt = width + width % 2, height + height % 2, "yuv420p"

    def frames(self, frames: np.ndarray) -> int:
        """Write ``frames[self.written:]``; returns how many frames the stream holds now."""
        import av

        new = frames[self.written:]
        if not len(new):
            return self.written
        if self._container is None:
            self._open(*new.shape[1:3])
        for array in new:
            if array.shape[0] % 2 or array.shape[1] % 2:  # yuv420p needs even sides: repeat the last row / column
                array = np.pad(array, ((0, array.shape[0] % 2), (0, array.shape[1] % 2), (0, 0)), mode="edge")
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        self.written = len(frames)
        if self.on_part is not None:
            self.on_part(self.path)
        return self.written

    def close(self) -> None:
        """Flush the encoder and end the file (every frame given is in it)."""
        if self._container is None:
            return
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._container = None
        if self.on_part is not None:
            self.on_part(self.path)

    def discard(self) -> None:
        """Stop and remove the file."""
        if self._container is not None:
            try:
                self._container.close()
            except Exception as e:  # noqa: BLE001  the file is removed either way
                logger.debug("closing a discarded stream: %s", e)
            self._container = None
        remove_output(self.path)


def _rate(fps: float):
    from fractions import Fraction

    return Fraction(fps).limit_denominator(1001)
