"""SkyReels-V2 (``SkyReelsV2Pipeline``, ``SkyReelsV2ImageToVideoPipeline``): Wan 2.1's architecture, trained further.

Without diffusion forcing, diffusers' SkyReels-V2 pipelines are Wan 2.1's step for step: the same UMT5 prompt
encoding (512 tokens, embeddings past the prompt zeroed), fp32 noise from a CPU generator, separate conditional
and unconditional passes, the UniPC flow-matching scheduler, and for image-to-video the Wan 2.1 I2V conditioning
(the image, then black frames, through the VAE encoder with the first frame's mask concatenated, and the CLIP
image encoder's penultimate hidden states for the image cross-attention). The ``SkyReelsV2Transformer3DModel`` takes
the Wan transformer's arguments. So this family is the Wan family (:mod:`t2v.families.wan`) with SkyReels' pipeline
and transformer classes and its own declarations: the same loop, so a seed gives the stock pipeline's frames, with
per-step progress and previews, cancel between steps without decoding, and checkpoints that resume bitwise.

The diffusion-forcing models (``SkyReelsV2DiffusionForcingPipeline``: long videos made window by window, each
latent frame on its own timestep) are :class:`SkyReelsV2DFFamily`, whose loop is :mod:`t2v.families.skyreels_df`.

Step caches: diffusers' hooks, with the SkyReels block's output layout registered
(:func:`t2v.sampling.hookcaches.register_blocks`). Not here yet: video-to-video (SDEdit) on the SkyReels models.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from t2v.errors import InvalidRequest
from t2v.families.base import RunContext, Rules, read_index, refuse_in_one_run
from t2v.sampling.base import EngineRun
from t2v.families.wan import WanFamily
from t2v.families import skyreels_df
from t2v.models.hub.skyreels import CARD, DF_CARD, I2V_PIPELINE

TRANSFORMER = "SkyReelsV2Transformer3DModel"
# The component classes that differ from Wan's: the transformer, and the hub repos' CLIPProcessor.
_CLASSES = {"transformer": (TRANSFORMER,), "image_processor": ("CLIPProcessor", "CLIPImageProcessor")}


class SkyReelsV2Family(WanFamily):
    card = CARD
    components = tuple(replace(c, classes=_CLASSES.get(c.name, c.classes))
                       for c in WanFamily.components if c.name != "transformer_2")
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


class SkyReelsV2DFFamily(SkyReelsV2Family):
    """Diffusion forcing: text- and image-to-video, any 4k+1 length (windows of ``base_num_frames`` beyond it)."""

    card = DF_CARD
    # diffusers' step hooks compare a step with the last; here a step's active frames and their timesteps move
    # along the window (the transformer sees a different slice each row), so no step cache applies
    caches = ()
    long_method = "diffusion forcing"

    def rules(self, path: Path | None) -> Rules:
        return replace(super().rules(path), modes=self.modes)

    def sample(self, model, request, ctx: RunContext) -> EngineRun:
        return skyreels_df.sample(model, request, ctx)

    def guidance_passes(self, request) -> int:
        return 2 if request.guidance_scale > 1.0 else 1

    def denoised_frames(self, request, defaults: dict[str, Any]) -> int | None:
        """A clip longer than ``base_num_frames`` is denoised one window of that many frames at a time."""
        base = skyreels_df.merged(defaults, request)["base_num_frames"]
        return base if base and request.num_frames and request.num_frames > base else None

    def takes_last_image(self, path: Path | None) -> bool:
        """Diffusion forcing from an image ends on a last image too (one window)."""
        return True

    def check(self, request, path: Path | None, *, model: str = "this model") -> None:
        super().check(request, path, model=model)
        if request.mode == "video" and request.num_frames and request.seconds is None and not request.extend:
            opts = skyreels_df.merged({}, request)  # the resolved request's extras hold the model's defaults
            skyreels_df.check_blocks(request.num_frames, skyreels_df.folder_temporal(path), opts,
                                     skyreels_df.folder_block(path, opts))
        if getattr(request, "last_image", None) and request.mode == "video":
            extras = {k: v for k, v in (getattr(request, "extras", None) or {}).items() if v is not None}
            base = {**skyreels_df.OPTIONS, **extras}["base_num_frames"]
            if request.seconds is not None or (base and request.num_frames and request.num_frames > base):
                raise InvalidRequest(f"last_image: {model} holds a last frame in one window of base_num_frames "
                                     f"({base}) only; nearest valid: num_frames {base}, without seconds",
                                     field="last_image")

    def check_long(self, request, modes: tuple[str, ...], *, model: str) -> None:
        """``seconds`` and ``extend`` are made natively (one run, window by window); segments' own settings do
        not apply."""
        refuse_in_one_run(request, ("prompt_schedule", "overlap", "continue_strength"), model=model,
                          how="by diffusion forcing (the windows overlap by --overlap-history)")

    def native_long(self, model, request, clip=None):
        """``seconds`` at the request's fps, rounded up to 4k+1 frames and whole causal blocks, as one
        diffusion-forcing run; with a clip (``extend``), the run that continues it from its last
        ``overlap_history`` frames, which num_frames counts (:func:`t2v.families.skyreels_df.extension`)."""
        temporal = model.components["vae"].config.scale_factor_temporal
        if clip is None:  # rounded up to whole causal blocks
            opts = skyreels_df.options(model, request)
            frames = skyreels_df.in_blocks(temporal * math.ceil(request.seconds * request.fps / temporal) + 1,
                                           temporal, opts, skyreels_df.block_size(model, opts))
            return request.model_copy(update={"seconds": None, "num_frames": frames})
        overlap, frames = skyreels_df.extension(model, request, len(clip.frames), temporal)
        return request.model_copy(update={"seconds": None, "num_frames": frames,
                                          "extras": {**request.extras, "overlap_history": overlap}})

    def meta_timestep(self, path: Path, frames: int, tokens_per_frame: int, meta, transformer):
        """A timestep per latent frame and the fps input, as diffusion forcing calls the transformer; with the
        causal blocks the published models run in (``causal_block_size`` 5), so the block mask over all the
        window's tokens (one byte per token pair) is counted: with the window as one block, the same size."""
        import torch

        transformer.register_to_config(num_frame_per_block=frames)
        return torch.zeros(1, frames, **meta), {"enable_diffusion_forcing": True, "fps": [1]}
