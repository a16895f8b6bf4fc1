"""The card of Helios: what t2v knows of the family without importing its code (:mod:`t2v.families.helios`).

Helios (Peking University and ByteDance) is Wan 2.1 14B made autoregressive: it makes a clip chunk by chunk (33
frames each), every chunk denoised beside a compressed memory of the ones before it, so one run makes a minute.
``BestWishYsh/Helios-Base`` (``HeliosPipeline``, 50 steps with guidance) is the one ``HeliosPipeline`` runs; the
Mid and Distilled models run through ``HeliosPyramidPipeline``, which t2v does not run yet. Defaults are the
pipeline example's: 640x384, 129 frames (4 chunks) at 24 fps, 50 steps, guidance 5 with its negative prompt.
Licence: Apache-2.0.
"""

from __future__ import annotations

from t2v.models.spec import FamilyCard, ModelSpec

PIPELINE = "HeliosPipeline"
# The pipeline example's negative prompt (Wan's, in English).
NEGATIVE = ("Bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, static, "
            "overall gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, extra fingers, poorly "
            "drawn hands, poorly drawn faces, deformed, disfigured, misshapen limbs, fused fingers, still picture, messy "
            "background, three legs, many people in the background, walking backwards")
_DEFAULTS = {"width": 640, "height": 384, "num_frames": 129, "fps": 24, "guidance_scale": 5.0, "num_inference_steps": 50,
             "scheduler": "model", "negative_prompt": NEGATIVE}
_NOTES = ("Sizes approximate (the 14B transformer and UMT5-XXL in bf16; GPU memory without offload, which chunks keep "
          "the same at any length). Clips are whole chunks: 33, 65, 97, 129, 165, ... frames; --seconds rounds up.")

CARD = FamilyCard(
    name="helios",
    ref="t2v.families.helios:HeliosFamily",
    description="Helios: Wan 2.1 14B made autoregressive, chunk by chunk with a compressed memory (minute-long clips)",
    pipelines=(PIPELINE,),
    modes=("video", "i2v"),
    defaults=dict(_DEFAULTS),
    tiny={"helios": "t2v.models.tiny.helios:make_helios"},
    order=22,
    models=(
        ModelSpec(id="BestWishYsh/Helios-Base", family="helios", defaults=dict(_DEFAULTS), license="Apache-2.0",
                  description="Helios-Base (14B): 640x384 at 24 fps in chunks of 33 frames, up to a minute; --image "
                              "for I2V.",
                  license_url="https://huggingface.co/BestWishYsh/Helios-Base", download_gb=80.0, vram_gb=40.0,
                  has_fp16_variant=False, notes=_NOTES, aliases=("helios",), tasks=("t2v", "i2v")),
    ),
)
