"""What a post-processing step is: a small registered object (:data:`t2v.post.stage.STEPS`) that says whether a
request asks for it and with what parameters, checks them before any work, and applies itself to a clip. Each
step lives in its own module (deflicker, interpolate, upscale) beside the code it runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from t2v.requests import PostSpec

OnFrame = Callable[[int, int], None]  # (frames done, total): progress, and where a cancel is raised


@dataclass(frozen=True)
class Clip:
    """What the checks know of the clip a step will get: its shape and rate, and the limits of this machine or
    server (None: none)."""

    fps: float
    num_frames: int
    width: int
    height: int
    max_frames: int | None = None
    max_side: int | None = None


class PostStep:
    """One post-processing step. ``params`` returns None when ``spec`` does not ask for it, else the parameters
    the record keeps (they are also what ``apply`` gets)."""

    name: str = ""

    def params(self, spec: PostSpec, fps: float) -> dict[str, Any] | None:
        raise NotImplementedError(f"{type(self).__name__} must define this step method")

    def check(self, spec: PostSpec, params: dict[str, Any], clip: Clip) -> None:
        """Refuse, before any work, what cannot be done (InvalidRequest naming ``post.<field>``)."""

    def output(self, params: dict[str, Any], clip: Clip) -> Clip:
        """The clip this step makes of ``clip`` (its frames and size; the same by default)."""
        return clip

    def apply(self, frames: list[np.ndarray], params: dict[str, Any], fps: float,
              on_frame: OnFrame) -> tuple[list[np.ndarray], float]:
        """The new frames and their fps."""
        raise NotImplementedError(f"{type(self).__name__} must define this step method")
