"""The card of ModelScope / Zeroscope: what t2v knows of the family without importing its code (:mod:`t2v.families.modelscope`)."""

from __future__ import annotations

from t2v.models.spec import FamilyCard
from t2v.requests import DEFAULT_NEGATIVE_PROMPT



CARD = FamilyCard(
    name="modelscope",
    ref="t2v.families.modelscope:ModelScopeFamily",
    description="ModelScope / Zeroscope text-to-video (UNet3D)",
    pipelines=("TextToVideoSDPipeline",),
    defaults={"width": 256, "height": 256, "num_frames": 16, "fps": 8, "guidance_scale": 9.0,
                "num_inference_steps": 25, "scheduler": "model", "negative_prompt": DEFAULT_NEGATIVE_PROMPT},
    tiny={"modelscope": "t2v.models.tiny:make_tiny_modelscope"},
    models=(),
)
