"""The card of SkyReels-V2: what t2v knows of the family without importing its code (:mod:`t2v.families.skyreels`).

The text-to-video and image-to-video models diffusers runs without diffusion forcing (``SkyReelsV2Pipeline``,
``SkyReelsV2ImageToVideoPipeline``; the diffusers docs list them). Defaults are the model cards' and the diffusers
docs' (544x960 or 720x1280, 97 or 121 frames at 24 fps; flow shift 8.0 and guidance 6.0 for text-to-video, 5.0
and 5.0 for image-to-video); the negative prompt is Wan's, as the SkyReels-V2 repository's scripts use it.
Licence: the model cards say ``license: other``, ``license_name: skywork-license`` (the Skywork Community License,
in each repo's LICENSE file); read it before use.
"""

from __future__ import annotations

from dataclasses import replace

from t2v.models.hub.wan import NEGATIVE_PROMPT
from t2v.models.spec import DISPATCHED, FamilyCard, ModelSpec
from t2v.requests import FamilyExtras, knob


class SkyReelsV2Extras(FamilyExtras):
    """SkyReels-V2's own settings."""

    flow_shift: float | None = knob(None, gt=0.0, le=100.0, cli="--flow-shift", help=(
        "SkyReels-V2: shift of the flow-matching noise schedule (default: the registry's 8.0 for text-to-video, "
        "5.0 for image-to-video, else the folder's scheduler config)."))


T2V_PIPELINE, I2V_PIPELINE = "SkyReelsV2Pipeline", "SkyReelsV2ImageToVideoPipeline"
LICENSE = "Skywork Community License (skywork-license)"
_DEFAULTS = {"width": 960, "height": 544, "num_frames": 97, "fps": 24, "guidance_scale": 6.0,
             "num_inference_steps": 50, "scheduler": "model", "negative_prompt": NEGATIVE_PROMPT}
_T2V = {**_DEFAULTS, "flow_shift": 8.0}
_I2V = {**_DEFAULTS, "guidance_scale": 5.0, "flow_shift": 5.0}
_720P = {"width": 1280, "height": 720, "num_frames": 121}
_SIZES = "Sizes approximate (the Wan 2.1 repos of the same size, fp32 files; GPU memory in bf16 without offload)."


def _spec(name: str, description: str, defaults: dict, download_gb: float, vram_gb: float, **kw) -> ModelSpec:
    repo = f"Skywork/SkyReels-V2-{name}-Diffusers"
    return ModelSpec(id=repo, family="skyreels-v2", description=description, defaults=defaults, license=LICENSE,
                     license_url=f"https://huggingface.co/{repo}/blob/main/LICENSE", download_gb=download_gb,
                     vram_gb=vram_gb, has_fp16_variant=False, notes=_SIZES, **kw)


CARD = FamilyCard(
    name="skyreels-v2",
    ref="t2v.families.skyreels:SkyReelsV2Family",
    description="SkyReels-V2 text-to-video and image-to-video (Wan 2.1 architecture: UMT5, DiT, Wan 3D VAE)",
    pipelines=(T2V_PIPELINE, I2V_PIPELINE),
    kernels=DISPATCHED,  # diffusers' attention dispatcher, no mask
    modes=("video", "i2v"),
    defaults=dict(_DEFAULTS),
    tiny={"skyreels-v2": "t2v.models.tiny.skyreels:make_skyreels_v2",
          "skyreels-v2-i2v": "t2v.models.tiny.skyreels:make_skyreels_v2_i2v"},
    extras=SkyReelsV2Extras,
    order=20,
    models=(
        _spec("T2V-14B-540P", "SkyReels-V2 text-to-video 14B at 540p (960x544, 97 frames at 24 fps).", dict(_T2V),
              80.0, 40.0, aliases=("skyreels-v2", "skyreels-v2-t2v-540p")),
        _spec("T2V-14B-720P", "SkyReels-V2 text-to-video 14B at 720p (1280x720, 121 frames at 24 fps).",
              {**_T2V, **_720P}, 80.0, 48.0, aliases=("skyreels-v2-t2v-720p",)),
        _spec("I2V-1.3B-540P", "SkyReels-V2 image-to-video 1.3B at 540p (CLIP image encoder; needs --image).",
              dict(_I2V), 31.0, 14.0, aliases=("skyreels-v2-i2v-1.3b",), tasks=("i2v",)),
        _spec("I2V-14B-540P", "SkyReels-V2 image-to-video 14B at 540p (needs --image).", dict(_I2V), 82.0, 42.0,
              aliases=("skyreels-v2-i2v-540p",), tasks=("i2v",)),
        _spec("I2V-14B-720P", "SkyReels-V2 image-to-video 14B at 720p (needs --image).", {**_I2V, **_720P}, 82.0, 50.0,
              aliases=("skyreels-v2-i2v-720p",), tasks=("i2v",)),
    ),
)


