"""Post-processing in a request: :class:`PostSpec` (deflicker, frame interpolation, upscaling; run in that order
after sampling, the ``post`` block of any video request) and :class:`PostRequest` (``mode: "post"``: the post
stage on a clip that already exists, a finished job's video or an uploaded video asset).

A post request names its source by id only (``job`` or ``asset``, exactly one); whoever runs it maps the id to a
file (on a server, the job's own key's job or asset, read through the artifact store).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ValidationInfo, field_validator, model_validator

from t2v.requests.base import RequestModel, knob
from t2v.requests.options import POST_FORMATS, parse_formats

INTERPOLATION_METHODS = ("auto", "flow", "minterpolate", "blend", "rife")
UPSCALERS = ("lanczos", "realesrgan", "realesrgan-anime")
UPSCALE_FACTORS = (2, 4)


class PostSpec(RequestModel):
    """Post-processing of a clip. Every field left at its default does nothing."""

    deflicker: bool = knob(False, help="Smooth frame-to-frame brightness and colour drift.")
    interpolate: int | None = knob(None, ge=2, le=8, help=(
        "Frame interpolation: N-1 new frames between each pair (2-8), (F-1)*N+1 frames from F; the fps times N."))
    target_fps: float | None = knob(None, gt=0, le=240, help=(
        "Frame interpolation to this fps: a whole multiple (2x-8x) of the clip's fps."))
    interpolation: str = knob("auto", help=(
        "Interpolation method: auto (the measured best), flow (optical flow), minterpolate (FFmpeg), blend "
        "(cross-fade), rife (your RIFE model folder in interpolation_model; needs the [rife] extra)."))
    interpolation_model: str | None = knob(None, max_length=4096, help=(
        "rife only: the RIFE model folder (rife-ncnn-vulkan's layout: flownet.param and flownet.bin, named after "
        "its version, e.g. rife-v4.6)."))
    upscale: int | None = knob(None, help="Upscaling factor: 2 or 4.")
    upscaler: str = knob("lanczos", max_length=4096, help=(
        "lanczos, realesrgan, realesrgan-anime (need the [upscale] extra), or an ESRGAN-family weight file."))

    @field_validator("interpolation")
    @classmethod
    def _method(cls, v: str) -> str:
        v = v.lower()
        if v not in INTERPOLATION_METHODS:
            raise ValueError(f"unknown interpolation method {v!r}; choose one of: {', '.join(INTERPOLATION_METHODS)}")
        return v

    @field_validator("upscale")
    @classmethod
    def _factor(cls, v: int | None) -> int | None:
        if v is not None and v not in UPSCALE_FACTORS:
            nearest = min(UPSCALE_FACTORS, key=lambda f: (abs(f - v), f))
            raise ValueError(f"must be 2 or 4, got {v}; nearest valid: {nearest}")
        return v

    @model_validator(mode="after")
    def _one_rate(self) -> PostSpec:
        if self.interpolate is not None and self.target_fps is not None:
            raise ValueError("give interpolate or target_fps, not both")
        if self.interpolation == "rife" and not self.interpolation_model:
            raise ValueError("interpolation rife needs interpolation_model: your RIFE model folder (t2v ships none)")
        if self.interpolation_model and self.interpolation != "rife":
            raise ValueError("interpolation_model is for interpolation rife only")
        return self

    @property
    def active(self) -> bool:
        return bool(self.deflicker or self.interpolate or self.target_fps or self.upscale)


def post_from_flags(**flags: Any) -> dict[str, Any] | None:
    """The ``post`` block of a request from flat fields named as :class:`PostSpec`'s (the CLI's and the forms'
    flags): None when no step is asked for (0 is a value the block refuses, naming the nearest valid one, not
    "no step"); defaults and None are left out."""
    if not any(flags.get(k) is not None for k in ("interpolate", "target_fps", "upscale")) and not flags.get("deflicker"):
        return None
    fields = PostSpec.model_fields
    return {k: (str(v) if k == "interpolation_model" else v) for k, v in flags.items()
            if k in fields and v is not None and v != fields[k].default}


class PostRequest(RequestModel):
    """Post-process an existing clip: ``job`` (a succeeded job's video) or ``asset`` (an uploaded video)."""

    mode: Literal["post"] = "post"
    job: str | None = knob(None, max_length=64, cli="", help="A succeeded video or sequence job of your key: its video.")
    asset: str | None = knob(None, max_length=64, validate_default=True, cli="",
                             help="A video (mp4, webm or gif) uploaded with POST /v1/assets.")
    post: PostSpec = knob(..., cli="", help="The steps: deflicker, interpolate / target_fps, upscale.")
    formats: tuple[str, ...] = knob(("mp4",), cli="--format", help="Any of mp4, webm, gif (repeatable).")
    crf: int | None = knob(None, ge=0, le=51, help="MP4/WebM quality, 0-51: lower is better, bigger.")
    prompt: str | None = knob(None, cli="", api=False, help="The source's prompt (filled in by the service, for listing).")

    @field_validator("formats", mode="before")
    @classmethod
    def _formats(cls, v: Any) -> tuple[str, ...]:
        out = parse_formats(v or (), POST_FORMATS)
        if not out:
            raise ValueError(f"give at least one format: {', '.join(POST_FORMATS)}")
        return tuple(out)

    @field_validator("asset")
    @classmethod
    def _one_source(cls, v: str | None, info: ValidationInfo) -> str | None:
        if (info.data.get("job") is None) == (v is None):
            raise ValueError("give exactly one source: job (a finished job's id) or asset (an uploaded video's id)")
        return v

    @model_validator(mode="after")
    def _something_to_do(self) -> PostRequest:
        if not self.post.active:
            raise ValueError("post: nothing to do; give interpolate, target_fps, upscale or deflicker")
        return self

    @property
    def source(self) -> tuple[str, str]:
        """("job" or "asset", its id)."""
        return ("job", self.job) if self.job is not None else ("asset", self.asset or "")

    def reproducible_fields(self) -> dict[str, Any]:
        return self.model_dump(exclude={"formats", "crf"})


def source_shape(record: dict[str, Any]) -> dict[str, Any]:
    """What a source clip is, from its record (the last post-processing's output when it had one): num_frames,
    width, height and fps, those it holds."""
    post = record.get("postprocess") or {}
    out = {}
    for name in ("num_frames", "width", "height", "fps"):
        value = post.get(name, record.get(name))
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = value
    return out
