"""What a model family's run takes and gives back: checkpoint settings and the run's frames.

The families themselves (the spec, the registry) are in :mod:`t2v.families`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import numpy as np

# on_step(step_done, total_steps, latents); called after each denoising step with the current latents.
StepCallback = Callable[[int, int, Any], None]


@dataclass(frozen=True)
class CheckpointSpec:
    """Save resumable latents to ``path`` every ``every`` steps (and on cancel); resume from it if present."""

    path: Path
    every: int = 0
    resume: bool = True
    on_save: Callable[[Path], None] | None = field(default=None, compare=False)  # after each save (e.g. upload it)


@dataclass
class EngineRun:
    """What an engine hands back: (F, H, W, 3) frames, uint8 (converted on the device: :func:`t2v.sampling.vae.video_uint8`)
    or float32 in [0, 1], plus what it noticed."""

    frames: np.ndarray
    warnings: list[str]
    timings: dict[str, float] = field(default_factory=dict)  # seconds of work beside the stages (the runner times those)
    resumed_from_step: int | None = None
    audio: tuple | None = None  # (samples (channels, n) in [-1, 1], sample rate) from a model that makes sound
