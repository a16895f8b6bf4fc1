"""The generation form: its fields, the limits a model and the server put on them, presets, seed modes,
remix (a past job back into the form) and the request a filled-in form makes. No UI toolkit here."""

from __future__ import annotations

import math

import random
from dataclasses import dataclass
from typing import Any, Callable


from t2v.errors import Forbidden, InvalidRequest, JobNotFound, ModelUnavailable, QuotaExceeded, T2VError
from t2v.requests import INTERPOLATION_METHODS, UPSCALERS, PostSpec
from t2v.requests import FORMATS, MAX_FRAMES, MAX_SIDE, MAX_STEPS, GenerationRequest
from t2v.models.presets import PRESETS as FEW_STEP_PRESETS

#: The form's fields, in the order a page lays them out (GenerationRequest names plus ``seed_mode``; then the
#: request's ``post`` block, see :data:`POST_KEYS`, and the longer-video fields, see :data:`LONG_KEYS`).
FORM_KEYS = ("prompt", "negative_prompt", "model", "num_frames", "num_inference_steps", "guidance_scale", "fps",
             "width", "height", "scheduler", "seed_mode", "seed", "formats", "interpolate", "interpolation", "upscale",
             "upscaler", "deflicker", "seconds", "prompt_schedule", "overlap", "continue_strength", "loras", "preset",
             "control_scale", "fit")
POST_KEYS = ("interpolate", "interpolation", "upscale", "upscaler", "deflicker")
# longer videos, made in segments: seconds (blank or 0: one clip), the schedule's text (one "FRAME: prompt" a
# line), overlap and continue strength (blank: the model's default)
LONG_KEYS = ("seconds", "prompt_schedule", "overlap", "continue_strength")
LONG_DEFAULTS = {"seconds": None, "prompt_schedule": "", "overlap": None, "continue_strength": None}
# LoRA adapters (one "PATH[:SCALE[/SCALE_LOW]][@high|@low]" a line, as --lora takes them) and the few-step
# preset (auto: what a known distill implies; none: the form's own steps and guidance)
ADAPTER_DEFAULTS = {"loras": "", "preset": "auto"}
CONTROL_DEFAULTS = {"control_scale": 1.0, "fit": False}  # VACE's strength, and fitting its clips to the output
#: The clips a video form sends beside its fields (each kept as an asset of the key).
VIDEO_FILE_KEYS = ("control_video", "mask_video", "face_video", "background_video")
FEW_STEP_CHOICES = ("auto", *FEW_STEP_PRESETS, "none")
OFF = "Off"
INTERPOLATE_CHOICES = (OFF, "2x", "3x", "4x")  # frames out per frame in (the fps is multiplied too)
# the method: auto, flow, minterpolate, blend (rife needs a model folder, which the forms do not ask for)
INTERPOLATION_CHOICES = tuple(m for m in INTERPOLATION_METHODS if m != "rife")
UPSCALE_CHOICES = (OFF, "2x", "4x")
UPSCALER_CHOICES = UPSCALERS  # lanczos, realesrgan, realesrgan-anime (a weight file comes back from a remix as is)
POST_DEFAULTS = {"interpolate": OFF, "interpolation": "auto", "upscale": OFF, "upscaler": "lanczos", "deflicker": False}
SEED_MODES = ("random", "fixed", "reuse last")
PRESETS = ("Fast preview", "Quality")
PLAYER_FORMAT = "webm"  # VP9 in WebM: always written, so a browser's <video> can play the result
DEFAULT_FORMATS = ("mp4", "webm", "gif")
SEED_MAX = 2**32 - 1
LABELS = {
    "prompt": "Prompt", "negative_prompt": "Negative prompt", "model": "Model", "num_frames": "Frames",
    "num_inference_steps": "Steps", "guidance_scale": "Guidance", "fps": "FPS", "width": "Width", "height": "Height",
    "scheduler": "Scheduler", "seed": "Seed", "seed_mode": "Seed", "formats": "Output formats", "crf": "Quality (CRF)",
    "api_key": "API key", "device": "Device", "dtype": "Data type", "image": "First frame", "file": "First frame",
    "key": "API key", "interpolate": "Interpolation", "upscale": "Upscale", "upscaler": "Upscaler",
    "deflicker": "Deflicker", "post": "Post-processing", "target_fps": "Interpolation",
    "interpolation": "Interpolation method", "seconds": "Seconds", "prompt_schedule": "Prompt schedule",
    "overlap": "Overlap", "continue_strength": "Continue strength", "extend": "Extend", "loras": "LoRAs",
    "preset": "Few-step preset", "last_image": "Last frame", "control_video": "Control video",
    "mask_video": "Mask video", "reference_images": "Reference images", "control_scale": "Control strength",
    "fit": "Fit control clips", "video": "Your video", "strength": "Strength", "face_video": "Face video",
    "background_video": "Background video",
}


