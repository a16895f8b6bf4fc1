"""The card of Stable Diffusion 1.x / 2.x and SDXL: what t2v knows of the family without importing its code (:mod:`t2v.families.sd`)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from t2v.models.spec import FamilyCard, ModelSpec

# Text-to-image models for image mode (t2v image / t2v sequence): 25 DPM-Solver++ steps, guidance 7.5.
SD_DEFAULTS = {"width": 512, "height": 512, "num_frames": 16, "fps": 12, "guidance_scale": 7.5,
               "num_inference_steps": 25, "scheduler": "dpm++", "negative_prompt": "blurry, low quality, distorted, artifacts"}


def _spec(id_: str, family: str, description: str, defaults: dict[str, Any], license_: str, download_gb: float,
          vram_gb: float, aliases: tuple[str, ...], notes: str = "") -> ModelSpec:
    """A text-to-image hub model with an fp16 variant."""
    return ModelSpec(id=id_, family=family, description=description, defaults=defaults, license=license_,
                     download_gb=download_gb, vram_gb=vram_gb, has_fp16_variant=True, notes=notes, aliases=aliases,
                     tasks=("image",))


SD_CARD = FamilyCard(
    name="sd",
    ref="t2v.families.sd:StableDiffusionFamily",
    description="Stable Diffusion 1.x / 2.x text-to-image (image mode)",
    pipelines=("StableDiffusionPipeline",),
    modes=("image",),
    defaults=SD_DEFAULTS,
    tiny={"sd": "t2v.models.tiny:make_tiny_sd"},
    order=70,
    models=(
        _spec("stable-diffusion-v1-5/stable-diffusion-v1-5", "sd", "Stable Diffusion 1.5: text-to-image at 512x512; "
              "the default for t2v image / sequence.", SD_DEFAULTS, "CreativeML OpenRAIL-M", 2.6, 3.5, ("sd15", "sd-1.5")),
        _spec("stabilityai/stable-diffusion-2-1", "sd", "Stable Diffusion 2.1 (v-prediction, OpenCLIP ViT-H text "
              "encoder) at 768x768.", {**SD_DEFAULTS, "width": 768, "height": 768}, "CreativeML OpenRAIL++-M", 2.6, 5.0,
              ("sd21", "sd-2.1")),
    ),
)

SDXL_DEFAULTS = {**SD_DEFAULTS, "width": 1024, "height": 1024}

# SDXL runs as SD does (image mode), with a second text encoder and pooled text + size conditioning.
SDXL_CARD = replace(
    SD_CARD, name="sdxl", ref="t2v.families.sd:StableDiffusionXLFamily",
    description="Stable Diffusion XL text-to-image (image mode; two text encoders)",
    pipelines=("StableDiffusionXLPipeline",), defaults=SDXL_DEFAULTS, tiny={"sdxl": "t2v.models.tiny:make_tiny_sdxl"},
    order=71,
    models=(
        _spec("stabilityai/stable-diffusion-xl-base-1.0", "sdxl", "SDXL base 1.0 at 1024x1024 (two text encoders, "
              "pooled text + size conditioning).", SDXL_DEFAULTS, "CreativeML OpenRAIL++-M", 6.9, 10.0, ("sdxl",),
              notes="The fp16 VAE of this repo overflows in fp16; t2v runs it as the plan's dtype (use bf16 on GPU)."),
    ),
)
