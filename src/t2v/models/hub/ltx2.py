"""The card of LTX-2: what t2v knows of the family without importing its code (:mod:`t2v.families.ltx2`).

LTX-2 makes a clip and its sound together (``LTX2Pipeline``: Gemma 3 text encoder, text connectors, one
transformer with a video and an audio stream, the LTX-2 video VAE, an audio VAE over mel spectrograms and a
vocoder). Defaults are diffusers' LTX-2 docs (768x512, 121 frames at 24 fps, 40 steps, guidance 4.0) with
``LTX2Pipeline``'s own guidance defaults (audio guidance 7.0, spatio-temporal guidance 1.0 at the block its
docstring recommends for LTX-2.0, modality guidance 3.0, rescale 0.7). The distilled checkpoint runs as diffusers'
docs run it: 8 steps on the distilled sigmas, no guidance. Both repos have a ``latent_upsampler/`` for the two-stage
path (``latent_upscale``); the dev model's stage 2 adds the repo's distilled LoRA, which a pull brings too.
"""

from __future__ import annotations

from t2v.models.spec import DISPATCHED_MASKED, FamilyCard, ModelSpec
from t2v.requests import FamilyExtras, knob

PIPELINE, I2V_PIPELINE = "LTX2Pipeline", "LTX2ImageToVideoPipeline"
# diffusers' LTX-2 docs' negative prompt.
NEGATIVE_PROMPT = ("shaky, glitchy, low quality, worst quality, deformed, distorted, disfigured, motion smear, motion "
                   "artifacts, fused fingers, bad anatomy, weird hand, ugly, transition, static.")
DISTILLED_SIGMAS = [1.0, 0.99375, 0.9875, 0.98125, 0.975, 0.909375, 0.725, 0.421875]  # diffusers.pipelines.ltx2.utils


class LTX2Extras(FamilyExtras):
    """LTX-2's own settings."""

    audio_guidance_scale: float | None = knob(None, ge=0.0, le=30.0, help=(
        "LTX-2: classifier-free guidance of the sound (the model's default, 7.0; 1 turns it off)."))
    latent_upscale: bool | None = knob(None, help=(
        "LTX-2: the two-stage path: make the clip at half the width and height, upscale its latents 2x with the "
        "model's latent upsampler and refine them in 3 distilled steps (width and height then multiples of 64)."))


STAGE_2_LORA = "ltx-2-19b-distilled-lora-384.safetensors"  # the repo's distilled LoRA, for the two-stage path's stage 2
_BASE = {"width": 768, "height": 512, "num_frames": 121, "fps": 24, "guidance_scale": 4.0, "num_inference_steps": 40,
         "scheduler": "model", "negative_prompt": NEGATIVE_PROMPT, "stg_blocks": [29], "stage_2_lora": STAGE_2_LORA}
_DISTILLED = {**_BASE, "num_inference_steps": 8, "guidance_scale": 1.0, "audio_guidance_scale": 1.0, "stg_scale": 0.0,
              "audio_stg_scale": 0.0, "modality_scale": 1.0, "audio_modality_scale": 1.0, "guidance_rescale": 0.0,
              "audio_guidance_rescale": 0.0, "sigmas": DISTILLED_SIGMAS, "stage_2_lora": None}
LICENSE = "LTX-2 Community License (Lightricks; use restrictions apply)"
_NOTICE = "LTX-2 Community License: read its terms before use; commercial use above a revenue threshold needs a licence."
_SIZES = ("Sizes approximate: the 19B transformer and Gemma 3 12B in bf16; GPU memory without offload. Text- and "
          "image-to-video on the same folder; --latent-upscale runs the two-stage path (from text, an image, a "
          "first and last frame or an IC-LoRA's reference) with the folder's latent upsampler.")

CARD = FamilyCard(
    name="ltx2",
    ref="t2v.families.ltx2:LTX2Family",
    description="LTX-2 text-to-video with sound (Gemma 3, audio-video transformer, LTX-2 video VAE, audio VAE, vocoder)",
    pipelines=(PIPELINE, I2V_PIPELINE),
    kernels=DISPATCHED_MASKED,  # diffusers' attention dispatcher, with the text mask
    modes=("video", "i2v"),
    defaults=dict(_BASE),
    tiny={"ltx2": "t2v.models.tiny.ltx2:make_ltx2"},
    extras=LTX2Extras,
    order=31,
    models=(
        ModelSpec(id="Lightricks/LTX-2", family="ltx2", defaults=dict(_BASE), license=LICENSE,
                  description="LTX-2 19B dev: video with synchronized sound, 768x512, 121 frames at 24 fps.",
                  license_url="https://huggingface.co/Lightricks/LTX-2", download_gb=70.0, vram_gb=48.0,
                  has_fp16_variant=False, notes=_SIZES, aliases=("ltx2", "ltx-2"), license_notice=_NOTICE,
                  tasks=("t2v", "i2v", "flf"), files=(STAGE_2_LORA,)),
        ModelSpec(id="rootonchair/LTX-2-19b-distilled", family="ltx2", defaults=dict(_DISTILLED), license=LICENSE,
                  description="LTX-2 19B distilled (the diffusers docs' conversion): 8 steps, no guidance.",
                  license_url="https://huggingface.co/Lightricks/LTX-2", download_gb=70.0, vram_gb=48.0,
                  has_fp16_variant=False, notes=_SIZES, aliases=("ltx2-distilled", "ltx-2-distilled"),
                  license_notice=_NOTICE, tasks=("t2v", "i2v", "flf")),
    ),
)
