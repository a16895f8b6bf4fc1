"""SkyReels-V2 (``SkyReelsV2Pipeline``, ``SkyReelsV2ImageToVideoPipeline``): Wan 2.1's architecture, trained further.

Without diffusion forcing, diffusers' SkyReels-V2 pipelines are Wan 2.1's step for step: the same UMT5 prompt
encoding (512 tokens, embeddings past the prompt zeroed), fp32 noise from a CPU generator, separate conditional
and unconditional passes, the UniPC flow-matching scheduler, and for image-to-video the Wan 2.1 I2V conditioning
(the image, then black frames, through the VAE encoder with the first frame's mask concatenated, and the CLIP
image encoder's penultimate hidden states for the image cross-attention). The ``SkyReelsV2Transformer3DModel`` takes
the Wan transformer's arguments. So this family is the Wan family (:mod:`t2v.families.wan`) with SkyReels' pipeline
and transformer classes and its own declarations: the same loop, so a seed gives the stock pipeline's frames, with
per-step progress and previews, cancel between steps without decoding, and checkpoints that resume bitwise.

Not here yet: the diffusion-forcing pipelines (``SkyReelsV2DiffusionForcing*``: long videos made block by block
with per-frame timesteps), video-to-video, and diffusers' step-cache hooks (they do not know the SkyReels
transformer's block class).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from t2v.families.base import Rules, read_index
from t2v.families.wan import WanFamily
from t2v.models.hub.skyreels import CARD, I2V_PIPELINE

TRANSFORMER = "SkyReelsV2Transformer3DModel"
# The component classes that differ from Wan's: the transformer, and the hub repos' CLIPProcessor.
_CLASSES = {"transformer": (TRANSFORMER,), "image_processor": ("CLIPProcessor", "CLIPImageProcessor")}


class SkyReelsV2Family(WanFamily):
    card = CARD
    components = tuple(replace(c, classes=_CLASSES.get(c.name, c.classes))
                       for c in WanFamily.components if c.name != "transformer_2")
    caches = ()
    encodes_video = False
    lora_loader = "SkyReelsV2LoraLoaderMixin"
    lora_experts = ("transformer",)

    def rules(self, path: Path | None) -> Rules:
        """Wan's rules for the folder; an image-to-video folder (``SkyReelsV2ImageToVideoPipeline``) needs an image."""
        rules = super().rules(path)
        if path is not None and read_index(path).get("_class_name") == I2V_PIPELINE:
            return replace(rules, modes=("i2v",))
        return rules

    def takes_control(self, path: Path | None) -> bool:
        return False
