"""The card of HunyuanVideo 1.5: what t2v knows of the family without importing its code
(:mod:`t2v.families.hunyuan15`).

The diffusers-format repos of ``hunyuanvideo-community`` (the layout diffusers' docs use). Defaults are the
pipeline's: 121 frames, 50 steps, the 16:9 size of the model's target size (848x480 for 480p, 1280x720 for 720p),
guidance 6 (the repos' ``guider`` config), 24 fps. Licence: the Tencent Hunyuan Community License, which
grants nothing in the European Union, the United Kingdom and South Korea (as HunyuanVideo's).
"""

from __future__ import annotations

from t2v.models.hub.hunyuan import LICENSE, LICENSE_NOTICE
from t2v.models.spec import DISPATCHED_MASKED, FamilyCard, ModelSpec

PIPELINE, I2V_PIPELINE = "HunyuanVideo15Pipeline", "HunyuanVideo15ImageToVideoPipeline"
_480P = {"width": 848, "height": 480, "num_frames": 121, "fps": 24, "guidance_scale": 6.0, "num_inference_steps": 50,
         "scheduler": "model", "negative_prompt": ""}
_720P = {**_480P, "width": 1280, "height": 720}
_NOTES = ("Sizes approximate (8.3B transformer and Qwen2.5-VL-7B in bf16; GPU memory without offload). The "
          "super-resolution stage is not run.")


def _spec(name: str, description: str, defaults: dict, vram_gb: float, aliases: tuple[str, ...],
          tasks: tuple[str, ...] = ("t2v",)) -> ModelSpec:
    repo = f"hunyuanvideo-community/HunyuanVideo-1.5-{name}"
    return ModelSpec(id=repo, family="hunyuan15", description=description, defaults=defaults, license=LICENSE,
                     license_url=f"https://huggingface.co/{repo}", download_gb=34.0 if "i2v" in tasks else 33.0,
                     vram_gb=vram_gb, has_fp16_variant=False, notes=_NOTES, aliases=aliases,
                     license_notice=LICENSE_NOTICE, tasks=tasks)


CARD = FamilyCard(
    name="hunyuan15",
    ref="t2v.families.hunyuan15:HunyuanVideo15Family",
    description="HunyuanVideo 1.5 text-to-video (Qwen2.5-VL + ByT5 glyph encoder, 8.3B transformer, 16x VAE)",
    pipelines=(PIPELINE, I2V_PIPELINE),
    kernels=DISPATCHED_MASKED,  # diffusers' attention dispatcher, with the text mask
    modes=("video", "i2v"),
    defaults=dict(_480P),
    tiny={"hunyuan15": "t2v.models.tiny.hunyuan15:make_hunyuan15",
          "hunyuan15-i2v": "t2v.models.tiny.hunyuan15:make_hunyuan15_i2v"},
    order=51,
    models=(
        _spec("480p_t2v", "HunyuanVideo 1.5 text-to-video at 480p (848x480, 121 frames at 24 fps).", dict(_480P), 30.0,
              ("hunyuan15", "hunyuan-1.5")),
        _spec("720p_t2v", "HunyuanVideo 1.5 text-to-video at 720p (1280x720, 121 frames at 24 fps).", dict(_720P), 45.0,
              ("hunyuan15-720p",)),
        _spec("480p_i2v", "HunyuanVideo 1.5 image-to-video at 480p (needs --image; SigLIP image encoder).", dict(_480P),
              31.0, ("hunyuan15-i2v",), ("i2v",)),
        _spec("720p_i2v", "HunyuanVideo 1.5 image-to-video at 720p (needs --image).", dict(_720P), 46.0,
              ("hunyuan15-i2v-720p",), ("i2v",)),
    ),
)
