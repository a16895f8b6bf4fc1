"""The card of ModelScope / Zeroscope, and of t2v-shapes (the model t2v trains itself and ships in the package,
in ModelScope's layout): what t2v knows of the family without importing its code (:mod:`t2v.families.modelscope`)."""

from __future__ import annotations

from typing import Any

from t2v.models.spec import FamilyCard, ModelSpec
from t2v.requests import DEFAULT_NEGATIVE_PROMPT

DEFAULTS: dict[str, Any] = {"width": 256, "height": 256, "num_frames": 16, "fps": 8, "guidance_scale": 9.0,
                            "num_inference_steps": 25, "scheduler": "dpm++", "negative_prompt": DEFAULT_NEGATIVE_PROMPT}
# t2v-shapes (t2v train --data shapes): 64x64, 8 frames, 25 DPM-Solver++ steps, guidance 5, no negative prompt.
SHAPES_DEFAULTS: dict[str, Any] = {**DEFAULTS, "width": 64, "height": 64, "num_frames": 8, "guidance_scale": 5.0,
                                   "negative_prompt": ""}


def _shapes(model_id: str, description: str, notes: str, bundled: str, aliases: tuple[str, ...] = ()) -> ModelSpec:
    """A version of the model t2v trains itself and ships in the package (``assets/<bundled>``)."""
    return ModelSpec(id=model_id, family="modelscope", description=description, defaults=SHAPES_DEFAULTS,
                     license="Apache-2.0", download_gb=0.0, vram_gb=0.1, has_fp16_variant=False, notes=notes,
                     prompt_example="a red circle moving right", aliases=aliases, bundled=bundled)


CARD = FamilyCard(
    name="modelscope",
    ref="t2v.families.modelscope:ModelScopeFamily",
    description="ModelScope / Zeroscope text-to-video (UNet3D)",
    pipelines=("TextToVideoSDPipeline",),
    encodes_video=True,
    defaults=DEFAULTS,
    tiny={"modelscope": "t2v.models.tiny:make_tiny_modelscope"},
    # t2v bench's first comparison: 8 frames at 64x64, 2 DDIM steps, guidance 9.
    bench={"num_frames": 8, "width": 64, "height": 64, "guidance_scale": 9.0, "scheduler": "ddim"},
    # 64x64 for the tiny model (its VAE scales by 4: 16x16 latents), 256x256 for a real ModelScope folder.
    bench_square=(64, 256),
    bench_plain=True,
    order=0,
    models=(
        ModelSpec(id="damo-vilab/text-to-video-ms-1.7b", family="modelscope", defaults=DEFAULTS,
                  description="ModelScope text-to-video 1.7B (UNet3D, SD 1.x VAE, OpenCLIP ViT-H text encoder).",
                  license="CC-BY-NC-ND-4.0 (research and non-commercial use only)", download_gb=3.5, vram_gb=8.0,
                  has_fp16_variant=True, aliases=("modelscope", "ms-1.7b")),
        ModelSpec(id="cerspense/zeroscope_v2_576w", family="modelscope",
                  description="Zeroscope v2 576w: ModelScope fine-tuned for 576x320 watermark-free clips.",
                  defaults={**DEFAULTS, "width": 576, "height": 320, "num_frames": 24},
                  license="CC-BY-NC-4.0 (non-commercial use only)", download_gb=3.5, vram_gb=7.9,
                  has_fp16_variant=False, aliases=("zeroscope",)),
        _shapes("t2v-shapes", "t2v's own 64x64, 8-frame model of coloured shapes moving on black (docs/model-card.md).",
                "Ships with t2v; trained on 2 CPU cores by `t2v train --data shapes`.", "t2v-shapes", aliases=("shapes",)),
        _shapes("t2v-shapes@v5", "The previous t2v-shapes (v5), kept so that records made with it replay identically.",
                "Its blue triangles moving right can come out round (docs/model-card.md); t2v replay picks it for "
                "records that name its hash.", "t2v-shapes-v5"),
        _shapes("t2v-shapes@v4", "The previous t2v-shapes (v4), kept so that records made with it replay identically.",
                "Its frames may change colour (docs/model-card.md); t2v replay picks it for records that name its hash.",
                "t2v-shapes-v4"),
    ),
)
