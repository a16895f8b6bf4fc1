"""The card of Stable Diffusion 1.x / 2.x and SDXL: what t2v knows of the family without importing its code (:mod:`t2v.families.sd`)."""

from __future__ import annotations

from t2v.models.spec import FamilyCard

SD_DEFAULTS = {"width": 512, "height": 512, "num_frames": 16, "fps": 12, "guidance_scale": 7.5,
               "num_inference_steps": 25, "scheduler": "model", "negative_prompt": "blurry, low quality, distorted, artifacts"}


SD_CARD = FamilyCard(
    name="sd",
    ref="t2v.families.sd:StableDiffusionFamily",
    description="Stable Diffusion 1.x / 2.x text-to-image (image mode)",
    pipelines=("StableDiffusionPipeline",),
    defaults=SD_DEFAULTS,
    tiny={"sd": "t2v.models.tiny:make_tiny_sd"},
    models=(),
)

SDXL_CARD = FamilyCard(
    name="sdxl",
    ref="t2v.families.sd:StableDiffusionXLFamily",
    description="Stable Diffusion XL text-to-image (image mode; two text encoders)",
    pipelines=("StableDiffusionXLPipeline",),
    defaults={**SD_DEFAULTS, "width": 1024, "height": 1024},
    tiny={"sdxl": "t2v.models.tiny:make_tiny_sdxl"},
    models=(),
)
