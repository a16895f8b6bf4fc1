"""What a run reports and returns: :class:`ProgressEvent` (each stage, each step) and :class:`GenerationResult`
(the resolved request, the frames, the record and the files written)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import numpy as np

    from t2v.export import OutputFile
    from t2v.requests.video import GenerationRequest

Stage = Literal["load", "encode_prompt", "denoise", "decode", "post", "export", "done"]


@dataclass(frozen=True)
class ProgressEvent:
    """One progress report. ``step``/``total`` count denoising steps in the ``denoise`` stage."""

    stage: Stage
    step: int = 0
    total: int = 0
    elapsed_s: float = 0.0
    eta_s: float | None = None
    message: str = ""

    @property
    def fraction(self) -> float:
        return self.step / self.total if self.total else 0.0


@dataclass
class GenerationResult:
    """What :func:`t2v.generate` returns: the resolved request, frames, the record and written files."""

    request: GenerationRequest
    frames: np.ndarray  # (F, H, W, 3) uint8 RGB
    record: dict[str, Any]
    outputs: list[OutputFile] = field(default_factory=list)
    sidecar: Path | None = None
    audio: Any = None  # t2v.export.audio.Audio: the clip's sound (models that make it), fitted to the frames

    @property
    def seed(self) -> int:
        return int(self.record["seed"])

    @property
    def warnings(self) -> list[str]:
        return list(self.record.get("warnings", []))
