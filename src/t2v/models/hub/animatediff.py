"""The card of AnimateDiff: what t2v knows of the family without importing its code (:mod:`t2v.families.animatediff`)."""

from __future__ import annotations

from t2v.models.spec import FamilyCard, ModelSpec

BASE_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
NEGATIVE_PROMPT = "bad quality, worse quality"  # diffusers' AnimateDiff examples
LICENSE_URL = "https://github.com/guoyww/AnimateDiff/blob/main/LICENSE.txt"
# diffusers' AnimateDiff examples: 16 frames at 8 fps, 25 steps, guidance 7.5, SD 1.5's 512x512, the DDIM above.
DEFAULTS = {"width": 512, "height": 512, "num_frames": 16, "fps": 8, "guidance_scale": 7.5, "num_inference_steps": 25,
            "scheduler": "model", "negative_prompt": NEGATIVE_PROMPT}


def adapter_spec(id: str, description: str, download_gb: float, **kw) -> ModelSpec:
    """A guoyww motion adapter: animates ``BASE_MODEL`` unless the request names another SD 1.x model.
    ``vram_gb``: the planner's fp16 estimate at the defaults (about 5 GB with the balanced plan's VAE chunks)."""
    return ModelSpec(id=id, family="animatediff", description=description, defaults=dict(DEFAULTS),
                     license="Apache-2.0", license_url=LICENSE_URL, download_gb=download_gb, vram_gb=9.0,
                     has_fp16_variant=True, base_model=BASE_MODEL,
                     notes="Downloads the adapter; the SD 1.5 model it animates (2.6 GB) comes with it.", **kw)

# The DDIM settings of AnimateDiff's inference configs and diffusers' examples (linear betas, not SD's scaled_linear).
DDIM = {"beta_schedule": "linear", "clip_sample": False, "timestep_spacing": "linspace", "steps_offset": 1}


CARD = FamilyCard(
    name="animatediff",
    ref="t2v.families.animatediff:AnimateDiffFamily",
    description="AnimateDiff: an SD 1.x model animated by a motion adapter (UNetMotionModel)",
    pipelines=("AnimateDiffPipeline",),
    encodes_video=True,  # video-to-video: the SD VAE, frame by frame (t2v.sampling.v2v)
    defaults=DEFAULTS,
    tiny={"animatediff": "t2v.models.tiny.animatediff:make_tiny_animatediff",
            "animatediff-adapter": "t2v.models.tiny.animatediff:make_tiny_motion_adapter"},
    order=60,
    models=(
        adapter_spec("guoyww/animatediff-motion-adapter-v1-5-3", "AnimateDiff v3 motion adapter for SD 1.5 models.",
                     1.7, aliases=("animatediff", "animatediff-v3")),
        adapter_spec("guoyww/animatediff-motion-adapter-v1-5-2", "AnimateDiff v2 motion adapter for SD 1.5 models "
                     "(with a mid-block module; works with the guoyww/animatediff-motion-lora-* camera LoRAs).",
                     1.8, aliases=("animatediff-v2",)),
        adapter_spec("guoyww/animatediff-motion-adapter-v1-5", "AnimateDiff v1 motion adapter for SD 1.5 models.",
                     1.7, aliases=("animatediff-v1",)),
    ),
)