class FormError(Exception):
    """A message for the user. ``field`` names the form field at fault, when there is one."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


def readable(exc: T2VError) -> FormError:
    """Translate a library or client error into one sentence for the user, naming the field."""
    if isinstance(exc, InvalidRequest):
        parts = (getattr(exc, "field", None) or "").split(".")
        name = (parts[1] if parts[0] == "post" and len(parts) > 1 else parts[0]) or None  # post.upscale: "Upscale"
        text = str(exc)
        if text.startswith("HTTP ") and ": " in text:  # the client's "HTTP 422: field: ..." prefix
            text = text.split(": ", 1)[1]
        if name and text.startswith(f"{getattr(exc, 'field', '')}:"):
            text = text[len(exc.field) + 1:].strip()
        label = LABELS.get(name or "", name or "Request")
        return FormError(f"{label}: {text}", field=name)
    if isinstance(exc, ModelUnavailable):
        return FormError(f"Model unavailable: {exc}", field="model")
    if isinstance(exc, QuotaExceeded):
        return FormError(f"Too many jobs: {exc}. Wait for one to finish.")
    if isinstance(exc, JobNotFound):  # also another key's job: the same words, so ids cannot be probed
        return FormError("That job does not exist (it was deleted, or it belongs to another API key).")
    if isinstance(exc, Forbidden) or getattr(exc, "status", None) in (401, 403):
        return FormError("The server refused the API key (missing, wrong or revoked), or it may not do that.",
                         field="api_key")
    return FormError(str(exc))


@dataclass(frozen=True)
class FormLimits:
    """What the form may ask of one model on one server: the server's caps and the model's rules."""

    max_frames: int = MAX_FRAMES  # the contract's bounds, until the server says its own
    max_steps: int = MAX_STEPS
    max_side: int = MAX_SIDE
    size_multiple: int = 8
    frame_step: int = 1
    schedulers: tuple[str, ...] | None = None
    image: bool = False  # the model takes a first frame (image-to-video)
    inputs: tuple[str, ...] = ()  # the request's input fields it takes (image, last_image, control_video ...)

    @classmethod
    def of(cls, model=None, server=None) -> FormLimits:
        """From a :class:`t2v.contract.Model` and the server's :class:`t2v.contract.Limits` (either may be None)."""
        out: dict[str, Any] = {}
        for name in ("max_frames", "max_steps", "max_side"):
            value = getattr(server, name, None) if server is not None else None
            if value:
                out[name] = int(value)
        rules = getattr(model, "rules", None)
        if rules is not None:
            out["size_multiple"] = int(rules.size_multiple or 8)
            out["frame_step"] = int(rules.frame_step or 1)
            if rules.max_frames:
                out["max_frames"] = min(out.get("max_frames", rules.max_frames), int(rules.max_frames))
            out["schedulers"] = tuple(rules.schedulers) if rules.schedulers else None
        tasks = list(getattr(model, "tasks", None) or [])
        out["image"] = "i2v" in tasks or "i2v" in (getattr(rules, "modes", None) or [])
        out["inputs"] = tuple(getattr(rules, "inputs", None) or (("image",) if out["image"] else ()))
        return cls(**out)

    def side(self, value: int) -> int:
        """``value`` as the nearest valid width or height (a multiple of the model's step, within the cap)."""
        m = self.size_multiple
        top = self.max_side // m * m
        return max(m, min(top, int(round(int(value) / m)) * m))

    def frames(self, value: int) -> int:
        """``value`` as the nearest valid frame count (``frame_step * k + 1``, within the cap)."""
        s = self.frame_step
        top = (self.max_frames - 1) // s * s + 1 if s > 1 else self.max_frames
        v = int(round((int(value) - 1) / s)) * s + 1 if s > 1 else int(value)
        return max(1, min(top, v))

    def steps(self, value: int) -> int:
        return max(1, min(self.max_steps, int(value)))


