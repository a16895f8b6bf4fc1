"""Requests for image mode: ``SequenceRequest`` (keyframe prompts -> a coherent video) and ``ImageRequest``.

Both extend :class:`t2v.request.GenerationRequest`, so model, size, steps, guidance, scheduler, seed,
formats, device and dtype are validated exactly as for a video request.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Field, TypeAdapter, ValidationError, field_validator, model_validator

from t2v.errors import InvalidRequest
from t2v.post.request import PostRequest
from t2v.keyframes import parse_keyframes
from t2v.request import MAX_FRAMES, GenerationRequest, invalid_from_validation

METHODS = ("latent-walk", "prompt-interp", "img2img", "interpolate", "independent")


class ImageRequest(GenerationRequest):
    """``t2v image``: ``count`` images with seeds ``seed``, ``seed + 1``, ... (num_frames is unused)."""

    mode: Literal["image"] = "image"
    count: int = Field(1, ge=1, le=64)


class SequenceRequest(GenerationRequest):
    """``t2v sequence``: one image per frame from keyframe prompts, kept coherent by ``method``.

    ``prompt`` is filled from the keyframes (for listing and search); ``num_frames`` is the last keyframe
    index + 1. ``strength``, ``zoom``, ``pan_x``, ``pan_y`` and ``rotate`` apply to ``img2img``.
    """

    mode: Literal["sequence"] = "sequence"
    prompt: str = ""
    keyframes: tuple[tuple[int, str], ...]
    method: str = "latent-walk"
    strength: float = Field(0.55, gt=0.0, le=1.0, description="img2img: how much each frame may change (0-1].")
    zoom: float = Field(1.0, ge=0.5, le=2.0, description="img2img camera: scale per frame (1.02 = zoom in 2%).")
    pan_x: float = Field(0.0, ge=-64, le=64, description="img2img camera: pixels per frame to the right.")
    pan_y: float = Field(0.0, ge=-64, le=64, description="img2img camera: pixels per frame down.")
    rotate: float = Field(0.0, ge=-45, le=45, description="img2img camera: degrees per frame, counter-clockwise.")
    contact_sheet: bool = False
    denoise_grid: tuple[int, ...] = ()

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


# Every request, discriminated by ``mode``: what the service stores, the API takes and the runner dispatches on.
Request = Annotated[Union[GenerationRequest, SequenceRequest, ImageRequest, PostRequest], Field(discriminator="mode")]
_REQUEST = TypeAdapter(Request)
MODES = ("video", "sequence", "image", "post")


def request_from_fields(fields: dict[str, Any]) -> GenerationRequest:
    """The request for stored or submitted fields, of the class its ``mode`` names (default ``video``)."""
    mode = fields.get("mode", "video")
    if mode not in MODES:
        raise InvalidRequest(f"mode: unknown {mode!r}; choose video, sequence, image or post", field="mode")
    try:
        return _REQUEST.validate_python({**fields, "mode": mode})
    except ValidationError as e:
        raise invalid_from_validation(e, tagged=True) from None
