"""The card of Helios: what t2v knows of the family without importing its code (:mod:`t2v.families.helios`).

Helios (Peking University and ByteDance) is Wan 2.1 14B made autoregressive: it makes a clip chunk by chunk (33
frames each), every chunk denoised beside a compressed memory of the ones before it, so one run makes a minute.
``BestWishYsh/Helios-Base`` (``HeliosPipeline``, 50 steps with guidance) runs each chunk at full size; the Mid and
Distilled models (``HeliosPyramidPipeline``) denoise each chunk in a pyramid of three sizes. Defaults are the
diffusers docs' for each: 640x384, 129 frames (4 chunks) at 24 fps; Base 50 steps at guidance 5, Mid 20 steps a
stage (60) at guidance 5 with CFG-Zero*, Distilled 2 a stage (6) without guidance, its first chunk amplified.
Licence: Apache-2.0.
"""

from __future__ import annotations

from t2v.models.spec import DISPATCHED, FamilyCard, ModelSpec

PIPELINE = "HeliosPipeline"
# The pipeline example's negative prompt (Wan's, in English).
NEGATIVE = ("Bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, static, "
            "overall gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, extra fingers, poorly "
            "drawn hands, poorly drawn faces, deformed, disfigured, misshapen limbs, fused fingers, still picture, messy "
            "background, three legs, many people in the background, walking backwards")
_DEFAULTS = {"width": 640, "height": 384, "num_frames": 129, "fps": 24, "guidance_scale": 5.0, "num_inference_steps": 50,
             "scheduler": "model", "negative_prompt": NEGATIVE}
_MID = {**_DEFAULTS, "num_inference_steps": 60}
_DISTILLED = {**_DEFAULTS, "num_inference_steps": 6, "guidance_scale": 1.0, "amplify_first_chunk": True}
_NOTES = ("Sizes approximate (the 14B transformer and UMT5-XXL in bf16; GPU memory without offload, which chunks keep "
          "the same at any length). Clips are whole chunks: 33, 65, 97, 129, 165, ... frames; --seconds rounds up.")

CARD = FamilyCard(
    name="helios",
    ref="t2v.families.helios:HeliosFamily",
    description="Helios: Wan 2.1 14B made autoregressive, chunk by chunk with a compressed memory (minute-long clips)",
    pipelines=(PIPELINE, "HeliosPyramidPipeline"),
    kernels=DISPATCHED,  # diffusers' attention dispatcher, no mask
    modes=("video", "i2v"),
    defaults=dict(_DEFAULTS),
    tiny={"helios": "t2v.models.tiny.helios:make_helios", "helios-mid": "t2v.models.tiny.helios:make_helios_mid",
          "helios-distilled": "t2v.models.tiny.helios:make_helios_distilled"},
    order=22,
    models=(
        ModelSpec(id="BestWishYsh/Helios-Base", family="helios", defaults=dict(_DEFAULTS), license="Apache-2.0",
                  description="Helios-Base (14B): 640x384 at 24 fps in chunks of 33 frames, up to a minute; --image "
                              "for I2V.",
                  license_url="https://huggingface.co/BestWishYsh/Helios-Base", download_gb=80.0, vram_gb=40.0,
                  has_fp16_variant=False, notes=_NOTES, aliases=("helios",), tasks=("t2v", "i2v")),
        ModelSpec(id="BestWishYsh/Helios-Mid", family="helios", defaults=dict(_MID), license="Apache-2.0",
                  description="Helios-Mid (14B): each chunk in a pyramid of three sizes, 20 steps a size, CFG-Zero*.",
                  license_url="https://huggingface.co/BestWishYsh/Helios-Mid", download_gb=80.0, vram_gb=40.0,
                  has_fp16_variant=False, notes=_NOTES, aliases=("helios-mid",), tasks=("t2v", "i2v")),
        ModelSpec(id="BestWishYsh/Helios-Distilled", family="helios", defaults=dict(_DISTILLED), license="Apache-2.0",
                  description="Helios-Distilled (14B): 2 steps a pyramid size, no guidance (its authors' 17 FPS on "
                              "an H100).",
                  license_url="https://huggingface.co/BestWishYsh/Helios-Distilled", download_gb=80.0, vram_gb=40.0,
                  has_fp16_variant=False, notes=_NOTES, aliases=("helios-distilled",), tasks=("t2v", "i2v")),
    ),
)
