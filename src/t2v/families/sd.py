"""Stable Diffusion 1.x / 2.x and SDXL: the text-to-image families of image mode (``t2v image``,
``t2v sequence``). Their sampling lives in :mod:`t2v.image.sd`; the runner dispatches image and sequence
requests there."""

from __future__ import annotations

from pathlib import Path

from t2v.families.base import Component, Family, Rules
from t2v.families.modelscope import CLIP_COMPONENTS

SD_DEFAULTS = {"width": 512, "height": 512, "num_frames": 16, "fps": 12, "guidance_scale": 7.5,
               "num_inference_steps": 25, "scheduler": "model", "negative_prompt": "blurry, low quality, distorted, artifacts"}


class StableDiffusionFamily(Family):
    name = "sd"
    description = "Stable Diffusion 1.x / 2.x text-to-image (image mode)"
    pipelines = ("StableDiffusionPipeline",)
    components = (*CLIP_COMPONENTS, Component("unet", ("UNet2DConditionModel",)))
    defaults = SD_DEFAULTS
    modes = ("image",)
    tiny = {"sd": "t2v.models.tiny:make_tiny_sd"}

    def rules(self, path: Path | None) -> Rules:
        return Rules(size_multiple=8, modes=self.modes)


class StableDiffusionXLFamily(StableDiffusionFamily):
    name = "sdxl"
    description = "Stable Diffusion XL text-to-image (image mode; two text encoders)"
    pipelines = ("StableDiffusionXLPipeline",)
    components = (*StableDiffusionFamily.components,
                  Component("tokenizer_2", ("CLIPTokenizer", "CLIPTokenizerFast"), module=False),
                  Component("text_encoder_2", ("CLIPTextModelWithProjection",), weight_stem="model"))
    defaults = {**SD_DEFAULTS, "width": 1024, "height": 1024}
    tiny = {"sdxl": "t2v.models.tiny:make_tiny_sdxl"}
