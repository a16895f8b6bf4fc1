"""Play a clip in the window: frames decoded by PyAV, shown through Pillow, looping; the finished clip, or a
running job's clip so far (:class:`LiveClip` says when to fetch it again)."""

from __future__ import annotations

import logging
import time
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


def shrink(image, room: tuple[int, int]):
    """``image`` scaled down to fit ``room`` (width, height), as it is when it fits already."""
    from PIL import Image

    w, h = image.size
    scale = min(room[0] / w, room[1] / h)
    if scale >= 1:
        return image
    return image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.LANCZOS)


class Player:
    """Shows frames in a ttk.Label, looping at the clip's fps until :meth:`stop` (Tk thread only); or, after
    :meth:`load`, the frame an outside timer asks for with :meth:`show` (two players kept in step by one timer).
    The pictures shrink to the label's box when the window leaves it less room than they need, so a clip is never
    cut off (and grow back to their own size with the window)."""

    def __init__(self, label) -> None:
        self.label = label
        self.frames: list = []  # the pictures (PIL) behind ``photos``, at their own size
        self.photos: list = []
        self.fitted = None  # the room (width, height) the photos were made for
        self.fit_due = None
        label.bind("<Configure>", self.refit_soon, add="+")
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
        self.stop()
        self.frames, self.current = [image], -1
        self.photos = self.pictures()
        self.label.configure(image=self.photos[0])

    def clear(self) -> None:
        """Nothing shown (after a cancel: the noise of the last preview is not a result)."""
        self.stop()
        self.frames, self.photos, self.current = [], [], -1
        self.label.configure(image="")

    def load(self, frames, fps: float) -> None:
        """Hold the clip's frames without playing them (:meth:`show` puts one on screen)."""
        self.stop()
        self.frames = list(frames)
        self.photos = self.pictures()
        self.index, self.shown, self.current = 0, 0, -1
        self.fps = float(fps)
        self.delay_ms = max(15, round(1000 / max(fps, 1)))

    def room(self) -> tuple[int, int] | None:
        """The room for a picture in the label as laid out: its box less what it needs around its picture (its
        requested size less the picture's); None before it is laid out. A label given what it asks for has room
        for the picture it shows, no more, so a window that takes its size from its widgets never shrinks."""
        label = self.label
        if not label.winfo_ismapped():
            return None
        w, h = label.winfo_width(), label.winfo_height()
        shown = self.picture_size()
        if shown:  # (an empty label's requested size is a line of text's: no measure of its margin)
            w -= label.winfo_reqwidth() - shown[0]
            h -= label.winfo_reqheight() - shown[1]
        return (w, h) if w > 16 and h > 16 else None

    def picture_size(self) -> list[int] | None:
        """The size of the picture on screen (None: none)."""
        name = self.label.cget("image")
        name = str(name[0] if isinstance(name, (tuple, list)) and name else name or "")
        if not name:
            return None
        return [int(self.label.tk.call("image", "width", name)), int(self.label.tk.call("image", "height", name))]

    def pictures(self) -> list:
        """``frames`` as PhotoImages, shrunk to the label's room when they need more."""
        from PIL import ImageTk

        self.fitted = room = self.room()
        return [ImageTk.PhotoImage(shrink(f, room) if room else f) for f in self.frames]

    def refit_soon(self, _event=None) -> None:
        if self.fit_due is None:
            self.fit_due = self.label.after(60, self.refit)

    def refit(self) -> None:
        """Make the photos again when the label's room changed the size they should have."""
        self.fit_due = None
        room = self.room()
        if not self.frames or room is None or room == self.fitted:
            return
        w, h = self.frames[0].size
        old = self.fitted or (w, h)
        if min(1, old[0] / w, old[1] / h) == min(1, room[0] / w, room[1] / h):  # the same scale: nothing to do
            self.fitted = room
            return
        self.photos = self.pictures()
        index = self.current if 0 <= self.current < len(self.photos) else 0
        self.label.configure(image=self.photos[index])

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


class LiveClip:
    """When to fetch the running job's clip so far: one fetch at a time, then again ``every`` seconds (each new
    clip starts the player over); ``frames``: how many the player has of it."""

    def __init__(self, every: float = 3.0):
        self.every, self.frames, self.at, self.busy = every, 0, 0.0, False

    def due(self) -> bool:
        now = time.monotonic()
        if self.busy or (self.frames and now - self.at < self.every):
            return False
        self.busy, self.at = True, now
        return True

    def done(self, frames: int) -> None:
        self.busy, self.frames = False, max(self.frames, frames)
