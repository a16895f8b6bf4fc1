"""The card of CogVideoX 2B / 5B / 1.5-5B: what t2v knows of the family without importing its code (:mod:`t2v.families.cogvideox`)."""

from __future__ import annotations

from typing import Any  # noqa: F401

from t2v.models.spec import DISPATCHED, FamilyCard, ModelSpec
from t2v.requests import FamilyExtras, knob


class CogVideoXExtras(FamilyExtras):
    """CogVideoX's own settings."""

    use_dynamic_cfg: bool | None = knob(None, help=(
        "Dynamic classifier-free guidance: the guidance rises over the steps along a cosine schedule (the stock "
        "use_dynamic_cfg; the CogVideoX-5B examples turn it on). Default off."))

I2V_PIPELINE = "CogVideoXImageToVideoPipeline"
DEFAULTS_10 = {"width": 720, "height": 480, "num_frames": 49, "fps": 8, "guidance_scale": 6.0,
               "num_inference_steps": 50, "scheduler": "model", "negative_prompt": ""}
DEFAULTS_15 = {**DEFAULTS_10, "width": 1360, "height": 768, "num_frames": 81, "fps": 16}
LICENSE_NOTICE = ("The CogVideoX License: free for academic research; commercial use needs the free basic commercial "
                  "licence (register at https://open.bigmodel.cn/mla/form), up to 1 million visits a month; no military "
                  "or illegal use.")


def _spec(id_: str, description: str, defaults: dict[str, Any], download_gb: float, vram_gb: float, aliases, *,
          tasks=("t2v",), notes: str = "") -> ModelSpec:
    apache = id_.endswith("-2b")
    return ModelSpec(id=id_, family="cogvideox", description=description, defaults=dict(defaults),
                     license="Apache-2.0" if apache else "CogVideoX License", download_gb=download_gb, vram_gb=vram_gb,
                     has_fp16_variant=False, notes=notes, aliases=(f"THUDM/{id_.split('/')[1]}", *aliases), tasks=tasks,
                     license_url=f"https://huggingface.co/{id_}/blob/main/LICENSE",
                     license_notice="" if apache else LICENSE_NOTICE)


CARD = FamilyCard(
    name="cogvideox",
    ref="t2v.families.cogvideox:CogVideoXFamily",
    description="CogVideoX 2B / 5B / 1.5-5B text-to-video and image-to-video (CogVideoX transformer, T5, 3D VAE)",
    pipelines=("CogVideoXPipeline", I2V_PIPELINE),
    kernels=DISPATCHED,  # its processors call SDPA themselves, routed to the dispatcher (t2v.sampling.kernels); no mask
    modes=("video", "i2v"),
    encodes_video=True,  # video-to-video (text-to-video folders): t2v.sampling.v2v and the family's encode_video
    defaults=DEFAULTS_10,
    tiny={"cogvideox": "t2v.models.tiny.cogvideox:make_cogvideox",
            "cogvideox-i2v": "t2v.models.tiny.cogvideox:make_cogvideox_i2v",
            "cogvideox15": "t2v.models.tiny.cogvideox:make_cogvideox15",
            "cogvideox15-i2v": "t2v.models.tiny.cogvideox:make_cogvideox15_i2v"},
    extras=CogVideoXExtras,
    order=40,
    models=(
        _spec("zai-org/CogVideoX-2b", "CogVideoX-2B text-to-video at 720x480, 49 frames (sinusoidal positions).",
              DEFAULTS_10, 13.8, 28.0, ("cogvideox-2b", "cogvideox"), notes="fp16 is its recommended dtype."),
        _spec("zai-org/CogVideoX-5b", "CogVideoX-5B text-to-video at 720x480, 49 frames (3D rotary positions).",
              DEFAULTS_10, 21.5, 36.0, ("cogvideox-5b",), notes="bf16 is its recommended dtype."),
        _spec("zai-org/CogVideoX-5b-I2V", "CogVideoX-5B image-to-video at 720x480 only (needs --image).",
              DEFAULTS_10, 21.5, 36.0, ("cogvideox-5b-i2v",), tasks=("i2v",),
              notes="Learned position embeddings: 720x480 is the only size."),
        _spec("zai-org/CogVideoX1.5-5B", "CogVideoX 1.5 5B text-to-video at 1360x768, 81 frames, 16 fps.",
              DEFAULTS_15, 31.1, 66.0, ("cogvideox1.5-5b", "cogvideox1.5"),
              notes="At most 1360x768 (its rotary table); the model card recommends 81 or 161 frames."),
        _spec("zai-org/CogVideoX1.5-5B-I2V", "CogVideoX 1.5 5B image-to-video up to 1360x768, 81 frames (needs --image).",
              DEFAULTS_15, 31.1, 66.0, ("cogvideox1.5-5b-i2v",), tasks=("i2v",),
              notes="Any size with min side 768 and max side up to 1360 per the card; landscape within 1360x768 here."),
    ),
)
