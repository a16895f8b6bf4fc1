"""Stable Diffusion 1.x / 2.x and SDXL: the text-to-image families of image mode (``t2v image``,
``t2v sequence``). Their sampling lives in :mod:`t2v.image.sd`; the runner dispatches image and sequence
requests there."""

from __future__ import annotations

from pathlib import Path

from t2v.families.base import Component, Family, Rules
from t2v.families.modelscope import CLIP_COMPONENTS
from t2v.models.hub.sd import SD_CARD, SDXL_CARD, SD_DEFAULTS  # noqa: F401  (named here too)



class StableDiffusionFamily(Family):
    card = SD_CARD
    components = (*CLIP_COMPONENTS, Component("unet", ("UNet2DConditionModel",)))

    def rules(self, path: Path | None) -> Rules:
        return Rules(size_multiple=8, modes=self.modes)


class StableDiffusionXLFamily(StableDiffusionFamily):
    card = SDXL_CARD
    components = (*StableDiffusionFamily.components,
                  Component("tokenizer_2", ("CLIPTokenizer", "CLIPTokenizerFast"), module=False, prompt=True),
                  Component("text_encoder_2", ("CLIPTextModelWithProjection",), weight_stem="model", prompt=True))
