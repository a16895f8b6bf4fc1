"""The request a user makes, the result they get back, and the progress events in between."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from t2v.errors import InvalidRequest
from t2v.post.spec import PostSpec

if TYPE_CHECKING:
    import numpy as np

    from t2v.export import OutputFile

DEFAULT_NEGATIVE_PROMPT = "blurry, low quality, distorted, artifacts, flicker, jitter"
# "model": the model's own scheduler (its scheduler_config.json), as the stock diffusers pipeline runs it.
SCHEDULERS = ("model", "ddim", "dpm++", "euler", "unipc")
FORMATS = ("mp4", "webm", "gif", "png")
MAX_FRAMES = 512
MAX_STEPS = 500
MIN_SIDE, MAX_SIDE = 16, 2048
MAX_SEED = 2**63 - 1
DEFAULT_STRENGTH = 0.6  # video-to-video: the request's strength when it gives a video and no strength
MAX_SECONDS = 600  # longer videos: the most seconds one request makes

# Fields that decide how a run computes, not (beyond rounding) what it makes: recorded beside the request fields.
ENGINE_FIELDS = ("formats", "crf", "device", "dtype", "memory", "attention", "compile")

# Fields a model's defaults can fill in (None in the request = "use the model's default").
DEFAULTABLE = ("negative_prompt", "width", "height", "num_frames", "fps", "guidance_scale", "guidance_scale_2",
               "num_inference_steps", "scheduler", "decode_timestep", "decode_noise_scale")


class GenerationRequest(BaseModel):
    """A validated, frozen description of one generation. ``None`` means "the model's default"."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    mode: Literal["video"] = "video"
    prompt: str
    negative_prompt: str | None = None  # None: the model's default (DEFAULT_NEGATIVE_PROMPT for ModelScope)
    num_frames: int | None = Field(None, ge=1, le=MAX_FRAMES)
    num_inference_steps: int | None = Field(None, ge=1, le=MAX_STEPS)
    guidance_scale: float | None = Field(None, ge=0.0, le=50.0)
    guidance_scale_2: float | None = Field(None, ge=0.0, le=50.0, description=(
        "Wan 2.2 A14B: guidance of the low-noise expert. HunyuanVideo: the true CFG scale (the stock "
        "true_cfg_scale; above 1 a second pass with the negative prompt). Other models ignore it."))
    decode_timestep: float | None = Field(None, ge=0.0, le=1.0, description=(
        "LTX-Video 0.9.1+: the timestep the VAE decodes at (the model's default); other models ignore it."))
    decode_noise_scale: float | None = Field(None, ge=0.0, le=1.0, description=(
        "LTX-Video 0.9.1+: noise mixed into the latents before decoding (the model's default)."))
    fps: float | None = Field(None, gt=0.0, le=120.0)
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    width: int | None = Field(None, ge=MIN_SIDE, le=MAX_SIDE)
    height: int | None = Field(None, ge=MIN_SIDE, le=MAX_SIDE)
    scheduler: str | None = None
    model: str | None = None
    formats: tuple[str, ...] = ("mp4",)
    crf: int | None = Field(None, ge=0, le=51, description="Quality for MP4/WebM: lower is better, bigger.")
    device: str = "auto"
    dtype: str = "auto"
    memory: str = Field("auto", description="Memory plan: auto, speed, balanced or low.")
    motion_adapter: str | None = Field(None, description=(
        "AnimateDiff: a MotionAdapter (hub id, registry id or folder) that animates the Stable Diffusion 1.5 `model`."))
    lora: str | None = Field(None, description="A LoRA adapter folder (t2v train-lora) applied to the UNet.")
    lora_scale: float = Field(1.0, ge=-4.0, le=4.0, description="Strength of the LoRA adapter (1 = as trained).")
    image: str | None = Field(None, description=(
        "Image-to-video: the first frame. A file path (library, CLI) or an uploaded asset id (API)."))
    video: str | None = Field(None, description=(
        "Video-to-video (SDEdit): the input clip (mp4, webm or gif), a file path (library, CLI). Its frames are "
        "fitted to width x height and num_frames, encoded, noised to `strength` and denoised with the prompt."))
    strength: float | None = Field(None, ge=0.0, le=1.0, description=(
        "Video-to-video: how much to change the input, 0 (the input after the VAE round trip) to 1 (as from pure "
        "noise). Default 0.6 with `video`; refused without it."))
    cache: str | None = Field(None, description=(
        "Step cache, NAME[:KEY=VALUE,...]: deepcache (UNet3D models), fbc, taylorseer, magcache, pab, fastercache "
        "(transformer models). Recorded in its canonical form (every parameter)."))
    attention: str = Field("auto", description="Attention kernel: auto (PyTorch SDPA), sdpa, flash or sage (where installed).")
    weights: str = Field("auto", description=(
        "Denoiser weight storage: auto (the run's dtype), fp8 (float8 storage, bf16 compute) or int8 (torchao)."))
    compile: bool = Field(False, description="torch.compile the denoiser's repeated blocks (first run of a shape compiles).")
    post: PostSpec | None = Field(None, description=(
        "Post-processing after sampling: deflicker, frame interpolation (interpolate / target_fps), upscaling."))
    seconds: float | None = Field(None, gt=0.0, le=MAX_SECONDS, description=(
        "Longer videos: the seconds of video to make, in segments of num_frames, each continuing the one before "
        "(image-to-video from its last frame where the model has it, else video-to-video of the overlap), the seams "
        "blended. With `extend`: the seconds added to that clip."))
    prompt_schedule: tuple[tuple[int, str], ...] | None = Field(None, description=(
        "Longer videos: prompts by frame, e.g. [\"0: a red ball\", \"48: a blue ball\"]; each segment takes the prompt "
        "in force at its first new frame (`prompt` until the first entry). Without `seconds`, the video runs one "
        "segment past the last entry."))
    extend: str | None = Field(None, description=(
        "Longer videos: continue this clip (mp4, webm or gif; a file path: library, CLI); the output is the clip, "
        "fitted to width x height, then `seconds` more."))
    overlap: int | None = Field(None, ge=1, le=64, description=(
        "Longer videos: frames each continuation shares with what came before, cross-faded at the seam (default: "
        "1 after image-to-video from the last frame, else half of num_frames)."))
    continue_strength: float | None = Field(None, gt=0.0, le=1.0, description=(
        "Longer videos: how much a video-to-video continuation repaints its guide (the overlap, then the last "
        "frame held); default 0.7."))

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("prompt must not be empty")
        return v

    @model_validator(mode="before")
    @classmethod
    def _default_strength(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("video") and data.get("strength") is None:
            data = {**data, "strength": DEFAULT_STRENGTH}
        return data

    @field_validator("strength")
    @classmethod
    def _strength_needs_video(cls, v: float | None, info: ValidationInfo) -> float | None:
        if v is not None and info.data.get("mode", "video") == "video" and not info.data.get("video"):
            # (sequence requests have their own img2img strength)
            raise ValueError("only video-to-video takes a strength: give a video too, or leave strength out")
        return v

    @field_validator("prompt_schedule", mode="before")
    @classmethod
    def _schedule(cls, v: Any) -> tuple[tuple[int, str], ...] | None:
        from t2v.keyframes import parse_keyframes

        return None if v is None else parse_keyframes(v, first_zero=False, what="entry", limit=MAX_SECONDS * 120)

    @model_validator(mode="after")
    def _long_fields(self) -> GenerationRequest:
        if not self.is_long:
            for name in ("overlap", "continue_strength"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name}: only longer videos take it; give seconds, prompt_schedule or extend too, "
                                     "or leave it out")
        elif self.video is not None:
            raise ValueError("video: a longer video (seconds, prompt_schedule, extend) cannot start from an input "
                             "video too; leave video out or use extend")
        return self

    @property
    def is_long(self) -> bool:
        """A video made of several segments (``seconds``, ``prompt_schedule`` or ``extend``)."""
        return self.seconds is not None or self.prompt_schedule is not None or self.extend is not None

    @field_validator("width", "height")
    @classmethod
    def _multiple_of_8(cls, v: int | None) -> int | None:
        if v is not None and v % 8:
            raise ValueError(f"must be a multiple of 8, got {v}; nearest valid: {max(8, (v + 4) // 8 * 8)}")
        return v

    @field_validator("scheduler")
    @classmethod
    def _scheduler(cls, v: str | None) -> str | None:
        if v is not None:
            v = v.lower()
            if v not in SCHEDULERS:
                raise ValueError(f"unknown scheduler {v!r}; choose one of: {', '.join(SCHEDULERS)}")
        return v

    @field_validator("formats", mode="before")
    @classmethod
    def _formats(cls, v: Any) -> tuple[str, ...]:
        return parse_formats(v, FORMATS)

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        from t2v.models.device import check_device_name

        return check_device_name(v)

    @field_validator("dtype")
    @classmethod
    def _dtype(cls, v: str) -> str:
        from t2v.models.device import check_dtype_name

        return check_dtype_name(v)

    @field_validator("cache")
    @classmethod
    def _cache(cls, v: str | None) -> str | None:
        from t2v.engine.options import canonical_cache

        return canonical_cache(v)

    @field_validator("attention")
    @classmethod
    def _attention(cls, v: str) -> str:
        from t2v.engine.options import check_attention

        return check_attention(v)

    @field_validator("weights")
    @classmethod
    def _weights(cls, v: str) -> str:
        from t2v.engine.options import check_weights

        return check_weights(v)

    @field_validator("memory")
    @classmethod
    def _memory(cls, v: str) -> str:
        from t2v.models.memory import PLANS

        if v not in PLANS:
            raise ValueError(f"unknown memory plan {v!r}; choose one of: {', '.join(PLANS)}")
        return v

    @model_validator(mode="after")
    def _model_name(self) -> GenerationRequest:
        if self.model is not None and not self.model.strip():
            raise ValueError("model must not be empty")
        if self.motion_adapter is not None and not self.motion_adapter.strip():
            raise ValueError("motion_adapter must not be empty")
        return self

    @classmethod
    def create(cls, **fields: Any) -> GenerationRequest:
        """Build a request, turning pydantic's errors into one ``InvalidRequest`` naming the field."""
        return validated(cls, fields)

    def with_defaults(self, defaults: dict[str, Any], **extra: Any) -> GenerationRequest:
        """A copy with every ``None`` defaultable field filled from ``defaults`` (plus ``extra`` overrides)."""
        update = {k: defaults[k] for k in DEFAULTABLE if getattr(self, k) is None and k in defaults}
        update.update(extra)
        return self.model_validate({**self.model_dump(), **update})

    def reproducible_fields(self) -> dict[str, Any]:
        """The fields that decide the frames, as recorded in metadata."""
        return self.model_dump(exclude=set(ENGINE_FIELDS))


