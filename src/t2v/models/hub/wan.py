"""The card of Wan 2.1 / 2.2: what t2v knows of the family without importing its code (:mod:`t2v.families.wan`)."""

from __future__ import annotations

from t2v.models.spec import FamilyCard
from t2v.requests import FamilyExtras, knob


class WanExtras(FamilyExtras):
    """Wan's own settings."""

    guidance_scale_2: float | None = knob(None, ge=0.0, le=50.0, cli="--guidance-2", help=(
        "Wan 2.2 A14B: guidance of the low-noise expert (default: the model's, else --guidance)."))
    flow_shift: float | None = knob(None, gt=0.0, le=100.0, cli="--flow-shift", help=(
        "Shift of the flow-matching noise schedule (default: the model's scheduler config, 3.0 or 5.0; few-step "
        "distills want their own, e.g. 5.0)."))


# Wan's own negative prompt (Wan2.1 / Wan2.2 repos, wan/configs/shared_config.py: sample_neg_prompt).
NEGATIVE_PROMPT = ("色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，"
                   "JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，"
                   "手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走")


CARD = FamilyCard(
    name="wan",
    ref="t2v.families.wan:WanFamily",
    description="Wan 2.1 / 2.2 text-to-video and image-to-video (Wan transformer, UMT5, 3D VAE)",
    pipelines=("WanPipeline", "WanImageToVideoPipeline", "WanVACEPipeline"),
    defaults={"width": 832, "height": 480, "num_frames": 81, "fps": 16, "guidance_scale": 5.0,
                "num_inference_steps": 50, "scheduler": "model", "negative_prompt": NEGATIVE_PROMPT},
    tiny={"wan": "t2v.models.tiny.wan:make_wan21", "wan22-ti2v": "t2v.models.tiny.wan:make_wan22_ti2v",
            "wan22-a14b": "t2v.models.tiny.wan:make_wan22_a14b", "wan-i2v": "t2v.models.tiny.wan:make_wan_i2v",
            "wan-flf2v": "t2v.models.tiny.wan:make_wan_flf2v", "wan-vace": "t2v.models.tiny.wan:make_wan_vace"},
    extras=WanExtras,
    models=(),
)
