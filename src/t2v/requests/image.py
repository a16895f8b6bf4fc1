"""Image mode's requests: ``SequenceRequest`` (keyframe prompts -> a coherent video, ``t2v sequence``) and
``ImageRequest`` (``t2v image``).

Both extend :class:`~t2v.requests.video.GenerationRequest`, so model, size, steps, guidance, scheduler, seed,
formats, device and dtype are validated exactly as for a video request.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import field_validator, model_validator

from t2v.requests.base import knob
from t2v.requests.keyframes import parse_keyframes
from t2v.requests.video import GenerationRequest

METHODS = ("latent-walk", "prompt-interp", "img2img", "interpolate", "independent")


IMAGE_MODEL_HELP = "Text-to-image model: registry id, hub id or folder (default: T2V_DEFAULT_IMAGE_MODEL, SD 1.5)."


class ImageRequest(GenerationRequest):
    """``t2v image``: ``count`` images with seeds ``seed``, ``seed + 1``, ... (num_frames is unused)."""

    mode: Literal["image"] = knob("image", cli="", help="The kind of request: image.")
    count: int = knob(1, ge=1, le=64, cli="--count -n", help="How many images (seeds seed, seed+1, ...).")
    model: str | None = knob(None, max_length=4096, cli="--model -m", help=IMAGE_MODEL_HELP)


class SequenceRequest(GenerationRequest):
    """``t2v sequence``: one image per frame from keyframe prompts, kept coherent by ``method``.

    ``prompt`` is filled from the keyframes (for listing and search); ``num_frames`` is the last keyframe
    index + 1. ``strength``, ``zoom``, ``pan_x``, ``pan_y`` and ``rotate`` apply to ``img2img``.
    """

    mode: Literal["sequence"] = knob("sequence", cli="", help="The kind of request: sequence.")
    prompt: str = knob("", cli="", api=False, help="Filled from the keyframes (for listing and search).")
    model: str | None = knob(None, max_length=4096, cli="--model -m", help=IMAGE_MODEL_HELP)
    keyframes: tuple[tuple[int, str], ...] = knob(..., cli="", help=(
        "Keyframes 'INDEX: prompt', index 0 first, e.g. '0: a forest in spring' '48: autumn'."))
    method: str = knob("latent-walk", help="latent-walk, prompt-interp, img2img, interpolate or independent.")
    strength: float = knob(0.55, gt=0.0, le=1.0, help="img2img: how much each frame may change, (0, 1].")
    zoom: float = knob(1.0, ge=0.5, le=2.0, help="img2img camera: scale per frame (1.02 zooms in 2%).")
    pan_x: float = knob(0.0, ge=-64, le=64, help="img2img camera: pixels per frame to the right.")
    pan_y: float = knob(0.0, ge=-64, le=64, help="img2img camera: pixels per frame down.")
    rotate: float = knob(0.0, ge=-45, le=45, help="img2img camera: degrees per frame, counter-clockwise.")
    contact_sheet: bool = knob(False, help="Also write OUT.contact.png, a grid of the frames.")
    denoise_grid: tuple[int, ...] = knob((), help=(
        "Steps to show in a denoise grid (OUT.denoise.png): '1,5,10,25' or 'auto' (four evenly spaced)."))

    @field_validator("keyframes", mode="before")
    @classmethod
    def _keyframes(cls, v: Any) -> tuple[tuple[int, str], ...]:
        return parse_keyframes(v)

    @field_validator("method")
    @classmethod
    def _method(cls, v: str) -> str:
        v = v.lower()
        if v not in METHODS:
            raise ValueError(f"unknown method {v!r}; choose one of: {', '.join(METHODS)}")
        return v

    @field_validator("denoise_grid", mode="before")
    @classmethod
    def _grid(cls, v: Any) -> tuple[int, ...]:
        if isinstance(v, str):
            if v.strip().lower() == "auto":
                return (0,)  # four evenly spaced steps, chosen once the step count is known
            v = [p for p in v.split(",") if p.strip()]
            if not all(p.strip().isdigit() for p in v):
                raise ValueError(f"{v!r}: give step numbers like '1,5,10,25' or 'auto'")
        steps = sorted({int(s) for s in v or ()})
        if any(s < 0 for s in steps) or (0 in steps and len(steps) > 1):
            raise ValueError("steps must be 1 or more")
        return tuple(steps)

    @model_validator(mode="before")
    @classmethod
    def _derive(cls, data: Any) -> Any:
        if isinstance(data, dict) and "keyframes" in data:
            try:
                frames = parse_keyframes(data["keyframes"])
            except ValueError:
                return data  # the field validator reports it
            n = frames[-1][0] + 1
            if data.get("num_frames") not in (None, n):
                raise ValueError(f"num_frames: the keyframes make {n} frames, not {data['num_frames']}")
            data = {**data, "num_frames": n, "prompt": data.get("prompt") or " | ".join(p for _, p in frames)}
        return data

    @model_validator(mode="after")
    def _grid_steps(self) -> SequenceRequest:
        if self.denoise_grid == (0,) and self.num_inference_steps:
            n = self.num_inference_steps
            object.__setattr__(self, "denoise_grid", tuple(sorted({max(1, round(n * k / 4)) for k in (1, 2, 3, 4)})))
        if self.denoise_grid and self.num_inference_steps and max(self.denoise_grid) > self.num_inference_steps:
            raise ValueError(f"denoise_grid: step {max(self.denoise_grid)} is past the last step ({self.num_inference_steps})")
        return self

    def keyframe_indices(self) -> list[int]:
        return [f for f, _ in self.keyframes]