def number(form: dict[str, Any], key: str, kind=int, labels: dict[str, str] = LABELS):
    """``form[key]`` as an int/float; None when blank; FormError naming the field otherwise."""
    value = form.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number_ = float(value)
    except (TypeError, ValueError):
        raise FormError(f"{labels[key]}: {value!r} is not a number", field=key) from None
    if not math.isfinite(number_):  # nan, inf, 1e400
        raise FormError(f"{labels[key]}: {value!r} is not a finite number", field=key)
    if kind is int:
        if not number_.is_integer():
            raise FormError(f"{labels[key]}: must be a whole number, got {value}; nearest: {round(number_)}", field=key)
        return int(number_)
    return number_


def preset(name: str, defaults: dict[str, Any], limits: FormLimits = FormLimits()) -> dict[str, Any]:
    """Field values for a preset: "Quality" is the model's defaults; "Fast preview" few steps, few frames,
    half size. Both within ``limits``."""
    if name not in PRESETS:
        raise FormError(f"Preset: unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    d = defaults
    out = {
        "num_frames": limits.frames(d.get("num_frames", 16)),
        "num_inference_steps": limits.steps(d.get("num_inference_steps", 25)),
        "guidance_scale": float(d.get("guidance_scale", 7.5)),
        "fps": float(d.get("fps", 8)),
        "width": limits.side(d.get("width", 256)),
        "height": limits.side(d.get("height", 256)),
        "scheduler": d.get("scheduler"),
    }
    if name == "Fast preview":  # fewer steps and frames, never below the size the model was made for
        steps = out["num_inference_steps"]
        out["num_inference_steps"] = min(steps, max(2, min(8, steps // 2)))
        out["num_frames"] = min(out["num_frames"], limits.frames(8))
    return out


def default_form(model: str, defaults: dict[str, Any], limits: FormLimits = FormLimits()) -> dict[str, Any]:
    """The form a fresh page shows: ``model`` at its defaults ("Quality"), a random seed."""
    return {"prompt": "", "negative_prompt": "", "model": model, **preset("Quality", defaults, limits),
            "seed_mode": "random", "seed": None, "formats": list(DEFAULT_FORMATS), **POST_DEFAULTS, **LONG_DEFAULTS,
            **ADAPTER_DEFAULTS, **CONTROL_DEFAULTS}


def is_sequence(request: dict[str, Any] | None) -> bool:
    """True for an image-sequence job (its request has a ``mode`` of "sequence")."""
    return (request or {}).get("mode") == "sequence"


def remix_target(request: dict[str, Any] | None) -> str:
    """Which form a past job goes back into: "sequence" or "video"."""
    return "sequence" if is_sequence(request) else "video"


def remix_form(request: dict[str, Any]) -> dict[str, Any]:
    """The video form filled with a past job's request (its resolved seed fixed, so the clip can be made again)."""
    r = request
    if is_sequence(r):
        raise FormError("That job is an image sequence, not a video: remix it in the Sequence tab.")
    return {"prompt": r.get("prompt", ""), "negative_prompt": r.get("negative_prompt") or "", "model": r.get("model"),
            "num_frames": r.get("num_frames"), "num_inference_steps": r.get("num_inference_steps"),
            "guidance_scale": r.get("guidance_scale"), "fps": r.get("fps"), "width": r.get("width"),
            "height": r.get("height"), "scheduler": r.get("scheduler"), "seed_mode": "fixed", "seed": r.get("seed"),
            "formats": [f for f in r.get("formats", DEFAULT_FORMATS) if f in FORMATS],
            **post_form(r.get("post"), r.get("fps")), **long_form(r), **adapter_form(r),
            "control_scale": r.get("control_scale", CONTROL_DEFAULTS["control_scale"]), "fit": bool(r.get("fit"))}


def adapter_form(request: dict[str, Any]) -> dict[str, Any]:
    """The form's LoRA lines and few-step preset for a request (each adapter as --lora spells it)."""
    lines = []
    for entry in request.get("loras") or ():
        line = f"{entry['path']}:{entry['scale']:g}" if entry.get("scale") is not None else str(entry["path"])
        if entry.get("scale_low") is not None:
            line += f"/{entry['scale_low']:g}"
        if entry.get("experts", "both") != "both":
            line += f"@{entry['experts']}"
        lines.append(line)
    return {"loras": "\n".join(lines), "preset": request.get("preset") or ADAPTER_DEFAULTS["preset"]}


def adapter_fields(form: dict[str, Any]) -> dict[str, Any]:
    """The request's ``loras`` and ``preset`` for the form ({} when there are none and the preset is auto),
    checked against :class:`t2v.requests.GenerationRequest` here, so a bad line is named before anything is sent."""
    fields: dict[str, Any] = {}
    lines = schedule_lines(form.get("loras"))
    if lines:
        fields["loras"] = lines
    preset = str(form.get("preset") or "").strip()
    if preset and preset != ADAPTER_DEFAULTS["preset"]:
        fields["preset"] = preset
    return checked(fields)


def checked(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` (a part of the form) if a request could have them; else FormError naming the field, before
    anything is sent."""
    if fields:
        try:
            GenerationRequest(prompt="-", **fields)
        except InvalidRequest as e:
            raise readable(e) from None
    return fields


def control_fields(form: dict[str, Any]) -> dict[str, Any]:
    """The request's ``control_scale`` and ``fit`` for the form, when they differ from the defaults (they count
    only with a control video or reference images, which go beside the form as files)."""
    fields: dict[str, Any] = {}
    scale = number(form, "control_scale", float)
    if scale is not None and scale != CONTROL_DEFAULTS["control_scale"]:
        fields["control_scale"] = scale
    if form.get("fit"):
        fields["fit"] = True
    return fields


def post_form(post: dict[str, Any] | None, fps: float | None = None) -> dict[str, Any]:
    """The form's post-processing fields for a request's ``post`` block (None: all off). A ``target_fps`` comes
    back as the factor it made (``target_fps / fps``), which makes the same clip."""
    p = post or {}
    factor = p.get("interpolate")
    if not factor and p.get("target_fps") and fps:
        ratio = float(p["target_fps"]) / float(fps)
        factor = int(round(ratio)) if abs(ratio - round(ratio)) < 1e-6 else None
    scale = p.get("upscale")
    return {"interpolate": f"{int(factor)}x" if factor and int(factor) > 1 else OFF,
            "interpolation": str(p.get("interpolation") or POST_DEFAULTS["interpolation"]),
            "upscale": f"{int(scale)}x" if scale else OFF,
            "upscaler": p.get("upscaler") or POST_DEFAULTS["upscaler"], "deflicker": bool(p.get("deflicker"))}


def _factor(form: dict[str, Any], key: str, choices: tuple[str, ...]) -> int | None:
    """``form[key]`` ("Off", "2x", 2, ...) as a factor; None when off."""
    value = form.get(key)
    if value is None or value is False:
        return None
    text = str(value).strip().lower().removesuffix("x").strip()
    if text in ("", "off", "none", "0", "1"):
        return None
    try:
        return int(text)
    except ValueError:
        raise FormError(f"{LABELS[key]}: {value!r} is not a factor; choose one of {', '.join(choices)}",
                        field=key) from None


def post_fields(form: dict[str, Any]) -> dict[str, Any] | None:
    """The request's ``post`` block for the form's post-processing fields; None when every one is off. Checked
    against :class:`t2v.requests.PostSpec` here, so a bad value is named before anything is sent."""
    post: dict[str, Any] = {}
    if form.get("deflicker") in (True, "true", "True", "1", 1):
        post["deflicker"] = True
    interpolate = _factor(form, "interpolate", INTERPOLATE_CHOICES)
    if interpolate:
        post["interpolate"] = interpolate
        method = str(form.get("interpolation") or "").strip().lower() or POST_DEFAULTS["interpolation"]
        if method != POST_DEFAULTS["interpolation"]:  # auto is the default: the request stays as before
            post["interpolation"] = method
    upscale = _factor(form, "upscale", UPSCALE_CHOICES)
    if upscale:
        post["upscale"] = upscale
        post["upscaler"] = (str(form.get("upscaler") or "").strip() or POST_DEFAULTS["upscaler"])
    if not post:
        return None
    try:
        PostSpec(**post)
    except InvalidRequest as e:
        raise readable(e) from None
    return post


def long_form(request: dict[str, Any]) -> dict[str, Any]:
    """The form's longer-video fields for a request (a record's schedule, ``[[0, "a"], [16, "b"]]``, as lines)."""
    schedule = request.get("prompt_schedule") or ()
    lines = [f"{e[0]}: {e[1]}" if isinstance(e, (list, tuple)) and len(e) == 2 else str(e) for e in schedule]
    return {**LONG_DEFAULTS, **{k: request[k] for k in ("seconds", "overlap", "continue_strength")
                                if request.get(k) is not None}, "prompt_schedule": "\n".join(lines)}


def schedule_lines(value: Any) -> list[str]:
    """The schedule box's text (one "FRAME: prompt" a line) or a list of such strings, blank lines left out."""
    if value is None:
        return []
    items = value.splitlines() if isinstance(value, str) else [str(v) for v in value]
    return [line.strip() for line in items if line.strip()]


def long_fields(form: dict[str, Any]) -> dict[str, Any]:
    """The request's longer-video fields for the form ({} when seconds is blank or 0 and there is no schedule).
    Checked against :class:`t2v.requests.GenerationRequest` here, so a bad value (a schedule line that is not
    "FRAME: prompt", an overlap without a longer video...) is named before anything is sent."""
    fields = {"seconds": number(form, "seconds", float) or None,
              "prompt_schedule": schedule_lines(form.get("prompt_schedule")) or None,
              "overlap": number(form, "overlap"), "continue_strength": number(form, "continue_strength", float)}
    return checked({k: v for k, v in fields.items() if v is not None})


def resolve_seed(mode: str | None, seed: Any = None, *, last_seed: int | None = None,
                 previous: Callable[[], int | None] = lambda: None, draw: bool = False) -> int | None:
    """The seed a request gets for the form's seed mode.

    "random": None (the server draws one and records it), or a fresh one when ``draw``; "fixed": the box's
    number (a blank box is random); "reuse last": ``last_seed`` (this window's last), else ``previous()`` (the
    newest job in the history), else FormError."""
    mode = mode or "random"
    if mode == "random":
        return random.randint(0, SEED_MAX) if draw else None
    if mode == "fixed":
        value = number({"seed": seed}, "seed")
        if value is not None and not 0 <= value <= SEED_MAX:
            raise FormError(f"Seed: {value} is outside 0..{SEED_MAX}; nearest valid: {min(max(value, 0), SEED_MAX)}",
                            field="seed")
        return value
    if mode == "reuse last":
        if last_seed is not None:
            return int(last_seed)
        found = previous()
        if found is not None:
            return int(found)
        raise FormError("Seed: there is no previous generation to reuse yet; choose random", field="seed")
    raise FormError(f"Seed: unknown mode {mode!r}; choose one of {', '.join(SEED_MODES)}", field="seed_mode")


def request_fields(form: dict[str, Any], seed: int | None) -> dict[str, Any]:
    """The GenerationRequest fields for a filled-in form, ``seed`` already resolved (WebM always added, for
    players). Blank fields are left out, so the server uses the model's defaults."""
    formats = [f for f in (form.get("formats") or []) if f]
    fields: dict[str, Any] = {
        "prompt": form.get("prompt") or "",
        "negative_prompt": form.get("negative_prompt") or None,
        "model": (form.get("model") or "").strip() or None,
        "num_frames": number(form, "num_frames"),
        "num_inference_steps": number(form, "num_inference_steps"),
        "guidance_scale": number(form, "guidance_scale", float),
        "fps": number(form, "fps", float),
        "width": number(form, "width"),
        "height": number(form, "height"),
        "scheduler": form.get("scheduler") or None,
        "seed": seed,
        "formats": list(dict.fromkeys([*formats, PLAYER_FORMAT])),
        "post": post_fields(form),
        **long_fields(form),
        **adapter_fields(form),
        **control_fields(form),
    }
    if not fields["prompt"].strip():
        raise FormError("Prompt: describe the video you want first", field="prompt")
    return {k: v for k, v in fields.items() if v is not None}
