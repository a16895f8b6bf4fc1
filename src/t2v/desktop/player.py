"""Play a finished clip in the window: frames decoded by PyAV, shown through Pillow, looping."""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)

MAX_FRAMES = 600  # a longer clip plays its first 600 frames (memory)


def decode(path: str | Path, *, max_side: int = 512):
    """The clip's frames as PIL images (scaled up or down so the longer side is ``max_side``) and its fps."""
    import av

    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 8)
        for frame in container.decode(stream):
            frames.append(fit(frame.to_image(), max_side))
            if len(frames) >= MAX_FRAMES:
                break
    if not frames:
        raise ValueError(f"{Path(path).name} holds no video frames")
    return frames, fps


def fit(image, max_side: int):
    """``image`` scaled so its longer side is ``max_side`` (nearest-neighbour when enlarging small clips)."""
    from PIL import Image

    w, h = image.size
    scale = max_side / max(w, h)
    if abs(scale - 1) < 1e-6:
        return image
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return image.resize(size, Image.NEAREST if scale > 1 else Image.LANCZOS)


class Player:
    """Shows frames in a ttk.Label, looping at the clip's fps until :meth:`stop` (Tk thread only); or, after
    :meth:`load`, the frame an outside timer asks for with :meth:`show` (two players kept in step by one timer)."""

    def __init__(self, label) -> None:
        self.label = label
        self.photos: list = []
        self.index = 0  # the next frame the player's own timer shows
        self.current = -1  # the frame on screen (-1: none of the clip's)
        self.fps = 8.0
        self.delay_ms = 125
        self.after_id = None
        self.shown = 0  # frames shown since the last start (tests read it)

    @property
    def playing(self) -> bool:
        return self.after_id is not None

    def show_still(self, image) -> None:
        """One picture (a live preview or a poster), stopping any clip."""
        from PIL import ImageTk

        self.stop()
        self.photos = [ImageTk.PhotoImage(image)]
        self.label.configure(image=self.photos[0])

    def clear(self) -> None:
        """Nothing shown (after a cancel: the noise of the last preview is not a result)."""
        self.stop()
        self.photos, self.current = [], -1
        self.label.configure(image="")

    def load(self, frames, fps: float) -> None:
        """Hold the clip's frames without playing them (:meth:`show` puts one on screen)."""
        from PIL import ImageTk

        self.stop()
        self.photos = [ImageTk.PhotoImage(f) for f in frames]
        self.index, self.shown, self.current = 0, 0, -1
        self.fps = float(fps)
        self.delay_ms = max(15, round(1000 / max(fps, 1)))

    def start(self, frames, fps: float) -> None:
        self.load(frames, fps)
        self.tick()

    def show(self, index: int) -> None:
        """Put frame ``index`` of the loaded clip on screen."""
        self.label.configure(image=self.photos[index])
        self.current = index
        self.shown += 1

    def tick(self) -> None:
        if not self.photos:
            return
        self.show(self.index)
        self.index = (self.index + 1) % len(self.photos)
        self.after_id = self.label.after(self.delay_ms, self.tick)

    def stop(self) -> None:
        if self.after_id is not None:
            try:
                self.label.after_cancel(self.after_id)
            except Exception:  # the window is gone
                pass
            self.after_id = None
