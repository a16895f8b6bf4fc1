"""The card of LTX-Video 0.9.x: what t2v knows of the family without importing its code (:mod:`t2v.families.ltx`)."""

from __future__ import annotations

from typing import Any

from t2v.models.spec import DISPATCHED_MASKED, FamilyCard, ModelSpec
from t2v.requests import FamilyExtras, knob


class LTXExtras(FamilyExtras):
    """LTX-Video's own settings."""

    decode_timestep: float | None = knob(None, ge=0.0, le=1.0, help=(
        "LTX-Video 0.9.1+: the timestep the VAE decodes at (the model's default)."))
    decode_noise_scale: float | None = knob(None, ge=0.0, le=1.0, help=(
        "LTX-Video 0.9.1+: noise mixed into the latents before decoding (the model's default)."))

# LTX-Video's recommended negative prompt (model cards and diffusers' LTX examples).
NEGATIVE_PROMPT = "worst quality, inconsistent motion, blurry, jittery, distorted"
CONDITION = "LTXConditionPipeline"
UPSAMPLER = "LTXLatentUpsamplePipeline"
DISTILLED_TIMESTEPS = [1000, 993, 987, 981, 975, 909, 725, 0.03]  # diffusers' LTX docs, 0.9.7 / 0.9.8 distilled
_BASE = {"width": 704, "height": 512, "num_frames": 161, "fps": 25, "guidance_scale": 3.0, "num_inference_steps": 50,
         "scheduler": "model", "negative_prompt": NEGATIVE_PROMPT}
_091 = {**_BASE, "decode_timestep": 0.05, "decode_noise_scale": 0.025}  # the timestep-conditioned VAE (0.9.1+)
_13B = {**_091, "num_inference_steps": 30, "guidance_scale": 5.0, "guidance_rescale": 0.7, "image_cond_noise_scale": 0.0}
_DISTILLED = {**_13B, "num_inference_steps": 8, "guidance_scale": 1.0, "timesteps": DISTILLED_TIMESTEPS}
_RAIL = "OpenRAIL-M (Lightricks; use restrictions apply)"
_OPEN_WEIGHTS = "LTXV Open Weights License (Lightricks; use restrictions apply)"
_NOTICE = "LTXV Open Weights License: read its terms before use; commercial use may need an agreement with Lightricks."
_FILES = "https://huggingface.co/Lightricks/LTX-Video/blob/main/"
_UNSUPPORTED = ("t2v runs text-to-video, first-frame image-to-video and video-to-video; multi-condition, "
                "video conditions and the latent upscaler second pass are not run.")


def _spec(id_: str, description: str, defaults: dict, license_: str, url: str, gb: float, vram: float, notes: str = "",
          aliases: tuple[str, ...] = ()) -> ModelSpec:
    return ModelSpec(id=id_, family="ltx", description=description, defaults=defaults, license=license_, license_url=url,
                     download_gb=gb, vram_gb=vram, has_fp16_variant=False, notes=notes, aliases=aliases,
                     tasks=("t2v", "i2v"), license_notice=_NOTICE if license_ == _OPEN_WEIGHTS else "")


def stock_arguments(index: dict[str, Any], request: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The stock LTX-Video call's own arguments: the frame rate, the VAE's decode timestep and noise, the model's
    guidance rescale, and the distilled models' custom timesteps (``LTXConditionPipeline`` at their step count)."""
    extra = {"frame_rate": request["fps"], "decode_timestep": request["decode_timestep"],
             "decode_noise_scale": request["decode_noise_scale"],
             "guidance_rescale": defaults.get("guidance_rescale", 0.0)}
    timesteps = defaults.get("timesteps") or ()
    if index.get("_class_name") == CONDITION and len(timesteps) == request["num_inference_steps"]:
        extra["timesteps"] = list(timesteps)
    return {k: v for k, v in extra.items() if v is not None}


CARD = FamilyCard(
    name="ltx",
    ref="t2v.families.ltx:LTXFamily",
    description="LTX-Video 0.9.x text-to-video and image-to-video (LTX transformer, T5-XXL, LTX video VAE)",
    pipelines=("LTXPipeline", "LTXImageToVideoPipeline", CONDITION, UPSAMPLER),
    kernels=DISPATCHED_MASKED,  # diffusers' attention dispatcher, with the text mask
    modes=("video", "i2v"),
    encodes_video=True,  # video-to-video (t2v.sampling.v2v and the family's encode_video); 0.9.7+ as denoise_strength
    defaults=dict(_BASE),
    tiny={"ltx": "t2v.models.tiny.ltx:make_ltx", "ltx-097": "t2v.models.tiny.ltx:make_ltx_097"},
    extras=LTXExtras,
    stock=stock_arguments,
    order=30,
    models=(
        _spec("Lightricks/LTX-Video", "LTX-Video 0.9.0 2B: text- and image-to-video, 704x512, 161 frames at 25 fps.",
              _BASE, _RAIL, "https://huggingface.co/Lightricks/LTX-Video", 24.0, 20.0,
              "The repo's diffusers folders hold 0.9.0 (its VAE has no timestep conditioning).", ("ltx", "ltx-0.9.0")),
        _spec("Lightricks/LTX-Video-0.9.1", "LTX-Video 0.9.1 2B with the timestep-conditioned VAE.", _091, _RAIL,
              _FILES + "ltx-video-2b-v0.9.1.license.txt", 25.0, 20.0, aliases=("ltx-0.9.1",)),
        _spec("Lightricks/LTX-Video-0.9.5", "LTX-Video 0.9.5 2B (new VAE; commercial use under OpenRAIL-M).", _091, _RAIL,
              _FILES + "ltx-video-2b-v0.9.5.license.txt", 25.0, 20.0, aliases=("ltx-0.9.5",)),
        _spec("Lightricks/LTX-Video-0.9.7-dev", "LTX-Video 0.9.7 13B dev (LTXConditionPipeline).", _13B, _OPEN_WEIGHTS,
              _FILES + "LTX-Video-Open-Weights-License-0.X.txt", 47.0, 40.0,
              "Defaults as diffusers' 0.9.7 example (30 steps, guidance 5, rescale 0.7). " + _UNSUPPORTED, ("ltx-0.9.7",)),
        _spec("Lightricks/LTX-Video-0.9.7-distilled", "LTX-Video 0.9.7 13B distilled: 8 steps, no guidance.", _DISTILLED,
              _OPEN_WEIGHTS, _FILES + "LTX-Video-Open-Weights-License-0.X.txt", 47.0, 36.0,
              "Guidance- and timestep-distilled: the custom timesteps of diffusers' docs at 8 steps (another step "
              "count uses the default schedule). " + _UNSUPPORTED, ("ltx-0.9.7-distilled",)),
        _spec("Lightricks/LTX-Video-0.9.8-13B-distilled", "LTX-Video 0.9.8 13B distilled: 8 steps, no guidance.",
              _DISTILLED, _OPEN_WEIGHTS, _FILES + "LTX-Video-Open-Weights-License-0.X.txt", 47.0, 36.0,
              "As 0.9.7 distilled; 0.9.8's long-video and tone-mapping upscaler features are not run. " + _UNSUPPORTED,
              ("ltx-0.9.8-distilled",)),
    ),
)
