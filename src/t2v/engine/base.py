"""The seam between ``generate()`` and a model family.

An engine turns a resolved request into float frames. t2v ships :class:`UNet3DEngine` (ModelScope,
Zeroscope: its own loop). A family served by a stock diffusers pipeline plugs in by registering an
engine whose ``run`` calls the pipeline with ``callback_on_step_end``: report each step through
``on_step`` and, when ``should_cancel()`` is true, set ``pipe._interrupt = True`` and raise
:class:`t2v.errors.Cancelled`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

from t2v.errors import ModelUnavailable

if TYPE_CHECKING:
    import numpy as np

    from t2v.models.loader import LoadedModel
    from t2v.request import GenerationRequest

# on_step(step_done, total_steps, latents); called after each denoising step with the current latents.
StepCallback = Callable[[int, int, Any], None]


@dataclass(frozen=True)
class CheckpointSpec:
    """Save resumable latents to ``path`` every ``every`` steps (and on cancel); resume from it if present."""

    path: Path
    every: int = 0
    resume: bool = True


@dataclass
class EngineRun:
    """What an engine hands back: frames in [0, 1], (F, H, W, 3) float32, plus what it noticed."""

    frames: np.ndarray
    warnings: list[str]
    timings: dict[str, float]
    resumed_from_step: int | None = None


class Engine(Protocol):
    family: str

    def run(
        self,
        model: LoadedModel,
        request: GenerationRequest,
        *,
        on_stage: Callable[[str], None],
        on_step: StepCallback,
        should_cancel: Callable[[], bool],
        checkpoint: CheckpointSpec | None = None,
    ) -> EngineRun: ...


_ENGINES: dict[str, Engine] = {}


def register_engine(engine: Engine) -> None:
    _ENGINES[engine.family] = engine


def engine_for(family: str) -> Engine:
    if not _ENGINES:
        from t2v.engine.unet3d import UNet3DEngine

        register_engine(UNet3DEngine())
    try:
        return _ENGINES[family]
    except KeyError:
        raise ModelUnavailable(
            f"model family {family!r} is not supported yet; supported: {', '.join(sorted(_ENGINES))}"
        ) from None
