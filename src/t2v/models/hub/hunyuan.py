"""The card of HunyuanVideo: what t2v knows of the family without importing its code (:mod:`t2v.families.hunyuan`)."""

from __future__ import annotations

from typing import Any

from t2v.models.spec import DISPATCHED_MASKED, FamilyCard, ModelSpec
from t2v.requests import FamilyExtras, knob


class HunyuanExtras(FamilyExtras):
    """HunyuanVideo's own settings."""

    guidance_scale_2: float | None = knob(None, ge=0.0, le=50.0, cli="--guidance-2", help=(
        "HunyuanVideo: the true CFG scale (the stock true_cfg_scale; above 1 a second pass with the negative "
        "prompt, twice the steps' cost)."))

I2V_PIPELINE = "HunyuanVideoImageToVideoPipeline"
LICENSE = "Tencent Hunyuan Community License (not valid in the EU, the UK and South Korea)"
LICENSE_NOTICE = (
    "HunyuanVideo is released under the Tencent Hunyuan Community License Agreement. The licence does not apply "
    "in the European Union, the United Kingdom and South Korea: it grants no rights there, so do not download or "
    "use this model in those territories. Elsewhere, services with more than 100 million monthly active users "
    "need a licence from Tencent, and the Acceptable Use Policy applies. Read the full text before downloading.")
_DEFAULTS = {"width": 1280, "height": 720, "num_frames": 129, "fps": 24, "guidance_scale": 6.0, "guidance_scale_2": 1.0,
             "num_inference_steps": 50, "scheduler": "model", "negative_prompt": ""}
_SPEC = dict(family="hunyuan", license=LICENSE, has_fp16_variant=False, revision="main", license_notice=LICENSE_NOTICE)


def stock_arguments(index: dict[str, Any], request: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The stock HunyuanVideo call's true CFG scale: t2v's ``guidance_scale_2`` (1, off, when unset)."""
    scale = request.get("guidance_scale_2")
    return {"true_cfg_scale": scale if scale is not None else 1.0}


CARD = FamilyCard(
    name="hunyuan",
    ref="t2v.families.hunyuan:HunyuanFamily",
    description="HunyuanVideo text-to-video and image-to-video (13B transformer, Llama/Llava + CLIP text, causal 3D VAE)",
    pipelines=("HunyuanVideoPipeline", I2V_PIPELINE),
    kernels=DISPATCHED_MASKED,  # diffusers' attention dispatcher, with the text mask
    modes=("video", "i2v"),
    encodes_video=True,  # video-to-video (text-to-video folders): t2v.sampling.v2v and the family's encode_video
    defaults=dict(_DEFAULTS),
    tiny={"hunyuan": "t2v.models.tiny.hunyuan:make_hunyuan", "hunyuan-i2v": "t2v.models.tiny.hunyuan:make_hunyuan_i2v",
            "hunyuan-i2v-33ch": "t2v.models.tiny.hunyuan:make_hunyuan_i2v_33ch"},
    extras=HunyuanExtras,
    stock=stock_arguments,
    order=50,
    models=(
        ModelSpec(id="hunyuanvideo-community/HunyuanVideo", description="HunyuanVideo 13B text-to-video at 720p "
                  "(guidance-distilled; Llava-Llama-3-8B + CLIP-L text encoders, causal 3D VAE), 5 s at 24 fps.",
                  defaults=dict(_DEFAULTS), download_gb=41.9, vram_gb=60.0, aliases=("hunyuan", "hunyuanvideo"),
                  license_url="https://huggingface.co/tencent/HunyuanVideo/blob/main/LICENSE",
                  notes="Officially 720x1280 (60 GB) or 544x960 (45 GB, --width 960 --height 544), 129 frames; "
                        "--guidance is the embedded guidance (6.0); --guidance-2 above 1 adds true CFG with the "
                        "negative prompt (twice the steps' cost).", **_SPEC),
        ModelSpec(id="hunyuanvideo-community/HunyuanVideo-I2V", description="HunyuanVideo-I2V 13B image-to-video at "
                  "720p (token_replace: the first frame is the image; needs --image).",
                  defaults=dict(_DEFAULTS), download_gb=42.6, vram_gb=60.0, aliases=("hunyuan-i2v",), tasks=("i2v",),
                  license_url="https://huggingface.co/tencent/HunyuanVideo-I2V/blob/main/LICENSE",
                  notes="The fixed March 2025 release (16 channels, guidance embedding 6.0); 544x960 works too. "
                        "Its text encoder is Llava (the image is also seen as 576 tokens).", **_SPEC),
        ModelSpec(id="hunyuanvideo-community/HunyuanVideo-I2V-33ch", description="The first HunyuanVideo-I2V release "
                  "(latent_concat, 33 input channels, no guidance embedding; needs --image).",
                  defaults={**_DEFAULTS, "guidance_scale": 1.0}, download_gb=42.6, vram_gb=60.0, tasks=("i2v",),
                  license_url="https://huggingface.co/tencent/HunyuanVideo-I2V/blob/main/LICENSE",
                  notes="As the stock pipeline, the clip is num_frames - 4 frames long (the first 4 decoded frames "
                        "are dropped); use --guidance-2 for true CFG.", **_SPEC),
    ),
)