def parse_formats(v: Any, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """``"mp4"`` or ``["MP4", ".gif", "mp4"]`` -> ``("mp4", "gif")``: lower case, no dot, no repeats; ValueError
    naming an unknown one and the choices."""
    if isinstance(v, str):
        v = [v]
    out: list[str] = []
    for f in v:
        f = str(f).lower().lstrip(".")
        if f not in allowed:
            raise ValueError(f"unknown format {f!r}; choose from: {', '.join(allowed)}")
        if f not in out:
            out.append(f)
    return tuple(out)


def validated(model: type[BaseModel], fields: dict[str, Any]) -> Any:
    """``model(**fields)``, pydantic's errors turned into one ``InvalidRequest`` naming the field."""
    try:
        return model(**fields)
    except ValidationError as e:
        raise invalid_from_validation(e) from None


def invalid_from_validation(e: ValidationError, *, tagged: bool = False) -> InvalidRequest:
    """One InvalidRequest naming the first field at fault (``tagged``: errors of a discriminated union, whose
    locations start with the mode)."""
    err = e.errors()[0]
    loc_parts = err.get("loc", ())[1:] if tagged else err.get("loc", ())
    loc = ".".join(str(p) for p in loc_parts) or "request"
    msg = err.get("msg", "invalid value").removeprefix("Value error, ")
    if err.get("type") == "extra_forbidden":
        msg = "unknown field"
    named = re.match(r"^([a-z_]+): ", msg)
    if not loc_parts and named and named.group(1) in GenerationRequest.model_fields:  # a whole-request check naming its field
        return InvalidRequest(msg, field=named.group(1))
    return InvalidRequest(f"{loc}: {msg}", field=loc)


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

    @property
    def seed(self) -> int:
        return int(self.record["seed"])

    @property
    def warnings(self) -> list[str]:
        return list(self.record.get("warnings", []))
