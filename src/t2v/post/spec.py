"""The post-processing a request asks for (:class:`PostSpec`): deflicker, frame interpolation and upscaling, run
in that order after sampling (:mod:`t2v.post.stage`) and recorded with their parameters and times."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

INTERPOLATION_METHODS = ("auto", "flow", "minterpolate", "blend", "rife")
UPSCALERS = ("lanczos", "realesrgan", "realesrgan-anime")
UPSCALE_FACTORS = (2, 4)


class PostSpec(BaseModel):
    """Post-processing of a clip. Every field left at its default does nothing."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    deflicker: bool = Field(False, description="Smooth frame-to-frame brightness and colour drift.")
    interpolate: int | None = Field(None, ge=2, le=8, description=(
        "Frame interpolation: this many output frames per input frame (2-8); the fps is multiplied too."))
    target_fps: float | None = Field(None, gt=0, le=240, description=(
        "Frame interpolation to this fps: a whole multiple (2x-8x) of the clip's fps."))
    interpolation: str = Field("auto", description="Interpolation method: auto (the measured best), flow "
                               "(optical flow), minterpolate (FFmpeg), blend (cross-fade), rife (your RIFE model "
                               "folder in interpolation_model; pip install 't2v[rife]').")
    interpolation_model: str | None = Field(None, max_length=4096, description=(
        "rife only: the RIFE model folder (rife-ncnn-vulkan's layout: flownet.param and flownet.bin, named after "
        "its version, e.g. rife-v4.6)."))
    upscale: int | None = Field(None, description="Upscaling factor: 2 or 4.")
    upscaler: str = Field("lanczos", max_length=4096, description=(
        "lanczos, realesrgan, realesrgan-anime (pip install 't2v[upscale]'), or an ESRGAN-family weight file."))

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
