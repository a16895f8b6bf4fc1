"""The video request: text-to-video, image-to-video (``image``), video-to-video (``video``) and longer videos
(``seconds``, ``prompt_schedule``, ``extend``). Every field is declared here once, with its range, default, help
and CLI spelling (:func:`t2v.requests.base.knob`); the CLI, the REST bodies and the forms derive from it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ValidationInfo, field_validator, model_validator

from t2v.requests.base import RequestModel, file_fields, knob
from t2v.requests.extras import check_scalars, move_asset_ids, move_flat_extras
from t2v.requests.caches import canonical_cache, check_attention, check_weights
from t2v.requests.control import MAX_REFERENCES, check_control, check_references
from t2v.requests.keyframes import parse_keyframes
from t2v.requests.loras import LoraSpec, check_loras, move_single_lora
from t2v.requests.options import (DEFAULT_STRENGTH, FORMATS, MAX_FRAMES, MAX_SECONDS, MAX_SEED, MAX_SIDE, MAX_STEPS,
                                  MIN_SIDE, check_device_name, check_dtype_name, check_plan_name, check_scheduler_name,
                                  parse_formats)
from t2v.requests.post import PostSpec

MAX_TEXT = 20_000  # characters of a prompt (a server's T2V_MAX_PROMPT_CHARS is lower)

# Fields that decide how a run computes, not (beyond rounding) what it makes: recorded beside the request fields.
ENGINE_FIELDS = ("formats", "crf", "device", "dtype", "memory", "attention", "compile")

# Components whose weights a request may take from one file each, over its model (t2v.models.weightfiles).
WEIGHT_FILE_FIELDS = ("transformer", "transformer_2", "vae")

# Fields a model's defaults can fill in (None in the request = "use the model's default").
DEFAULTABLE = ("negative_prompt", "width", "height", "num_frames", "fps", "guidance_scale", "num_inference_steps",
               "scheduler")


class GenerationRequest(RequestModel):
    """A validated, frozen description of one video. ``None`` means "the model's default"."""

    mode: Literal["video"] = knob("video", cli="", help="The kind of request: video.")
    prompt: str = knob(..., max_length=MAX_TEXT, cli="", help="What the video should show.")
    negative_prompt: str | None = knob(None, max_length=MAX_TEXT, cli="--negative-prompt -n",
                                       help="What to avoid (default: the model's).")
    num_frames: int | None = knob(None, only=("video",), ge=1, le=MAX_FRAMES, cli="--frames -f", help="Number of frames (model default).")
    num_inference_steps: int | None = knob(None, ge=1, le=MAX_STEPS, cli="--steps -s",
                                           help="Denoising steps (model default).")
    guidance_scale: float | None = knob(None, ge=0.0, le=50.0, cli="--guidance -g",
                                        help="Classifier-free guidance scale (model default).")
    fps: float | None = knob(None, only=("video", "sequence"), gt=0.0, le=120.0, help="Frames per second of the output (model default).")
    seed: int | None = knob(None, ge=0, le=MAX_SEED, help="Random seed (random when omitted; always recorded).")
    width: int | None = knob(None, ge=MIN_SIDE, le=MAX_SIDE, cli="--width -W",
                             help=(
                                 "Width in pixels, a multiple of 8 (16 for some video models; a refusal names "
                                 "the nearest)."))
    height: int | None = knob(None, ge=MIN_SIDE, le=MAX_SIDE, cli="--height -H",
                              help=(
                                 "Height in pixels, a multiple of 8 (16 for some video models; a refusal names "
                                 "the nearest)."))
    scheduler: str | None = knob(None, help="model (its own, the default), ddim, dpm++, euler or unipc.")
    model: str | None = knob(None, max_length=4096, cli="--model -m", env="T2V_MODEL",
                             help="Registry id, hub id (org/name) or local folder (under the server's model roots).")
    formats: tuple[str, ...] = knob(("mp4",), only=("video", "sequence"), cli="--format", help="mp4, webm, gif or png (repeatable).")
    crf: int | None = knob(None, only=("video", "sequence"), ge=0, le=51, help="MP4/WebM quality, 0-51: lower is better, bigger.")
    device: str = knob("auto", api=False, env="T2V_DEVICE", help="auto, cpu, cuda, cuda:N or mps.")
    dtype: str = knob("auto", api=False, env="T2V_DTYPE", help="auto, fp32, fp16 or bf16.")
    memory: str = knob("auto", only=("video",), api=False, env="T2V_MEMORY", help="Memory plan: auto, speed, balanced or low.")
    motion_adapter: str | None = knob(None, only=("video",), max_length=4096, help=(
        "AnimateDiff: a MotionAdapter (hub id, registry id or folder) that animates the Stable Diffusion 1.5 model."))
    loras: tuple[LoraSpec, ...] = knob((), only=("video",), cli="--lora", help=(
        "LoRA adapters, stacked: PATH[:SCALE[/SCALE_LOW]][@high|@low|@both] (repeatable): a .safetensors file or "
        "folder in any format diffusers reads for the family, or a t2v train-lora folder; on a server, under its "
        "model roots. SCALE_LOW and @experts: two-expert models (Wan 2.2 A14B)."))
    lora_scale: float = knob(1.0, only=("video",), ge=-4.0, le=4.0, allow_inf_nan=False,
                             help="Strength of each LoRA that names none: 0 = off, 1 = as trained.")
    preset: str | None = knob(None, only=("video",), max_length=64, pattern=r"^[a-z0-9][a-z0-9.-]*$", help=(
        "Few-step preset: the steps, guidance and shift a distilled LoRA or model was made for (lightx2v, "
        "wan22-lightning, causvid, fastwan; see t2v models presets). Applied by itself for a LoRA or model the "
        "registry knows; none turns that off."))
    image: str | None = knob(None, only=("video",), file="image", max_length=4096, cli="--image -i", help=(
        "Image-to-video: the first frame (PNG, JPEG or WebP). A file (library, CLI) or an uploaded asset id (API)."))
    last_image: str | None = knob(None, only=("video",), file="image", max_length=4096, cli="--last-image", help=(
        "First-last-frame: the last frame (with image as the first), for the models that take one (Wan 2.1 "
        "FLF2V, Wan 2.2 A14B image-to-video, SkyReels-V2 DF, LTX-2). A file (library, CLI) or an uploaded asset id (API)."))
    video: str | None = knob(None, only=("video",), file="video", max_length=4096, help=(
        "Video-to-video (SDEdit): the input clip (mp4, webm or gif), a file (library, CLI) or an uploaded asset id "
        "(API); its frames are fitted to width x height and num_frames, noised to strength and denoised."))
    control_video: str | None = knob(None, only=("video",), file="video", max_length=4096, help=(
        "A clip that guides the video, e.g. a pose, depth or edge video: VACE control (Wan VACE models), or an "
        "IC-LoRA's reference video (LTX-2, with the IC-LoRA as lora) (mp4, webm or gif; a file, or an uploaded asset "
        "id on a server); the output's size and frame count, unless fit."))
    mask_video: str | None = knob(None, only=("video",), file="video", max_length=4096, help=(
        "VACE inpainting / outpainting: a black-and-white clip the size and length of control_video, white where "
        "to make new content, black where to keep the control video's pixels. Wan-Animate replace mode: white where "
        "the character goes. LTX-2 IC-LoRA: white where the video attends to its reference."))
    face_video: str | None = knob(None, only=("video",), file="video", max_length=4096, help=(
        "Wan-Animate: the driving face, cropped frame by frame (as many frames as control_video, the pose video; "
        "any size, scaled to the model's face size)."))
    background_video: str | None = knob(None, only=("video",), file="video", max_length=4096, help=(
        "Wan-Animate replace mode: the scene to put the character in, the size and length of the output, with "
        "mask_video white where the character goes."))
    reference_images: tuple[str, ...] = knob((), only=("video",), file="image", cli="--reference-image", help=(
        f"VACE: an image of a subject, object or background to put in the video (repeatable, at most "
        f"{MAX_REFERENCES}; PNG, JPEG or WebP: a file, or an uploaded asset id on a server)."))
    control_scale: float = knob(1.0, only=("video",), ge=0.0, le=4.0, allow_inf_nan=False, help=(
        "VACE: the strength of the control inputs, 0 (none) to 4; 1 as trained. LTX-2 IC-LoRA: how strongly the "
        "video attends to its reference, 0 to 1."))
    no_audio: bool = knob(False, only=("video",), cli="--no-audio", help=(
        "Write no sound, even from a model that makes it (LTX-2)."))
    fit: bool = knob(False, only=("video",), help=(
        "Fit control_video and mask_video to the output: each frame scaled to cover and centre-cropped, the clip "
        "cut or looped to num_frames (without it a clip of another size or length is refused)."))
    strength: float | None = knob(None, only=("video",), ge=0.0, le=1.0, help=(
        "Video-to-video: how much to change the input, 0 (the VAE round trip) to 1 (as from pure noise); "
        f"default {DEFAULT_STRENGTH} with video, refused without it."))
    cache: str | None = knob(None, only=("video",), max_length=200, help=(
        "Step cache NAME[:KEY=VALUE,...]: deepcache (UNet3D models), fbc, taylorseer, magcache, pab, fastercache "
        "(transformer models). Recorded in its canonical form (every parameter)."))
    attention: str = knob("auto", only=("video",), api=False, help=(
        "Attention kernel: auto (the model as loaded: PyTorch SDPA), sdpa, sdpa-flash, sdpa-efficient, sdpa-cudnn, "
        "sdpa-math, flex, flash or sage (what each family and machine take: docs/speed.md)."))
    weights: str = knob("auto", only=("video",), api=False, help=(
        "Denoiser weights: auto (the run's dtype), fp8 (float8 storage, bf16 compute), int8 (torchao, weight-only), "
        "or 8-bit compute, whose frames differ: fp8-fast (Ada/Hopper GPUs) or int8-fast (torchao)."))
    text_encoder_weights: str = knob("auto", only=("video",), api=False, help=(
        "Text encoder weight storage: auto (the run's dtype), fp8 (float8 storage, computed in the run's dtype) or "
        "int8 (torchao): UMT5-XXL's 11 GB in bf16 become about 6 GB."))
    transformer: str | None = knob(None, only=("video",), max_length=4096, help=(
        "The denoiser's weights from one file, over the model (which gives the configs and the other parts): a "
        ".safetensors file in the original, ComfyUI or diffusers layout (bf16, fp16, fp8, fp8 with scales) or a .gguf "
        "file (Q8_0, Q4_K_M, ...). On a server, under its model roots."))
    transformer_2: str | None = knob(None, only=("video",), max_length=4096, help=(
        "A two-expert model's low-noise expert from one file (Wan 2.2 A14B), as transformer is the high-noise one."))
    vae: str | None = knob(None, only=("video",), max_length=4096, help=(
        "The VAE's weights from one file, over the model (.safetensors, original or diffusers layout)."))
    compile: bool = knob(False, only=("video",), api=False, help=(
        "torch.compile the denoiser's repeated blocks (the first run of a shape compiles)."))
    post: PostSpec | None = knob(None, only=("video", "sequence"), cli="", help=(
        "Post-processing after sampling, in this order: deflicker, frame interpolation (interpolate: 2-8 frames per "
        "frame, or target_fps), upscaling (upscale: 2 or 4). Each step is in the record (postprocess)."))
    seconds: float | None = knob(None, only=("video",), gt=0.0, le=MAX_SECONDS, help=(
        "A longer video: the seconds to make, in segments of num_frames, each continuing the last (image-to-video "
        "from its last frame where the model has it, else video-to-video of the overlap), the seams blended. With "
        "extend: the seconds added."))
    prompt_schedule: tuple[tuple[int, str], ...] | None = knob(None, only=("video",), help=(
        "A longer video: prompts by frame, 'INDEX: prompt' (e.g. '0: a red ball' '48: a blue ball'); each segment "
        "takes the prompt in force at its first new frame (prompt until the first entry)."))
    extend: str | None = knob(None, only=("video",), file="video", max_length=4096, cli="", help=(
        "A longer video continuing this clip (mp4, webm or gif; a file, or an uploaded asset id on a server): the "
        "output is the clip, fitted to width x height, then seconds more."))
    overlap: int | None = knob(None, only=("video",), ge=1, le=64, help=(
        "A longer video: frames each continuation shares with what came before, cross-faded (default: 1 after "
        "image-to-video from the last frame, else half of num_frames)."))
    continue_strength: float | None = knob(None, only=("video",), gt=0.0, le=1.0, help=(
        "A longer video: how much a video-to-video continuation repaints its guide (default 0.7)."))
    extras: dict[str, Any] = knob({}, only=("video",), cli="", help=(
        "The model family's own settings, e.g. {\"decode_timestep\": 0.05} for LTX-Video or {\"use_dynamic_cfg\": "
        "true} for CogVideoX; each family's are in `t2v models show FAMILY` (the CLI offers them as flags)."))

    @model_validator(mode="before")
    @classmethod
    def _flat_extras(cls, data: Any) -> Any:
        return move_single_lora(move_flat_extras(move_asset_ids(data)))

    @field_validator("loras")
    @classmethod
    def _loras(cls, v: tuple[LoraSpec, ...]) -> tuple[LoraSpec, ...]:
        return check_loras(v)

    @field_validator("reference_images", mode="before")
    @classmethod
    def _references(cls, v: Any) -> tuple[str, ...]:
        return check_references(v)

    @model_validator(mode="after")
    def _control(self) -> GenerationRequest:
        check_control(self)
        return self

    @field_validator("extras")
    @classmethod
    def _extras(cls, v: dict[str, Any]) -> dict[str, Any]:
        return check_scalars(v)

    @property
    def guidance_scale_2(self) -> float | None:
        """Wan 2.2 A14B's low-noise guidance, HunyuanVideo's true CFG scale (an extra of those families)."""
        return self.extras.get("guidance_scale_2")

    @property
    def decode_timestep(self) -> float | None:
        """LTX-Video 0.9.1+: the timestep the VAE decodes at (an extra of the LTX family)."""
        return self.extras.get("decode_timestep")

    @property
    def decode_noise_scale(self) -> float | None:
        """LTX-Video 0.9.1+: the noise mixed in before decoding (an extra of the LTX family)."""
        return self.extras.get("decode_noise_scale")

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
        return check_scheduler_name(v)

    @field_validator("formats", mode="before")
    @classmethod
    def _formats(cls, v: Any) -> tuple[str, ...]:
        return parse_formats(v, FORMATS)

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        return check_device_name(v)

    @field_validator("dtype")
    @classmethod
    def _dtype(cls, v: str) -> str:
        return check_dtype_name(v)

    @field_validator("cache")
    @classmethod
    def _cache(cls, v: str | None) -> str | None:
        return canonical_cache(v)

    @field_validator("attention")
    @classmethod
    def _attention(cls, v: str) -> str:
        return check_attention(v)

    @field_validator("weights", "text_encoder_weights")
    @classmethod
    def _weights(cls, v: str, info: ValidationInfo) -> str:
        return check_weights(v, info.field_name)

    @field_validator("memory")
    @classmethod
    def _memory(cls, v: str) -> str:
        return check_plan_name(v)

    @model_validator(mode="after")
    def _model_name(self) -> GenerationRequest:
        if self.model is not None and not self.model.strip():
            raise ValueError("model must not be empty")
        for name in ("motion_adapter", *WEIGHT_FILE_FIELDS):
            if getattr(self, name) is not None and not getattr(self, name).strip():
                raise ValueError(f"{name} must not be empty")
        return self

    def with_defaults(self, defaults: dict[str, Any], **extra: Any) -> GenerationRequest:
        """A copy with every ``None`` defaultable field filled from ``defaults`` (plus ``extra`` overrides)."""
        update = {k: defaults[k] for k in DEFAULTABLE if getattr(self, k) is None and k in defaults}
        update.update(extra)
        return self.model_validate({**self.model_dump(), **update})

    def reproducible_fields(self) -> dict[str, Any]:
        """The fields that decide the frames, as recorded in metadata."""
        return self.model_dump(exclude=set(ENGINE_FIELDS))


VideoRequest = GenerationRequest  # the same class under the name of its mode

#: Fields that name input files, read by the run, uploaded by a remote client: those declared with ``knob(file=...)``.
FILE_FIELDS = tuple(file_fields(GenerationRequest))