DF_PIPELINE, DF_I2V_PIPELINE = "SkyReelsV2DiffusionForcingPipeline", "SkyReelsV2DiffusionForcingImageToVideoPipeline"
DF_V2V_PIPELINE = "SkyReelsV2DiffusionForcingVideoToVideoPipeline"  # continues a clip (t2v extend)


class SkyReelsV2DFExtras(SkyReelsV2Extras):
    """SkyReels-V2 diffusion forcing's own settings (the stock call's arguments)."""

    ar_step: int | None = knob(None, ge=0, le=100, cli="--ar-step", help=(
        "SkyReels-V2 DF: steps each causal block lags the one before (0: every frame on the same step; the "
        "model's default, 5)."))
    causal_block_size: int | None = knob(None, ge=1, le=64, cli="--causal-block-size", help=(
        "SkyReels-V2 DF: latent frames denoised together as one causal block (the model's default, 5)."))
    base_num_frames: int | None = knob(None, ge=1, le=1001, cli="--base-num-frames", help=(
        "SkyReels-V2 DF: frames per window; a longer clip is made window by window (the model's default, 97)."))
    overlap_history: int | None = knob(None, ge=1, le=1001, cli="--overlap-history", help=(
        "SkyReels-V2 DF: frames each window takes over from the one before (17 or 37 recommended; the model's "
        "default, 17)."))
    addnoise_condition: float | None = knob(None, ge=0.0, le=1000.0, cli="--addnoise-condition", help=(
        "SkyReels-V2 DF: noise added to the frames taken over, for smoother joins (20 recommended)."))


_DF = {**_T2V, "num_inference_steps": 30, "ar_step": 5, "causal_block_size": 5, "base_num_frames": 97,
       "overlap_history": 17, "addnoise_condition": 20.0}
_DF_720P = {**_DF, **_720P, "base_num_frames": 121}


def _df_spec(name: str, description: str, defaults: dict, download_gb: float, vram_gb: float, **kw) -> ModelSpec:
    return replace(_spec(name, description, defaults, download_gb, vram_gb, **kw), family="skyreels-v2-df",
                   tasks=("t2v", "i2v"))


DF_CARD = FamilyCard(
    name="skyreels-v2-df",
    ref="t2v.families.skyreels:SkyReelsV2DFFamily",
    description="SkyReels-V2 diffusion forcing: long videos made window by window, each frame on its own step; "
                "continues clips",
    pipelines=(DF_PIPELINE, DF_I2V_PIPELINE, DF_V2V_PIPELINE),
    kernels=DISPATCHED,  # the same transformer as SkyReels-V2's
    modes=("video", "i2v"),
    defaults=dict(_DF),
    tiny={"skyreels-v2-df": "t2v.models.tiny.skyreels:make_skyreels_v2_df"},
    extras=SkyReelsV2DFExtras,
    order=21,
    models=(
        _df_spec("DF-1.3B-540P", "SkyReels-V2 diffusion forcing 1.3B at 540p: long videos, 97-frame windows.", dict(_DF),
                 31.0, 14.0, aliases=("skyreels-v2-df", "skyreels-v2-df-1.3b")),
        _df_spec("DF-14B-540P", "SkyReels-V2 diffusion forcing 14B at 540p: long videos, 97-frame windows.", dict(_DF),
                 80.0, 40.0, aliases=("skyreels-v2-df-14b",)),
        _df_spec("DF-14B-720P", "SkyReels-V2 diffusion forcing 14B at 720p: long videos, 121-frame windows.",
                 dict(_DF_720P), 80.0, 48.0, aliases=("skyreels-v2-df-720p",)),
    ),
)
