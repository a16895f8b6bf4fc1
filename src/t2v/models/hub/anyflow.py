"""The card of AnyFlow: what t2v knows of the family without importing its code (:mod:`t2v.families.anyflow`).

NVIDIA's AnyFlow checkpoints distil Wan 2.1 (1.3B and 14B, text-to-video) into a flow map: the transformer takes
the step's start and target timesteps and predicts the mean velocity between them, so one checkpoint samples in
any number of steps (1, 2, 4 or 8 typical). Guidance is distilled into the weights (scale 1). The diffusers-format
repos are ``nvidia/AnyFlow-Wan2.1-T2V-*-Diffusers``; defaults are the pipeline's example: 832x480, 33 frames at
16 fps, 4 steps. The causal FAR models (``nvidia/AnyFlow-FAR-Wan2.1-*-Diffusers``, ``AnyFlowFARPipeline``) make a
clip chunk by chunk (81 frames by default, the released partition) from text or from an image. Licence: the model cards say ``license: other`` without naming one; read the repo before use.
A folder in the original repository's layout (``WanAnyFlowPipeline`` with ``FAR_Wan_Transformer3DModel``, classes
that are not diffusers') is not this family's: t2v names the pipeline class it does not know.
"""

from __future__ import annotations

from t2v.models.spec import DISPATCHED, FamilyCard, ModelSpec

PIPELINE = "AnyFlowPipeline"
LICENSE = "other"  # the model cards name no licence: read the repo's terms
_DEFAULTS = {"width": 832, "height": 480, "num_frames": 33, "fps": 16, "guidance_scale": 1.0, "num_inference_steps": 4,
             "scheduler": "model", "negative_prompt": ""}
_NOTES = ("Sizes approximate (Wan 2.1's transformer of that size and UMT5-XXL in bf16; GPU memory without offload). "
          "Any step count works; 1, 2, 4 and 8 are the distilled ones. Licence: the model card says 'other' and names "
          "none; read the repo's terms before use.")


_FAR = {**_DEFAULTS, "num_frames": 81}  # the released FAR chunks (1, 3, 3, 3, 3, 3, 3, 2 latent frames) are 81 frames


def _spec(size: str, description: str, download_gb: float, vram_gb: float, aliases: tuple[str, ...], *,
          far: bool = False) -> ModelSpec:
    repo = f"nvidia/AnyFlow-FAR-Wan2.1-{size}-Diffusers" if far else f"nvidia/AnyFlow-Wan2.1-T2V-{size}-Diffusers"
    return ModelSpec(id=repo, family="anyflow", description=description, defaults=dict(_FAR if far else _DEFAULTS),
                     license=LICENSE, license_url=f"https://huggingface.co/{repo}", download_gb=download_gb,
                     vram_gb=vram_gb, has_fp16_variant=False, notes=_NOTES, aliases=aliases,
                     tasks=("t2v", "i2v") if far else ("t2v",))


CARD = FamilyCard(
    name="anyflow",
    ref="t2v.families.anyflow:AnyFlowFamily",
    description="AnyFlow: Wan 2.1 distilled into a flow map (any number of steps, guidance in the weights)",
    pipelines=(PIPELINE, "AnyFlowFARPipeline"),
    kernels=DISPATCHED,  # diffusers' attention dispatcher, no mask
    modes=("video", "i2v"),  # image-to-video: the FAR models only
    defaults=dict(_DEFAULTS),
    tiny={"anyflow": "t2v.models.tiny.anyflow:make_anyflow", "anyflow-far": "t2v.models.tiny.anyflow:make_anyflow_far"},
    order=24,
    models=(
        _spec("1.3B", "AnyFlow on Wan 2.1 1.3B: text-to-video in 1-8 steps, 832x480.", 29.0, 8.0, ("anyflow",)),
        _spec("14B", "AnyFlow on Wan 2.1 14B: text-to-video in 1-8 steps, 832x480.", 80.0, 40.0, ("anyflow-14b",)),
        _spec("1.3B", "AnyFlow FAR on Wan 2.1 1.3B: causal, chunk by chunk; text or --image; 81 frames.", 29.0, 8.0,
              ("anyflow-far",), far=True),
        _spec("14B", "AnyFlow FAR on Wan 2.1 14B: causal, chunk by chunk; text or --image; 81 frames.", 80.0, 40.0,
              ("anyflow-far-14b",), far=True),
    ),
)
